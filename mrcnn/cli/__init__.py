"""The ``mrcnn`` command line (also ``python -m mrcnn``): train, detect, evaluate, export.

    mrcnn train --coco ann.json --images imgs/ --config myconfig:MyConfig \\
        --weights coco --layers heads --epochs 10
    mrcnn detect --config myconfig:MyConfig --weights last --output out/ photos/ clip.mp4
    mrcnn evaluate --config myconfig:MyConfig --weights last --coco val.json --images val/
    mrcnn export --config myconfig:MyConfig --weights last --format saved_model out/model

``mrcnn <command> --help`` describes each. One file per subcommand in this package;
settings.py holds --config and --set, weights.py --weights, classes.py the class names
beside a checkpoint, data.py the data set options, media.py the image and video files of
detect, common.py the inference model of detect, evaluate and export.

Keypoint models: ``mrcnn train`` on a COCO keypoint file stores NUM_KEYPOINTS,
KEYPOINT_NAMES and the keypoint head's sizes in the checkpoint's config; detect, evaluate
and export read them from there (no --set needed). detect writes and draws the keypoints,
evaluate adds OKS keypoint AP (--keypoint-sigmas unless there are COCO's 17).

Errors in arguments or inputs (a missing file, a config attribute that does not exist,
bad annotations) print one line naming the file or attribute and exit with status 2;
MRCNN_DEBUG=1 shows the traceback instead.
"""
import argparse
import os
import sys

from mrcnn.cli import detect, evaluate, export, train
from mrcnn.cli.errors import CliError

SUBCOMMANDS = (train, detect, evaluate, export)
DEBUG_ENV = "MRCNN_DEBUG"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the docstrings' layout; shows defaults where the help does not."""


def build_parser():
    parser = argparse.ArgumentParser(prog="mrcnn", description=__doc__,
                                     formatter_class=_Formatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers, _Formatter)
    return parser


def _known_errors():
    """Errors that are the user's input, reported in one line (no traceback). Weights
    files that do not fit are CliErrors (weights.load_weights), so that keras need not be
    imported before a model is built."""
    from mrcnn.config import ConfigError
    from mrcnn.validate import DatasetError

    return CliError, ConfigError, DatasetError


def main(argv=None):
    """Parse ``argv`` (default sys.argv[1:]), run the subcommand; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    errors = _known_errors()
    try:
        return args.run(args) or 0
    except errors as error:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        print(f"mrcnn {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mrcnn {args.command}: interrupted", file=sys.stderr)
        return 130


def console_main():
    """The console script: headless figures, TensorFlow's start-up lines filtered."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from mrcnn.console import quiet_tensorflow

    quiet_tensorflow()
    sys.exit(main())

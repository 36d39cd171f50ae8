"""``mrcnn export``: write an inference model for serving without this package.

    mrcnn export --config myconfig:MyConfig --weights last --format saved_model out/model
    mrcnn export --config myconfig:MyConfig --weights last --format onnx model.onnx
    mrcnn export --config myconfig:MyConfig --weights last --format tflite model.tflite

saved_model: mrcnn.export.export_saved_model (raw uint8 images in, detections in their
pixels out). onnx and tflite: mrcnn.export.export_onnx / export_tflite, which need
optional packages (tf2onnx for ONNX); a missing one is named in the error.
"""
import importlib

from mrcnn.cli import common, settings, weights
from mrcnn.cli.errors import CliError

HELP = "export a SavedModel, ONNX or TFLite model"
FORMATS = {"saved_model": "export_saved_model", "onnx": "export_onnx",
           "tflite": "export_tflite"}


def add_parser(subparsers, formatter):
    parser = subparsers.add_parser("export", help=HELP, description=__doc__,
                                   formatter_class=formatter)
    parser.add_argument("out", metavar="OUT",
                        help="the SavedModel folder, or the .onnx / .tflite file to write")
    parser.add_argument("--format", required=True, choices=tuple(FORMATS))
    parser.add_argument("--quantization", metavar="MODE",
                        help="tflite only: passed to export_tflite(quantization=MODE)")
    settings.add_config_arguments(parser)
    weights.add_weights_argument(parser)
    parser.set_defaults(run=run)
    return parser


def exporter(format_name):
    """The function of mrcnn.export that writes ``format_name``, looked up at run time."""
    module = importlib.import_module("mrcnn.export")
    name = FORMATS[format_name]
    function = getattr(module, name, None)
    if function is None:
        raise CliError(f"--format {format_name}: this installation's mrcnn.export has "
                              f"no {name}()")
    return function


def _missing_package_error(format_name, error):
    package = error.name or str(error)
    hints = {"onnx": "pip install tf2onnx onnx onnxruntime",
             "tflite": "pip install ai-edge-litert"}
    return CliError(f"--format {format_name} needs the optional package {package!r}, "
                           f"which is not installed ({error}); {hints.get(format_name, '')}")


def run(args):
    if args.quantization and args.format != "tflite":
        raise CliError("--quantization applies to --format tflite only")
    config, fixed = settings.load_config(args)
    function = exporter(args.format)
    weights_file = weights.weights_path(args.weights, config, args.logs)
    model = common.inference_model(args, config, fixed, weights_file)
    try:
        if args.format == "tflite":
            written = function(model, args.out, quantization=args.quantization)
        else:
            written = function(model, args.out)
    except ImportError as error:
        raise _missing_package_error(args.format, error) from None
    print(f"Wrote {written or args.out} ({args.format})")
    return 0

"""Convert an upstream (matterport/Mask_RCNN, Keras 2) weights file to this package's format.

    python -m mrcnn.convert mask_rcnn_coco.h5 mask_rcnn_coco_converted.h5 \\
        --config samples.coco.coco:CocoConfig [--exclude mrcnn_mask ...] \\
        [--saved-model export_dir]

The upstream file is loaded by layer name into the inference graph built from the config,
which checks every weight's shape against that config, and written back in this
package's name-keyed layout (see `mrcnn.weights_io`) with only the layers that were
loaded and the config stored as the root attribute "config". A destination ending in
".weights.h5" is written in Keras 3's native format instead (it loads only into a graph
built from the same config). `--saved-model` also exports the converted model as a
SavedModel (see `mrcnn.export`).

`--config` names a Config subclass (or instance) as "package.module:Name"; the inference
settings (IMAGES_PER_GPU, DETECTION_MIN_CONFIDENCE, ...) do not change the weights.
"""
import argparse
import importlib
import inspect
import os
import sys
import tempfile

if __name__ == "__main__":   # before weights_io imports TensorFlow: drop its start-up noise
    from mrcnn.console import quiet_tensorflow
    quiet_tensorflow()

from mrcnn import weights_io  # noqa: E402
from mrcnn.config import Config  # noqa: E402


class _Layers:
    """A stand-in model exposing only some layers to `weights_io.save_weights`."""

    def __init__(self, layers):
        self.layers = list(layers)


def load_config(spec):
    """A Config instance from "module:Name" (a Config subclass or instance).

    Raises:
        ValueError: the spec is malformed or does not name a Config.
    """
    module_name, _, attribute = str(spec).partition(":")
    if not module_name or not attribute:
        raise ValueError(f"--config must look like 'package.module:ConfigClass', got {spec!r}")
    target = getattr(importlib.import_module(module_name), attribute)
    if inspect.isclass(target) and issubclass(target, Config):
        return target()
    if isinstance(target, Config):
        return target
    raise ValueError(f"{spec!r} is not a Config subclass or instance")


def convert_upstream_weights(src, dst, config, exclude=None, allow_missing=False,
                             saved_model_dir=None):
    """Load an upstream weights file into the inference graph and write our format.

    Args:
        src: upstream Keras-2 ".h5" weights (or any name-keyed file).
        dst: destination; ".weights.h5" for Keras 3's native format, else name-keyed ".h5".
        config: Config matching the weights (BACKBONE, NUM_CLASSES, head sizes, ...).
        exclude: layer names not to take from `src` (and not to write).
        allow_missing: accept a file that lacks some of the graph's layers (they are then
            not written); by default that is an error, since the result would be partly
            random.
        saved_model_dir: optionally also export a SavedModel there.
    Returns:
        weights_io.load_weights' report: "loaded", "skipped", "missing", "attributes".
    Raises:
        weights_io.WeightsFileError: a shape differs from the config (the message names the
            layer and both shapes), or layers are missing and allow_missing is False.
    """
    import mrcnn.model as modellib  # builds the graph; keep `--help` fast

    config.validate()
    model = modellib.MaskRCNN("inference", config, model_dir=tempfile.gettempdir())
    report = weights_io.load_weights(model.keras_model, src, exclude=exclude)
    if report["missing"] and not allow_missing:
        raise weights_io.WeightsFileError(
            f"{src!r} lacks layers of the {config.BACKBONE} graph built from the config: "
            f"{report['missing']}; check BACKBONE and the head sizes, or pass "
            f"allow_missing=True (--allow-missing) to write only the layers it has")
    if str(dst).endswith(".weights.h5"):
        model.keras_model.save_weights(str(dst))
    else:
        loaded = set(report["loaded"])
        layers = [layer for layer in weights_io.weight_layers(model.keras_model)
                  if layer.name in loaded]
        weights_io.save_weights(_Layers(layers), str(dst), attributes={
            "config": config.to_json(), "converted_from": os.path.basename(str(src))})
    if saved_model_dir:
        from mrcnn import export
        export.export_saved_model(model, saved_model_dir)
    return report


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m mrcnn.convert",
        description="Convert an upstream Mask R-CNN .h5 weights file to this package's format.")
    parser.add_argument("src", help="upstream weights file (.h5)")
    parser.add_argument("dst", help="output file (.h5 name-keyed, or .weights.h5 Keras 3)")
    parser.add_argument("--config", required=True,
                        help="Config subclass as 'package.module:ClassName'")
    parser.add_argument("--exclude", nargs="*", default=None, metavar="LAYER",
                        help="layer names not to convert (e.g. the class-specific heads)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="write even if the file lacks some of the graph's layers")
    parser.add_argument("--saved-model", default=None, metavar="DIR",
                        help="also export a TensorFlow SavedModel to DIR")
    return parser


def main(argv=None):
    """Command line entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
        report = convert_upstream_weights(args.src, args.dst, config, exclude=args.exclude,
                                          allow_missing=args.allow_missing,
                                          saved_model_dir=args.saved_model)
    except (ValueError, ImportError, AttributeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"converted {len(report['loaded'])} layers from {args.src} to {args.dst}")
    if report["skipped"]:
        print(f"not used (not in the graph or excluded): {len(report['skipped'])} layers")
    if report["missing"]:
        print(f"not in the file, not written: {report['missing']}")
    if args.saved_model:
        print(f"SavedModel written to {args.saved_model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

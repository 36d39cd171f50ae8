"""Export a weights file as a SavedModel, an ONNX model or a TFLite model in one command.

    python -m mrcnn.export --weights mask_rcnn_shapes.h5 \\
        --config samples.shapes.shapes:ShapesConfig --format onnx mask_rcnn.onnx
    python -m mrcnn.export --weights W.h5 --config module:Class --format tflite \\
        --quantization float16 [--image-shape H W] mask_rcnn_fp16.tflite
    python -m mrcnn.export --weights W.h5 --config module:Class --format saved_model export/1

The weights load by layer name into the inference graph built from the config (our
files, Keras-3 `.weights.h5` files of the same config, and upstream matterport `.h5`
files alike; `python -m mrcnn.convert` explains the formats). A missing optional
package (tf2onnx for onnx, ai-edge-litert to run tflite) is named with the extra that
installs it before anything is built.
"""
import argparse
import importlib.util
import sys

if __name__ == "__main__":   # before TensorFlow is imported: drop its start-up noise
    from mrcnn.console import quiet_tensorflow
    quiet_tensorflow()

FORMATS = ("saved_model", "onnx", "tflite")
# Packages each format needs beyond TensorFlow, with the extra that installs them.
REQUIRED_PACKAGES = {"saved_model": (), "onnx": (("tf2onnx", "onnx"), ("onnx", "onnx")),
                     "tflite": ()}


def missing_packages(export_format):
    """[(package, extra)] the format needs and this environment lacks."""
    return [(package, extra) for package, extra in REQUIRED_PACKAGES[export_format]
            if importlib.util.find_spec(package) is None]


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m mrcnn.export",
        description="Export a Mask R-CNN weights file for serving (raw uint8 images in, "
                    "boxes, class ids, scores and box masks out).")
    parser.add_argument("out", help="output: a folder (saved_model) or a file (.onnx, .tflite)")
    parser.add_argument("--weights", required=True, help="weights file (.h5 or .weights.h5)")
    parser.add_argument("--config", required=True,
                        help="Config subclass as 'package.module:ClassName'")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--quantization", choices=("float16", "dynamic_range"), default=None,
                        help="tflite only: float16 or int8 (dynamic range) weights")
    parser.add_argument("--image-shape", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="tflite only: the fixed image size (needed unless "
                             "IMAGE_RESIZE_MODE is 'square')")
    parser.add_argument("--opset", type=int, default=None, help="onnx only: the ONNX opset")
    return parser


def build_model(weights, config, model_dir):
    """An inference MaskRCNN with `weights` loaded by layer name.

    Raises:
        FileNotFoundError: no such weights file.
        ValueError: the file lacks layers of the graph the config builds (they would stay
            at random initial values in the export).
    """
    import os

    import mrcnn.model as modellib
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights {weights!r}: no such file")
    model = modellib.MaskRCNN("inference", config, model_dir)
    report = model.load_weights(weights, by_name=True, verbose=0)
    if report["missing"]:
        raise ValueError(f"--weights {weights!r} lacks layers of the {config.BACKBONE} graph "
                         f"the config builds: {report['missing']}; check --config")
    return model


def export(args):
    """Run one export from parsed arguments; returns what was written."""
    import tempfile

    from mrcnn import export as exporters
    from mrcnn.convert import load_config
    if args.format != "tflite" and (args.quantization or args.image_shape):
        raise ValueError("--quantization and --image-shape apply to --format tflite only")
    if args.format != "onnx" and args.opset is not None:
        raise ValueError("--opset applies to --format onnx only")
    missing = missing_packages(args.format)
    if missing:
        names = ", ".join(package for package, _ in missing)
        raise ImportError(f"--format {args.format} needs {names}, not installed: "
                          f"pip install 'mrcnn[{missing[0][1]}]'")
    config = load_config(args.config)
    with tempfile.TemporaryDirectory(prefix="mrcnn_export_") as model_dir:
        model = build_model(args.weights, config, model_dir)
        if args.format == "saved_model":
            return exporters.export_saved_model(model, args.out)
        if args.format == "onnx":
            return exporters.export_onnx(model, args.out, opset=args.opset)
        return exporters.export_tflite(model, args.out, quantization=args.quantization,
                                       image_shape=args.image_shape)


def main(argv=None):
    """Command line entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        written = export(args)
    except (ValueError, ImportError, AttributeError, FileNotFoundError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.format} to {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

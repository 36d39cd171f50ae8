"""ONNX export: the serving function converted by tf2onnx, for onnxruntime and friends.

The ONNX model has the contract of the SavedModel (`mrcnn.export.serving`): input
`images` uint8 [B, H, W, C] with batch size and image size free per call (all images of
one call share a size); outputs boxes int32 [B, D, 4], class_ids int32 [B, D], scores
float32 [B, D], masks float32 [B, D, mh, mw] (box-local), num_detections int32 [B].
It runs without TensorFlow:

    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    boxes, class_ids, scores, masks, num_detections = session.run(
        list(mrcnn.export.SERVING_OUTPUTS), {"images": batch})

Requires the optional packages of the `onnx` extra (`pip install mrcnn[onnx]`): tf2onnx
to convert, onnxruntime to run. On a CPU onnxruntime is not faster than TensorFlow for
this graph (see the README's export figures): ONNX is for deployment where TensorFlow
is not, e.g. onnxruntime's other execution providers or TensorRT.

The graph is the SavedModel's but for one detail: the detection layer runs one NMS per
class at any class count (`builtin_ops.per_class_detection`; above 8 foreground classes
the TensorFlow graph runs an equivalent class-shifted NMS whose check uses searchsorted,
which ONNX lacks). The converted model is checked with `onnx.checker` (full check).
"""
import os

from mrcnn.export.builtin_ops import per_class_detection
from mrcnn.export.serving import SERVING_OUTPUTS, MaskRCNNServing, check_inference_model

# The opset tf2onnx converts to when none is given; 17 is the newest tf2onnx 1.17 knows
# to convert every op of the graph with (NonMaxSuppression, TopK, Resize, GatherND).
DEFAULT_OPSET = 17


def require(module_name, extra, purpose):
    """Import an optional dependency or raise ImportError naming it and its extra."""
    import importlib
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs the optional package {module_name!r}, which is not installed: "
            f"pip install 'mrcnn[{extra}]' (or see requirements-test.txt for the tested "
            f"versions)") from error


def export_onnx(model, path, opset=None):
    """Convert an inference MaskRCNN (molding, graph, unmolding) to an ONNX file.

    Args:
        model: a `MaskRCNN` built with mode="inference" (weights loaded).
        path: the .onnx file to write (its folder is created).
        opset: ONNX opset; None uses DEFAULT_OPSET.
    Returns:
        path. Input "images" uint8 [B, H, W, C] (dynamic B, H, W); outputs named as
        SERVING_OUTPUTS, in that order.
    Raises:
        ImportError: tf2onnx is not installed (names the `onnx` extra).
    """
    check_inference_model(model, "export_onnx")
    tf2onnx = require("tf2onnx", "onnx", "export_onnx")
    module = MaskRCNNServing(model.keras_model, model.config)
    folder = os.path.dirname(os.path.abspath(str(path)))
    os.makedirs(folder, exist_ok=True)
    with per_class_detection(model.keras_model):   # traced inside: per-class NMS
        tf2onnx.convert.from_function(
            module.serve, input_signature=module.serve.input_signature,
            opset=opset or DEFAULT_OPSET, output_path=str(path))
    _name_outputs_in_order(str(path))
    return path


def _name_outputs_in_order(path):
    """Check the converted model (onnx.checker), order the graph outputs as
    SERVING_OUTPUTS (tf2onnx sorts a dict's keys) and check every one is there."""
    import onnx
    proto = onnx.load(path)
    try:   # tf2onnx logs the ops it cannot convert and writes the model anyway
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as error:
        os.remove(path)
        raise RuntimeError(f"tf2onnx could not convert the graph to valid ONNX: "
                           f"{str(error).splitlines()[0][:500]}") from error
    outputs = {output.name: output for output in proto.graph.output}
    missing = [name for name in SERVING_OUTPUTS if name not in outputs]
    if missing:
        raise RuntimeError(f"the converted ONNX graph lacks the outputs {missing}; it has "
                           f"{sorted(outputs)}")
    # Then any further output (a keypoint model's "keypoints").
    ordered = [outputs[name] for name in SERVING_OUTPUTS] + [
        outputs[name] for name in sorted(outputs) if name not in SERVING_OUTPUTS]
    del proto.graph.output[:]
    proto.graph.output.extend(ordered)
    onnx.save(proto, path)

"""TFLite / LiteRT export: builtin ops only, one image per call.

The model has the serving contract (`mrcnn.export.serving`) for a batch of one: input
`images` uint8 [1, H, W, C]; outputs boxes int32 [1, D, 4], class_ids int32 [1, D],
scores float32 [1, D], masks float32 [1, D, mh, mw] (box-local), num_detections int32
[1]. It uses TFLite builtin ops only (no select TF ops, so no Flex delegate): the
LiteRT interpreter of `ai-edge-litert` runs it, as does any TFLite runtime with the
builtins NON_MAX_SUPPRESSION_V4, GATHER, GATHER_ND, SCATTER_ND, TOPK_V2, CUMSUM,
RESIZE_BILINEAR, TRANSPOSE_CONV and the usual arithmetic:

    from ai_edge_litert.interpreter import Interpreter
    runner = Interpreter(model_path=path).get_signature_runner()
    outputs = runner(images=image[None])          # dict of SERVING_OUTPUTS

What differs from the SavedModel to get there (`builtin_ops`): NMS without tf.map_fn,
ROI pooling by gathers instead of CropAndResize/DynamicStitch, and molding and box
arithmetic in float32 (TFLite has no float64). Image size: in IMAGE_RESIZE_MODE "square"
any size works per call (the molded image is always IMAGE_MAX_DIM square); in "pad64",
"none" and "crop" the molded size follows the image, so `image_shape` fixes it at
export and the interpreter refuses other sizes.

Quantization (`quantization`): None keeps float32; "float16" stores the weights as
float16 (half the file; computed in float32 on CPUs); "dynamic_range" stores them as
int8 with per-channel scales (a quarter of the file; activations quantized on the fly).
Only weights are quantized: the anchors, which the converter would store as int8 or
float16 too, stay exact (`builtin_ops` gathers them as int32 bits). On the trained shapes
model of tests/test_e2e_shapes.py (50 held-out images) both variants find all 118
float32 detections again (same class, box IoU >= 0.9) with mAP@0.5 unchanged;
`TFLiteDetector` runs a file behind detect()'s interface for such measurements.
Requires the `tflite` extra (`ai-edge-litert`) to run the model; conversion uses
TensorFlow's own converter.
"""
import os
import tempfile

import numpy as np
import tensorflow as tf

from mrcnn import utils
from mrcnn.export.builtin_ops import builtin_layers
from mrcnn.export.serving import MaskRCNNServing, check_inference_model
from mrcnn.inference import inference_resize_mode

QUANTIZATIONS = (None, "float16", "dynamic_range")


def _check_arguments(model, quantization, image_shape):
    check_inference_model(model, "export_tflite")
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if image_shape is None and inference_resize_mode(model.config) != "square":
        raise ValueError(
            f"TFLite export of IMAGE_RESIZE_MODE {model.config.IMAGE_RESIZE_MODE!r} needs a "
            f"fixed image_shape=(height, width): the molded size follows the image there")
    if image_shape is not None and (len(image_shape) != 2 or min(image_shape) < 1):
        raise ValueError(f"image_shape must be (height, width), got {image_shape!r}")


def save_builtin_saved_model(model, export_dir, image_shape=None):
    """The TFLite-ready serving function (builtin-op layers, float32, batch 1) as a
    SavedModel: what `convert_saved_model` converts."""
    module = MaskRCNNServing(model.keras_model, model.config, image_shape=image_shape,
                             batch_size=1, float64=False)
    with builtin_layers(model.keras_model):
        serve = module.serve.get_concrete_function()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": serve})
    return export_dir


def convert_saved_model(saved_model_dir, path, quantization=None):
    """Convert a `save_builtin_saved_model` folder to a .tflite file with builtins only."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    flatbuffer = converter.convert()
    folder = os.path.dirname(os.path.abspath(str(path)))
    os.makedirs(folder, exist_ok=True)
    with open(str(path), "wb") as file:
        file.write(flatbuffer)
    return path


def export_tflite(model, path, quantization=None, image_shape=None):
    """Convert an inference MaskRCNN to a TFLite file that needs only builtin ops.

    Args:
        model: a `MaskRCNN` built with mode="inference" (weights loaded).
        path: the .tflite file to write (its folder is created).
        quantization: None (float32), "float16" or "dynamic_range" (int8 weights).
        image_shape: None (any size; IMAGE_RESIZE_MODE "square" only) or (H, W), the only
            size the model then takes.
    Returns:
        path. Signature "serving_default": images uint8 [1, H, W, C] -> SERVING_OUTPUTS.
    """
    _check_arguments(model, quantization, image_shape)
    with tempfile.TemporaryDirectory(prefix="mrcnn_tflite_") as folder:
        saved = save_builtin_saved_model(model, os.path.join(folder, "saved_model"),
                                         image_shape)
        return convert_saved_model(saved, path, quantization)


class TFLiteDetector:
    """A .tflite file behind `MaskRCNN.detect`'s interface, for `mrcnn.evaluate` and
    `mrcnn.agreement`: one interpreter call per image, masks pasted to the image.

    Args:
        path: a file of `export_tflite`.
        config: the exported model's Config (evaluate_map reads its BATCH_SIZE).
        num_threads: the interpreter's threads (None: LiteRT's default).
    """

    def __init__(self, path, config=None, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.config = config
        self.runner = Interpreter(model_path=str(path),
                                  num_threads=num_threads).get_signature_runner()

    def detect_one(self, image):
        """uint8 [H, W, C] -> {"rois" int32 [N, 4] (y1, x1, y2, x2) image pixels,
        "class_ids" int32 [N], "scores" float32 [N], "masks" bool [H, W, N]}."""
        outputs = self.runner(images=np.asarray(image, dtype=np.uint8)[None])
        count = int(outputs["num_detections"][0])
        rois = outputs["boxes"][0, :count]
        return {"rois": rois, "class_ids": outputs["class_ids"][0, :count],
                "scores": outputs["scores"][0, :count],
                "masks": utils.paste_masks(outputs["masks"][0, :count], rois, image.shape)}

    def detect(self, images, verbose=0):
        """A list of images (any count, each its own size) -> a list of detect() dicts."""
        return [self.detect_one(image) for image in images]

"""Export an inference MaskRCNN for serving: SavedModel, ONNX, TFLite (LiteRT).

Every format runs the same TensorFlow function (`serving.run_serving`): uint8 images
[B, H, W, C] in; boxes, class_ids, scores, box-local masks and num_detections out, in the
images' own pixels (see `mrcnn.export.serving`). Full-image masks are pasted by the
caller for the real detections only: `mrcnn.utils.paste_masks(masks[:n], boxes[:n],
(H, W))` gives exactly `detect()`'s masks.

    export_saved_model(model, dir)                 TensorFlow (and TF Serving)
    export_onnx(model, path, opset=None)           onnxruntime, TensorRT, ... (tf2onnx)
    export_tflite(model, path, quantization=None)  LiteRT / TFLite interpreter
    python -m mrcnn.export --weights W.h5 --config module:Class --format F OUT
"""
from mrcnn.export.serving import (SERVING_OUTPUTS, SUPPORTED_RESIZE_MODES,  # noqa: F401
                                  MaskRCNNServing, boxes_to_pixels,
                                  check_inference_model, mold_images, paste_masks,
                                  resize_scale, run_serving, unmold_detections)
from mrcnn.export.saved_model import export_saved_model  # noqa: F401
from mrcnn.export.onnx import DEFAULT_OPSET, export_onnx  # noqa: F401
from mrcnn.export.tflite import QUANTIZATIONS, export_tflite  # noqa: F401

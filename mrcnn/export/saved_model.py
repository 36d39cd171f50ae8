"""SavedModel export: raw uint8 images in, detections (box masks) out; TensorFlow only."""
import tensorflow as tf

from mrcnn.export.serving import MaskRCNNServing, check_inference_model


def export_saved_model(model, export_dir):
    """Write an inference MaskRCNN as a SavedModel with a raw-image serving signature.

    Args:
        model: a `MaskRCNN` built with mode="inference" (weights loaded).
        export_dir: directory to write (created).
    Returns:
        export_dir. Load with `tf.saved_model.load(export_dir)` and call
        `.signatures["serving_default"](images=uint8 [B, H, W, 3])` or `.serve(images)`.
    """
    check_inference_model(model, "export_saved_model")
    module = MaskRCNNServing(model.keras_model, model.config)
    tf.saved_model.save(module, str(export_dir),
                        signatures={"serving_default": module.serve.get_concrete_function()})
    return export_dir

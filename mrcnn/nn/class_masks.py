"""Each detection's mask of its own class, picked inside the graph.

The mask head predicts one 28x28 mask per detection and class, [B, D, 28, 28, NC]; only
the channel of the detection's class is used. Picking it in the graph leaves the other
NC - 1 channels there: for COCO (81 classes, 100 detections) 0.3 MB of masks per image
leave the graph instead of 25 MB.
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mrcnn")
class ClassMasks(keras.layers.Layer):
    """The mask channel of each detection's class.

    Call on `[mrcnn_mask, detections]`:
        mrcnn_mask: float [B, D, mh, mw, NC] mask probabilities per class, in each
            detection box's frame (the mask head on the detections).
        detections: float [B, D, 6] (y1, x1, y2, x2, class_id, score), zero rows after
            the last detection (DetectionLayer).
    Returns:
        float32 [B, D, mh, mw]: row d is mrcnn_mask[b, d, :, :, class_id[b, d]]; rows of
        class 0 (padding) are zeros.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")  # masks are float32 under any policy
        super().__init__(trainable=False, **kwargs)

    def call(self, inputs):
        masks, detections = inputs
        masks = tf.cast(masks, tf.float32)
        class_ids = tf.cast(detections[..., 4], tf.int32)
        picked = tf.gather(masks, class_ids, axis=4, batch_dims=2)
        is_detection = tf.cast(class_ids > 0, tf.float32)[:, :, None, None]
        return picked * is_detection

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0][:4])

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)
        return config

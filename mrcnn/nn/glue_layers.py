"""Small layers that connect the stages of the graph (every tf op lives in a Layer)."""
import keras
import tensorflow as tf

from mrcnn.nn import box_ops


class NormalizeBoxes(keras.layers.Layer):
    """Pixel boxes -> normalised boxes of the input image.

    Inputs: [boxes [B, N, 4] pixels (y2, x2 exclusive), image [B, H, W, C]].
    Output: float32 [B, N, 4] normalised. All-zero padding rows stay all-zero, so the
    layers downstream can trim padding by zero rows.
    """

    def call(self, inputs):
        boxes, image = inputs
        boxes = tf.cast(boxes, tf.float32)
        normalised = box_ops.norm_boxes(boxes, tf.shape(image)[1:3])
        is_box = tf.reduce_any(tf.not_equal(boxes, 0.0), axis=-1, keepdims=True)
        return tf.where(is_box, normalised, tf.zeros_like(normalised))

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


class DetectionBoxes(keras.layers.Layer):
    """The (y1, x1, y2, x2) columns of DetectionLayer's output.

    Input: detections [B, D, 6] (y1, x1, y2, x2, class_id, score), normalised.
    Output: float32 [B, D, 4].
    """

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)

"""Small layers that connect the stages of the graph (every tf op lives in a Layer)."""
import keras
import tensorflow as tf

from mrcnn.nn import box_ops


class BoxLayer(keras.layers.Layer):
    """A layer on boxes: computes in float32 under any mixed-precision policy, so box
    coordinates are never cast down to float16."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)


class NormalizeBoxes(BoxLayer):
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


class DetectionBoxes(BoxLayer):
    """The (y1, x1, y2, x2) columns of DetectionLayer's output.

    Input: detections [B, D, 6] (y1, x1, y2, x2, class_id, score), normalised.
    Output: float32 [B, D, 4].
    """

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)


class LeadingRows(BoxLayer):
    """The first `count` rows along axis 1: x[:, :count].

    Input: [B, N, ...]; output [B, min(count, N), ...]. The ROI sampler puts positive ROIs
    first, so this selects the rows that can hold positives.
    """

    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        self.count = int(count)

    def call(self, x):
        return x[:, :self.count]

    def compute_output_shape(self, input_shape):
        rows = input_shape[1]
        rows = self.count if rows is None else min(rows, self.count)
        return (input_shape[0], rows) + tuple(input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "count": self.count}


class AppendBoxes(BoxLayer):
    """Concatenate two sets of boxes along the box axis.

    Inputs: [boxes_a [B, N, 4], boxes_b [B, M, 4]] in the same frame.
    Output: float32 [B, N + M, 4].
    """

    def call(self, inputs):
        first, second = inputs
        return tf.concat([tf.cast(first, tf.float32), tf.cast(second, tf.float32)], axis=1)

    def compute_output_shape(self, input_shapes):
        first, second = input_shapes
        rows = None if first[1] is None or second[1] is None else first[1] + second[1]
        return (first[0], rows, 4)

"""Keypoint heatmaps of the detections -> (x, y, score) in the molded image.

For each detection and keypoint the heatmap's most likely cell (argmax of the logits;
ties to the lower flat index) gives the position: the centre of that cell on the ROI's
heatmap grid (keypoint_targets.heatmap_boxes, the grid the training targets use), in the
molded image's pixel-index frame (integer x is the centre of pixel column x):

    x = X1 + (column + 0.5) * (X2 - X1) / mw - 0.5,   y likewise with rows,

no sub-pixel refinement (a cell of a 56-cell grid is 1/56 of the box). The score is the
softmax probability of that cell over the mh * mw cells, in [0, 1]: the head's
probability that the keypoint lies in the cell (detectron2 reports the raw logit).
`mrcnn.keypoint_inference` maps the result to the original image.
"""
import keras
import tensorflow as tf

from mrcnn.image_meta import parse_image_meta_graph
from mrcnn.nn.keypoint_targets import heatmap_boxes


def decode_heatmaps(logits, boxes):
    """Argmax decoding of heatmap logits on their grids.

    Args:
        logits: float [B, D, mh, mw, K] heatmap logits.
        boxes: float32 [B, D, 4] heatmap_boxes (continuous pixels of the molded image).
    Returns:
        float32 [B, D, K, 3] (x, y, score), pixel-index frame of the molded image.
    """
    logits = tf.cast(logits, tf.float32)
    mh, mw = logits.shape[2], logits.shape[3]
    shape = tf.shape(logits)
    flat = tf.transpose(logits, [0, 1, 4, 2, 3])                         # [B, D, K, mh, mw]
    flat = tf.reshape(flat, tf.concat([shape[:2], shape[4:5], [mh * mw]], axis=0))
    cell = tf.argmax(flat, axis=-1, output_type=tf.int32)                 # [B, D, K]
    score = tf.reduce_max(tf.nn.softmax(flat, axis=-1), axis=-1)
    row = tf.cast(cell // mw, tf.float32)
    column = tf.cast(cell % mw, tf.float32)
    boxes = tf.cast(boxes, tf.float32)[:, :, None, :]                   # [B, D, 1, 4]
    x = boxes[..., 1] + (column + 0.5) * (boxes[..., 3] - boxes[..., 1]) / mw - 0.5
    y = boxes[..., 0] + (row + 0.5) * (boxes[..., 2] - boxes[..., 0]) / mh - 0.5
    return tf.stack([x, y, score], axis=-1)


@keras.saving.register_keras_serializable(package="mrcnn")
class KeypointDecoder(keras.layers.Layer):
    """`decode_heatmaps` on the detections of the inference graph.

    Inputs (a list): logits float [B, D, mh, mw, K], boxes float [B, D, 4] normalised
        (the detections' boxes), image_meta float [B, IMAGE_META_SIZE].
    Output: float32 [B, D, K, 3] (x, y, score) in the molded image's pixel-index frame;
        padding detections (zero boxes) give meaningless rows, dropped when unmolding.

    Args:
        roi_align_mode: ROI_ALIGN_MODE; pool_size: KEYPOINT_POOL_SIZE.
    """

    def __init__(self, roi_align_mode="upstream", pool_size=14, name="detection_keypoints",
                 **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        self.roi_align_mode = str(roi_align_mode)
        self.pool_size = int(pool_size)

    def call(self, inputs):
        logits, boxes, image_meta = inputs
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][:, :2]
        grid = heatmap_boxes(boxes, tf.cast(image_shape, tf.float32)[:, None, :],
                             self.roi_align_mode, self.pool_size)
        return decode_heatmaps(logits, grid)

    def compute_output_shape(self, input_shapes):
        logits = input_shapes[0]
        return (logits[0], logits[1], logits[4], 3)

    def get_config(self):
        config = super().get_config()
        config.update({"roi_align_mode": self.roi_align_mode, "pool_size": self.pool_size})
        return config

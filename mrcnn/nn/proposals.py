"""Region proposals: the RPN's best-scoring anchors, refined, clipped and de-duplicated.

All boxes are normalised (y1, x1, y2, x2) in the frame of the molded image.
"""
import keras
import numpy as np
import tensorflow as tf

from mrcnn.nn import box_ops


def _static_or_dynamic(tensor, axis):
    """Size of `axis`: a Python int where static, else an int32 scalar."""
    size = tensor.shape[axis]
    return size if size is not None else tf.shape(tensor)[axis]


def top_anchors(scores, deltas, anchors, limit):
    """Keep the `limit` best-scoring anchors of each image, best first.

    Args:
        scores: float [B, A] foreground scores.
        deltas: float [B, A, 4].
        anchors: float [A, 4] shared by the batch, or [B, A, 4].
        limit: int, the most anchors to keep (min(limit, A) are kept).
    Returns:
        (scores [B, K], deltas [B, K, 4], anchors [B, K, 4]) sorted by descending score;
        equal scores keep their anchor order (tf.math.top_k breaks ties by lower index).
    """
    num_anchors = _static_or_dynamic(scores, 1)
    if isinstance(num_anchors, int):
        k = min(limit, num_anchors)
    else:
        k = tf.minimum(limit, num_anchors)
    scores, ix = tf.math.top_k(scores, k=k, sorted=True)
    deltas = tf.gather(deltas, ix, batch_dims=1)
    if anchors.shape.rank == 2:
        anchors = tf.gather(anchors, ix)
    else:
        anchors = tf.gather(anchors, ix, batch_dims=1)
    return scores, deltas, anchors


def nms_padded(boxes, scores, max_output_size, iou_threshold):
    """Greedy NMS of one image's boxes, zero-padded to a fixed count.

    Args:
        boxes: float32 [K, 4]; scores: float32 [K].
        max_output_size: int, rows of the result.
        iou_threshold: a box is suppressed when its IoU with a kept box exceeds this.
    Returns:
        float32 [max_output_size, 4]: the kept boxes by descending score, then zero rows.
    """
    keep = tf.image.non_max_suppression(boxes, scores, max_output_size, iou_threshold)
    kept = tf.gather(boxes, keep)
    padding = max_output_size - tf.shape(kept)[0]
    kept = tf.pad(kept, [[0, padding], [0, 0]])
    return tf.reshape(kept, [max_output_size, 4])


@keras.saving.register_keras_serializable(package="mrcnn")
class ProposalLayer(keras.layers.Layer):
    """Turn RPN outputs into region proposals.

    Inputs `[rpn_probs, rpn_bbox, anchors]`:
        rpn_probs: float [B, A, 2] (background, foreground) probabilities.
        rpn_bbox: float [B, A, 4] deltas (dy, dx, log dh, log dw) / rpn_bbox_std_dev.
        anchors: float [A, 4] or [B, A, 4] normalised anchors.
    Steps: top min(pre_nms_limit, A) anchors by foreground score; deltas * std dev
    applied to those anchors (log sizes clamped at box_ops.MAX_LOG_SCALE, so the boxes are
    finite for any finite deltas); clip to [0, 0, 1, 1]; NMS at `nms_threshold` keeping at
    most `proposal_count` boxes.
    Returns:
        float32 [B, proposal_count, 4] normalised proposals by descending score, zero rows
        at the end.
    """

    def __init__(self, proposal_count, nms_threshold, pre_nms_limit=6000,
                 rpn_bbox_std_dev=(0.1, 0.1, 0.2, 0.2), name="ROI", **kwargs):
        kwargs.setdefault("dtype", "float32")  # box arithmetic and NMS stay float32
        super().__init__(name=name, **kwargs)
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in np.reshape(rpn_bbox_std_dev, [4])]

    def call(self, inputs):
        rpn_probs, rpn_bbox, anchors = inputs
        scores = tf.cast(rpn_probs[:, :, 1], tf.float32)
        deltas = tf.cast(rpn_bbox, tf.float32) * tf.constant(self.rpn_bbox_std_dev)
        anchors = tf.cast(anchors, tf.float32)
        scores, deltas, anchors = top_anchors(scores, deltas, anchors, self.pre_nms_limit)
        boxes = box_ops.apply_box_deltas(anchors, deltas)
        boxes = box_ops.clip_boxes(boxes, tf.constant([0.0, 0.0, 1.0, 1.0]))
        def per_image(args):
            return nms_padded(args[0], args[1], self.proposal_count, self.nms_threshold)

        proposals = tf.map_fn(
            per_image,
            (boxes, scores),
            fn_output_signature=tf.TensorSpec([self.proposal_count, 4], tf.float32))
        return proposals

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.proposal_count, 4)

    def get_config(self):
        config = super().get_config()
        config.update({
            "proposal_count": self.proposal_count,
            "nms_threshold": self.nms_threshold,
            "pre_nms_limit": self.pre_nms_limit,
            "rpn_bbox_std_dev": self.rpn_bbox_std_dev,
        })
        return config

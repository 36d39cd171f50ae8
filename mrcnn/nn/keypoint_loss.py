"""The keypoint loss: softmax cross-entropy over each keypoint's heatmap cells.

For every training target (a labelled keypoint of a positive ROI that falls on the ROI's
heatmap grid, see keypoint_targets) the heatmap's mh * mw logits are one softmax and the
loss is -log p(target cell). The loss of a batch is the sum over targets divided by the
number of targets in the batch (detectron2's default, `normalize_by_visible_keypoints`):
every labelled keypoint weighs the same whichever ROI or image it is in, so an ROI with
two labelled keypoints does not count as much as one with seventeen, and the loss is the
mean per keypoint, comparable across batches. (The paper's alternative, dividing by
positives x K, would shrink the loss of sparsely labelled batches.) With no target the
loss is 0, never NaN.
"""
import tensorflow as tf


def mrcnn_keypoint_loss(target_keypoints, target_weights, pred_logits):
    """Mean softmax cross-entropy over the batch's keypoint targets.

    Args:
        target_keypoints: int [B, N, K] flat heatmap index row * mw + column.
        target_weights: float [B, N, K] 1 for a target, 0 ignored.
        pred_logits: float [B, N, mh, mw, K] heatmap logits.
    Returns:
        float32 scalar: sum(weight * cross-entropy) / sum(weight); 0 without targets.
    """
    logits = tf.cast(pred_logits, tf.float32)
    shape = tf.shape(logits)
    cells = shape[2] * shape[3]
    logits = tf.transpose(logits, [0, 1, 4, 2, 3])                  # [B, N, K, mh, mw]
    logits = tf.reshape(logits, tf.concat([shape[:2], shape[4:5], [cells]], axis=0))
    weights = tf.cast(target_weights, tf.float32)
    labels = tf.where(weights > 0, tf.cast(target_keypoints, tf.int32), 0)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    loss = tf.where(weights > 0, loss, 0.0)                           # no 0 * inf
    return tf.math.divide_no_nan(tf.reduce_sum(loss * weights), tf.reduce_sum(weights))


def keypoint_target_count(target_weights):
    """The denominator of mrcnn_keypoint_loss: float32 scalar, the batch's targets."""
    return tf.reduce_sum(tf.cast(target_weights, tf.float32))

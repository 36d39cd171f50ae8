"""The five training losses of Mask R-CNN, as functions of tensors.

Each returns a float32 scalar, computed in float32 whatever the predictions' dtype, and
is 0 (never NaN) when there is nothing to score: no labelled anchors, no positive anchors,
no active predictions or no positive ROIs. The averaging follows upstream: every loss is
a mean over the elements it scores. Everything is batched; no loop over images.

Shapes: B images, A anchors, K rows of RPN box targets per image, T ROIs per image,
NC classes, (h, w) the mask size.
"""
import tensorflow as tf

BCE_EPSILON = 1e-7


def smooth_l1(y_true, y_pred):
    """Element-wise smooth-L1 (Huber with delta 1): 0.5 d^2 where |d| < 1, else |d| - 0.5."""
    diff = tf.abs(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32))
    return tf.where(diff < 1.0, 0.5 * tf.square(diff), diff - 0.5)


def _masked_mean(values, mask):
    """Mean of `values` where `mask` is true; 0 where nothing is selected.

    Args:
        values: float32 [...]; mask: bool [...] matching the leading axes of values.
    """
    for _ in range(values.shape.rank - mask.shape.rank):
        mask = tf.expand_dims(mask, -1)
    mask = tf.broadcast_to(mask, tf.shape(values))
    total = tf.reduce_sum(tf.where(mask, values, 0.0))
    count = tf.reduce_sum(tf.cast(mask, tf.float32))
    return tf.math.divide_no_nan(total, count)


def rpn_class_loss(rpn_match, rpn_class_logits):
    """Anchor classifier loss: softmax cross-entropy over labelled anchors.

    Args:
        rpn_match: int [B, A, 1] 1 positive, -1 negative, 0 neutral (not scored).
        rpn_class_logits: float [B, A, 2] background / foreground logits.
    Returns:
        float32 scalar, the mean over anchors with rpn_match != 0.
    """
    match = tf.cast(tf.squeeze(rpn_match, -1), tf.int32)
    labels = tf.cast(tf.equal(match, 1), tf.int32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.cast(rpn_class_logits, tf.float32))
    return _masked_mean(loss, tf.not_equal(match, 0))


def rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox):
    """Anchor box regression loss over positive anchors.

    The i-th positive anchor of an image (in anchor order) is paired with row i of that
    image's target_bbox, as the input pipeline writes them. Positive anchors beyond the
    K target rows have no target and are not scored.

    Args:
        target_bbox: float [B, K, 4] deltas / RPN_BBOX_STD_DEV, zero-padded.
        rpn_match: int [B, A, 1] 1 marks a positive anchor.
        rpn_bbox: float [B, A, 4] predicted deltas.
    Returns:
        float32 scalar, smooth-L1 averaged over the [positives, 4] elements.
    """
    positive = tf.equal(tf.cast(tf.squeeze(rpn_match, -1), tf.int32), 1)     # [B, A]
    rank = tf.cumsum(tf.cast(positive, tf.int32), axis=1, exclusive=True)     # [B, A]
    rows = tf.shape(target_bbox)[1]
    scored = positive & (rank < rows)
    targets = tf.gather(target_bbox, tf.minimum(rank, rows - 1), batch_dims=1)  # [B, A, 4]
    return _masked_mean(smooth_l1(targets, rpn_bbox), scored)


def mrcnn_class_loss(target_class_ids, pred_class_logits, active_class_ids):
    """Classifier head loss: softmax cross-entropy, ignoring predictions of absent classes.

    A ROI whose predicted (argmax) class is not among its image's active classes (the
    classes of the dataset the image comes from) does not count. Each image uses its own
    row of active_class_ids.

    Args:
        target_class_ids: int [B, T] (zero-padded ROIs count as background).
        pred_class_logits: float [B, T, NC].
        active_class_ids: float or int [B, NC], 1 for classes of the image's dataset.
    Returns:
        float32 scalar, sum(loss * active) / sum(active).
    """
    logits = tf.cast(pred_class_logits, tf.float32)
    labels = tf.cast(target_class_ids, tf.int32)
    predicted = tf.argmax(logits, axis=2, output_type=tf.int32)
    active = tf.gather(tf.cast(active_class_ids, tf.float32), predicted, batch_dims=1)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.math.divide_no_nan(tf.reduce_sum(loss * active), tf.reduce_sum(active))


def _true_class_rows(predictions, class_ids):
    """Pick each ROI's true-class slice: [B, T, NC, ...] -> [B, T, ...]."""
    return tf.gather(predictions, tf.maximum(class_ids, 0), axis=2, batch_dims=2)


def mrcnn_bbox_loss(target_bbox, target_class_ids, pred_bbox):
    """Box head loss: smooth-L1 of the true class's deltas over positive ROIs.

    Args:
        target_bbox: float [B, T, 4] deltas / BBOX_STD_DEV.
        target_class_ids: int [B, T], > 0 marks a positive ROI.
        pred_bbox: float [B, T, NC, 4] predicted deltas per class.
    Returns:
        float32 scalar, mean over the [positives, 4] elements.
    """
    class_ids = tf.cast(target_class_ids, tf.int32)
    predicted = _true_class_rows(tf.cast(pred_bbox, tf.float32), class_ids)     # [B, T, 4]
    return _masked_mean(smooth_l1(target_bbox, predicted), class_ids > 0)


def mrcnn_mask_loss(target_masks, target_class_ids, pred_masks):
    """Mask head loss: binary cross-entropy of the true class's mask over positive ROIs.

    Args:
        target_masks: float [B, T, h, w] in {0, 1}.
        target_class_ids: int [B, T], > 0 marks a positive ROI.
        pred_masks: float [B, T, h, w, NC] sigmoid probabilities.
    Returns:
        float32 scalar, mean over the [positives, h, w] elements. Probabilities are
        clipped to [1e-7, 1 - 1e-7] as Keras' binary cross-entropy does.
    """
    class_ids = tf.cast(target_class_ids, tf.int32)
    per_class = tf.transpose(tf.cast(pred_masks, tf.float32), [0, 1, 4, 2, 3])  # [B,T,NC,h,w]
    predicted = tf.clip_by_value(_true_class_rows(per_class, class_ids),
                                 BCE_EPSILON, 1.0 - BCE_EPSILON)
    target = tf.cast(target_masks, tf.float32)
    bce = -(target * tf.math.log(predicted) + (1.0 - target) * tf.math.log(1.0 - predicted))
    return _masked_mean(bce, class_ids > 0)

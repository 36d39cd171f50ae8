"""Box arithmetic on tensors, shared by the graph layers.

Boxes are (y1, x1, y2, x2). Inside the graph they are normalised to the molded image:
norm = (pixel_box - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1], so a full-image box is
(0, 0, 1, 1). Deltas are (dy, dx, log(dh), log(dw)) relative to a box's centre and size,
with sizes taken as (y2 - y1, x2 - x1).
"""
import math

import tensorflow as tf

# The largest log(dh), log(dw) a delta may apply: a box grows at most 1000 / 16 = 62.5
# times per side (detectron2's and torchvision's bound). Without it exp() overflows for
# log sizes above ~88, the box edges become inf/NaN and ROI pooling rejects them.
MAX_LOG_SCALE = math.log(1000.0 / 16)


def apply_box_deltas(boxes, deltas, max_log_scale=MAX_LOG_SCALE):
    """Shift and scale boxes by deltas.

    Args:
        boxes: float [..., 4] (y1, x1, y2, x2).
        deltas: float [..., 4] (dy, dx, log(dh), log(dw)), already multiplied by the
            standard deviations the network was trained with.
        max_log_scale: log(dh) and log(dw) are clamped from above to this (MAX_LOG_SCALE,
            a 62.5x growth), so finite deltas always give finite boxes; None: no clamp.
            Trained networks stay far below it, so their boxes are unchanged.
    Returns:
        float [..., 4] refined boxes in the frame of `boxes`.
    """
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = boxes[..., 0] + 0.5 * height
    center_x = boxes[..., 1] + 0.5 * width
    center_y += deltas[..., 0] * height
    center_x += deltas[..., 1] * width
    log_height, log_width = deltas[..., 2], deltas[..., 3]
    if max_log_scale is not None:
        log_height = tf.minimum(log_height, max_log_scale)
        log_width = tf.minimum(log_width, max_log_scale)
    height *= tf.exp(log_height)
    width *= tf.exp(log_width)
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=-1)


def clip_boxes(boxes, window):
    """Clip boxes to a window.

    Args:
        boxes: float [..., 4].
        window: float [4] (y1, x1, y2, x2), or [..., 4] broadcastable against boxes.
    Returns:
        float [..., 4] boxes lying inside the window (possibly with zero area).
    """
    window = tf.cast(window, boxes.dtype)
    wy1, wx1, wy2, wx2 = tf.unstack(window, axis=-1)
    if window.shape.rank is not None and window.shape.rank > 1:
        wy1, wx1, wy2, wx2 = (tf.expand_dims(w, -1) for w in (wy1, wx1, wy2, wx2))
    y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
    y1 = tf.maximum(tf.minimum(y1, wy2), wy1)
    x1 = tf.maximum(tf.minimum(x1, wx2), wx1)
    y2 = tf.maximum(tf.minimum(y2, wy2), wy1)
    x2 = tf.maximum(tf.minimum(x2, wx2), wx1)
    return tf.stack([y1, x1, y2, x2], axis=-1)


def box_refinement(boxes, gt_boxes):
    """Deltas that turn `boxes` into `gt_boxes` (the inverse of apply_box_deltas).

    Args:
        boxes, gt_boxes: float [N, 4], same frame.
    Returns:
        float [N, 4] (dy, dx, log(dh), log(dw)), not divided by any standard deviation.
    """
    boxes = tf.cast(boxes, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height
    center_x = boxes[:, 1] + 0.5 * width
    gt_height = gt_boxes[:, 2] - gt_boxes[:, 0]
    gt_width = gt_boxes[:, 3] - gt_boxes[:, 1]
    gt_center_y = gt_boxes[:, 0] + 0.5 * gt_height
    gt_center_x = gt_boxes[:, 1] + 0.5 * gt_width
    dy = (gt_center_y - center_y) / height
    dx = (gt_center_x - center_x) / width
    dh = tf.math.log(gt_height / height)
    dw = tf.math.log(gt_width / width)
    return tf.stack([dy, dx, dh, dw], axis=1)


def overlaps(boxes1, boxes2):
    """IoU of every pair of boxes.

    Args:
        boxes1: float [N, 4]; boxes2: float [M, 4], same frame.
    Returns:
        float [N, M] intersection over union; 0 where a union is empty.
    """
    b1 = tf.expand_dims(boxes1, 1)   # [N, 1, 4]
    b2 = tf.expand_dims(boxes2, 0)   # [1, M, 4]
    y1 = tf.maximum(b1[..., 0], b2[..., 0])
    x1 = tf.maximum(b1[..., 1], b2[..., 1])
    y2 = tf.minimum(b1[..., 2], b2[..., 2])
    x2 = tf.minimum(b1[..., 3], b2[..., 3])
    intersection = tf.maximum(y2 - y1, 0.0) * tf.maximum(x2 - x1, 0.0)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    union = area1 + area2 - intersection
    return tf.math.divide_no_nan(intersection, union)


def norm_boxes(boxes, shape):
    """Pixel boxes (y2, x2 exclusive) -> normalised boxes.

    Args:
        boxes: [..., 4] pixel coordinates.
        shape: [2] (height, width) of the image the boxes live in.
    Returns:
        float32 [..., 4] normalised coordinates.
    """
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    scale = tf.concat([h, w, h, w], axis=-1) - 1.0
    shift = tf.constant([0.0, 0.0, 1.0, 1.0])
    return (tf.cast(boxes, tf.float32) - shift) / scale


def denorm_boxes(boxes, shape):
    """Normalised boxes -> int32 pixel boxes (y2, x2 exclusive)."""
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    scale = tf.concat([h, w, h, w], axis=-1) - 1.0
    shift = tf.constant([0.0, 0.0, 1.0, 1.0])
    return tf.cast(tf.round(boxes * scale + shift), tf.int32)


def trim_zero_rows(boxes, name="trim_zeros"):
    """Drop all-zero rows (padding) from a [N, 4] tensor.

    Returns:
        (boxes [M, 4], non_zero bool [N]).
    """
    non_zero = tf.cast(tf.reduce_sum(tf.abs(boxes), axis=1), tf.bool)
    return tf.boolean_mask(boxes, non_zero, name=name), non_zero

"""Keypoints in exported models: the graph's detection_keypoints in the input's pixels.

The TensorFlow twin of `mrcnn.keypoint_inference` for `serving.run_serving`: each
detection's (x, y, score) in the molded image's pixel-index frame maps to the original
image by the window (x_original = (x - window_x1 + 0.5) * W / window_width - 0.5, likewise
in y, clipped to the pixel indices), and the rows follow `serving.unmold_detections`:
kept detections first, in the graph's order, zero rows after them.

Output "keypoints" float32 [B, D, K, 3] (x, y, score), present for keypoint models only.
"""
import tensorflow as tf


def _kept_order(detections, original_hw, molded_hw, window, float64):
    """keep bool [B, D] and order int32 [B, D] exactly as serving.unmold_detections."""
    from mrcnn.export.serving import boxes_to_pixels

    class_ids = tf.cast(detections[..., 4], tf.int32)
    before_padding = tf.equal(tf.cumsum(tf.cast(class_ids <= 0, tf.int32), axis=1), 0)
    boxes = boxes_to_pixels(detections[..., :4], original_hw, molded_hw, window, float64)
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    keep = tf.logical_and(before_padding, area > 0)
    order = tf.argsort(tf.cast(tf.logical_not(keep), tf.int32), axis=1, stable=True)
    return tf.gather(keep, order, batch_dims=1), order


def keypoints_to_original(keypoints, original_hw, window):
    """float [B, D, K, 3] molded pixel-index frame -> float32 original pixel-index frame.

    original_hw: int32 [2] (H, W); window: int32 [4] (y1, x1, y2, x2) in the molded image.
    """
    keypoints = tf.cast(keypoints, tf.float32)
    size = tf.cast(original_hw, tf.float32)
    window = tf.cast(window, tf.float32)
    height, width = size[0], size[1]
    scale_y = height / tf.maximum(window[2] - window[0], 1.0)
    scale_x = width / tf.maximum(window[3] - window[1], 1.0)
    x = (keypoints[..., 0] - window[1] + 0.5) * scale_x - 0.5
    y = (keypoints[..., 1] - window[0] + 0.5) * scale_y - 0.5
    x = tf.clip_by_value(x, 0.0, width - 1.0)
    y = tf.clip_by_value(y, 0.0, height - 1.0)
    return tf.stack([x, y, keypoints[..., 2]], axis=-1)


def serving_keypoints(detections, keypoints, original_hw, molded_hw, window, float64=True):
    """The "keypoints" output: float32 [B, D, K, 3], rows as serving.unmold_detections'."""
    keep, order = _kept_order(detections, original_hw, molded_hw, window, float64)
    points = tf.gather(keypoints_to_original(keypoints, original_hw, window), order,
                       batch_dims=1)
    return points * tf.cast(keep, tf.float32)[:, :, None, None]


def keypoint_outputs(outputs, detections, original_hw, molded_hw, window, float64=True):
    """{"keypoints": ...} when the graph has detection_keypoints, else {}."""
    if "detection_keypoints" not in outputs:
        return {}
    return {"keypoints": serving_keypoints(detections, outputs["detection_keypoints"],
                                           original_hw, molded_hw, window, float64)}


def detection_masks_or_zeros(outputs):
    """The graph's detection_masks; zeros [B, D, 1, 1] for a keypoint-only model."""
    if "detection_masks" in outputs:
        return outputs["detection_masks"]
    detections = outputs["detections"]
    return tf.zeros(tf.concat([tf.shape(detections)[:2], [1, 1]], 0), tf.float32)

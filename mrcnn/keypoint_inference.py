"""Keypoints of the inference graph -> detect()'s "keypoints" in original-image pixels.

The graph decodes each detection's heatmaps to (x, y, score) in the molded image's
pixel-index frame (nn/keypoint_decoding.py). Molding resized the original image by the
window's size over the original's (cv2's half-pixel convention: x -> (x + 0.5) * s - 0.5
with s = window width / original width) and padded it by the window's corner, so

    x_original = (x - window_x1 + 0.5) * (W / (window_x2 - window_x1)) - 0.5

and likewise in y, then clipped to the image's pixel indices [0, W - 1] x [0, H - 1]
(decoded cells may lie up to half a heatmap cell beyond the box). Rows follow
`inference.unmold_detections`: padding detections and zero-area boxes are dropped.
"""
import numpy as np

from mrcnn import inference


def kept_detections(detections, original_image_shape, image_shape, window):
    """Row indices of the detections `inference.unmold_detections` keeps.

    Args:
        detections: float [D, 6] (y1, x1, y2, x2, class_id, score) normalised, zero-padded.
    Returns:
        int64 [N] rows of `detections`, in order.
    """
    detections = np.asarray(detections)
    padding = np.where(detections[:, 4] == 0)[0]
    count = padding[0] if padding.size else detections.shape[0]
    boxes = inference.detections_to_pixels(detections[:count, :4], original_image_shape,
                                           image_shape, window)
    keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
    return np.nonzero(keep)[0]


def keypoints_to_original(keypoints, original_image_shape, window):
    """(x, y, score) in the molded image -> (x, y, score) in the original image.

    Args:
        keypoints: float [..., K, 3] pixel-index frame of the molded image.
        original_image_shape: (H, W, ...) before molding.
        window: (y1, x1, y2, x2) of the original image inside the molded one.
    Returns:
        float32 [..., K, 3], x in [0, W - 1], y in [0, H - 1]; scores unchanged.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    height, width = int(original_image_shape[0]), int(original_image_shape[1])
    y1, x1, y2, x2 = (float(v) for v in window)
    scale_x = width / max(x2 - x1, 1.0)
    scale_y = height / max(y2 - y1, 1.0)
    x = (keypoints[..., 0] - x1 + 0.5) * scale_x - 0.5
    y = (keypoints[..., 1] - y1 + 0.5) * scale_y - 0.5
    x = np.clip(x, 0.0, width - 1.0)
    y = np.clip(y, 0.0, height - 1.0)
    return np.stack([x, y, keypoints[..., 2]], axis=-1).astype(np.float32)


def unmold_keypoints(detections, keypoints, original_image_shape, image_shape, window):
    """One image's detection_keypoints -> float32 [N, K, 3] aligned with detect()'s rois.

    Args:
        detections: float [D, 6] the graph's detections of the image.
        keypoints: float [D, K, 3] its detection_keypoints (molded pixel-index frame).
        original_image_shape, image_shape, window: as in `inference.unmold_detections`.
    """
    rows = kept_detections(detections, original_image_shape, image_shape, window)
    return keypoints_to_original(np.asarray(keypoints)[rows], original_image_shape, window)


def attach_keypoints(result, config, detections, keypoints, original_image_shape,
                     image_shape, window):
    """Add "keypoints" to one detect() result; a keypoint-only model
    (KEYPOINT_WITH_MASKS False) has no mask head, so its result has no "masks"."""
    result["keypoints"] = unmold_keypoints(detections, keypoints, original_image_shape,
                                           image_shape, window)
    if not config.KEYPOINT_WITH_MASKS:
        result.pop("masks", None)
    return result

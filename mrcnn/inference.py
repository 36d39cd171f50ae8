"""Between users' images and the inference graph: molding in, unmolding out.

Molding resizes an image as training did (utils.resize_image), subtracts MEAN_PIXEL and
describes it in an image_meta vector. Unmolding maps the graph's normalised detections
back to pixels of the original image and pastes each 28x28 mask into its box.
"""
import cv2
import numpy as np

from mrcnn import utils, validate
from mrcnn.data import mold_image
from mrcnn.image_meta import compose_image_meta


def as_rgb(image, channels=3, image_id=None):
    """A [H, W, C] image with the model's channel count, its dtype unchanged.

    Grey [H, W] or [H, W, 1] images are repeated to 3 channels and an alpha channel is
    dropped (validate.convert_channels). Anything else raises a ValueError naming the
    image.
    """
    image = np.asarray(image)
    try:
        return validate.convert_channels(image, channels)[0]
    except validate.DatasetError as error:
        label = f"image {image_id}" if image_id is not None else "image"
        raise ValueError(f"{label}: {error}") from None


def mold_inputs(images, config):
    """Resize, normalise and describe a list of images for the inference graph.

    Args:
        images: list of [H, W, C] arrays (any sizes).
    Returns:
        molded_images float32 [N, h, w, C], image_metas float32 [N, META],
        windows int32 [N, 4] (y1, x1, y2, x2 of each image inside its molded image).
    """
    molded_images, image_metas, windows = [], [], []
    for index, image in enumerate(images):
        image = as_rgb(image, config.IMAGE_CHANNEL_COUNT, index)
        molded, window, scale, _, _ = utils.resize_image(
            image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
            max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
        molded = mold_image(molded, config)
        meta = compose_image_meta(0, image.shape, molded.shape, window, scale,
                                  np.zeros([config.NUM_CLASSES], dtype=np.int32))
        molded_images.append(molded)
        image_metas.append(meta)
        windows.append(window)
    shapes = {m.shape for m in molded_images}
    if len(shapes) > 1:
        # Only "none"/"pad64" give per-image sizes; callers batch by shape.
        return molded_images, np.stack(image_metas), np.array(windows, dtype=np.int32)
    return np.stack(molded_images), np.stack(image_metas), np.array(windows, dtype=np.int32)


def detections_to_pixels(boxes, original_image_shape, image_shape, window):
    """Normalised boxes of the molded image -> int32 pixel boxes of the original image.

    Args:
        boxes: float [N, 4] normalised to the molded image.
        original_image_shape: (H, W, C) before resizing.
        image_shape: (h, w, C) of the molded image.
        window: (y1, x1, y2, x2) pixels of the original image inside the molded one.
    """
    window = utils.norm_boxes(np.asarray(window), image_shape[:2])
    wy1, wx1, wy2, wx2 = window
    shift = np.array([wy1, wx1, wy1, wx1])
    size = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    return utils.denorm_boxes((boxes - shift) / size, original_image_shape[:2])


def paste_masks(masks, boxes, image_shape, threshold=0.5):
    """Resize each small mask to its box and paste it into a full-size boolean mask.

    Args:
        masks: float [N, mh, mw] probabilities.
        boxes: int [N, 4] pixel boxes (y2, x2 exclusive) of the original image.
        image_shape: (H, W, ...) of the original image.
    Returns:
        bool [H, W, N].
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    full = np.zeros((height, width, len(boxes)), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(np.asarray(boxes, dtype=np.int64)):
        box_h, box_w = y2 - y1, x2 - x1
        if box_h <= 0 or box_w <= 0:
            continue
        resized = cv2.resize(np.asarray(masks[i], dtype=np.float32), (int(box_w), int(box_h)),
                             interpolation=cv2.INTER_LINEAR)
        top, left = max(y1, 0), max(x1, 0)
        bottom, right = min(y2, height), min(x2, width)
        if bottom <= top or right <= left:
            continue
        full[top:bottom, left:right, i] = (
            resized[top - y1:bottom - y1, left - x1:right - x1] >= threshold)
    return full


def unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window):
    """One image's graph outputs -> upstream's detection arrays in original-image pixels.

    Args:
        detections: float [D, 6] (y1, x1, y2, x2, class_id, score) normalised, zero-padded.
        mrcnn_mask: float [D, mh, mw, NUM_CLASSES].
    Returns:
        boxes int32 [N, 4], class_ids int32 [N], scores float32 [N], masks bool [H, W, N].
    """
    detections = np.asarray(detections)
    padding = np.where(detections[:, 4] == 0)[0]
    count = padding[0] if padding.size else detections.shape[0]
    boxes = detections[:count, :4]
    class_ids = detections[:count, 4].astype(np.int32)
    scores = detections[:count, 5].astype(np.float32)
    masks = np.asarray(mrcnn_mask)[np.arange(count), :, :, class_ids]

    boxes = detections_to_pixels(boxes, original_image_shape, image_shape, window)
    keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
    boxes, class_ids, scores, masks = boxes[keep], class_ids[keep], scores[keep], masks[keep]
    full_masks = paste_masks(masks, boxes, original_image_shape)
    return boxes.astype(np.int32), class_ids, scores, full_masks

"""Between users' images and the inference graph: molding in, unmolding out.

Molding resizes an image as training did (utils.resize_image), subtracts MEAN_PIXEL and
describes it in an image_meta vector. Unmolding maps the graph's normalised detections
back to pixels of the original image and pastes each 28x28 mask into its box.

What `detect()` accepts (`prepare_images`):

* a list (or tuple) of images, a single image ([H, W] or [H, W, C] with C a channel
  count `as_rgb` takes), or a 4-D array [B, H, W, C] as B images; a 3-D array whose last
  axis is no channel count (e.g. [B, H, W] grey images) is ambiguous and refused;
* images of any size but empty ones; uint8 as is, other dtypes converted as training
  converts a Dataset's images (`validate.check_image`: floats in [0, 1] times 255,
  floats in [0, 255] rounded, uint16 // 256) with a DataConversionWarning.

"crop" mode is for training: its random crop would lose the detections outside it, so
inference molds a crop-mode config as "pad64" (`inference_resize_mode`), which scales by
the same factor (IMAGE_MIN_DIM / short side, at least 1 and IMAGE_MIN_SCALE) and keeps
the whole image, padded to multiples of 64.
"""
import warnings

import numpy as np

from mrcnn import utils, validate
from mrcnn.data import mold_image
from mrcnn.image_meta import compose_image_meta
from mrcnn.utils import paste_masks  # noqa: F401  (its home before utils)


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


class ImageSizeWarning(UserWarning):
    """An image is so elongated that a side shrinks below one cell of the finest
    feature map when molded: detections along that side are unlikely."""


def _is_channel_axis(size, channels):
    """Whether the last axis of a 3-D array can be the channels of one image."""
    return size in ((1, 2, 3, 4) if channels == 3 else (channels,))


def as_image_list(images, channels=3):
    """The images of a detect()/mold_inputs() call as a list of arrays.

    Args:
        images: a list or tuple of images; or one array: [H, W] or [H, W, C] (C a channel
            count as_rgb converts: 1..4 for RGB models, else IMAGE_CHANNEL_COUNT) is one
            image, [B, H, W, C] is B images.
        channels: config.IMAGE_CHANNEL_COUNT.
    Returns:
        list of arrays (not yet checked).
    Raises:
        ValueError for a 3-D array whose last axis is no channel count ([B, H, W] grey
        images are ambiguous: pass a list) and for arrays of other ranks.
    """
    if isinstance(images, (list, tuple)):
        return list(images)
    if not hasattr(images, "shape") and not hasattr(images, "__array_interface__"):
        return list(images)
    array = np.asarray(images)
    if array.ndim == 4:
        return list(array)
    if array.ndim == 2 or (array.ndim == 3 and _is_channel_axis(array.shape[2], channels)):
        return [array]
    shape = "x".join(str(s) for s in array.shape)
    if array.ndim == 3:
        raise ValueError(
            f"images is one {shape} array: its last axis is no channel count, so it is "
            f"neither one [H, W, {channels}] image nor a [B, H, W, {channels}] batch; pass "
            f"a list of images (e.g. list(images) for [B, H, W] grey images)")
    raise ValueError(f"images is a {shape} array; pass a list of [H, W, {channels}] "
                     f"images, one image, or a [B, H, W, {channels}] array")


def check_image(image, channels, index):
    """One input image as uint8 [H, W, channels], and a note on any dtype conversion.

    Channels are converted by as_rgb (silently, as before); the dtype as training converts
    a Dataset's images (validate.check_image).
    Raises:
        ValueError naming the image index for empty images and values that no conversion
        takes (NaN, negative, floats above 255, ...).
    """
    image = np.asarray(image)
    if image.size == 0 or image.ndim < 2:
        shape = "x".join(str(s) for s in image.shape) or "a scalar"
        raise ValueError(f"image {index} is empty ({shape}): images must be [H, W, "
                         f"{channels}] with H, W >= 1")
    image = as_rgb(image, channels, index)
    try:
        image, notes = validate.check_image(image, channels)
    except validate.DatasetError as error:
        raise ValueError(f"image {index}: {error.problem}") from None
    return image, (notes[0] if notes else None)


def prepare_images(images, channels=3):
    """detect()'s input as a list of uint8 [H, W, channels] images (see the module doc).

    Each kind of dtype conversion is reported in one DataConversionWarning that lists the
    images it applied to.
    """
    prepared, converted = [], {}
    for index, image in enumerate(as_image_list(images, channels)):
        image, note = check_image(image, channels, index)
        prepared.append(image)
        if note:
            converted.setdefault(note, []).append(index)
    for note, indices in converted.items():
        label = "image" if len(indices) == 1 else "images"
        warnings.warn(f"{label} {', '.join(map(str, indices))}: {note}, as training converts "
                      f"a Dataset's images", validate.DataConversionWarning, stacklevel=3)
    return prepared


def inference_resize_mode(config):
    """The IMAGE_RESIZE_MODE images are molded with for inference.

    "crop" becomes "pad64": the same scale as the training crops (utils.resize_image
    scales both by max(1, IMAGE_MIN_DIM / short side, IMAGE_MIN_SCALE)), without the
    random crop, whose window (0, 0, d, d) would lose the crop offset. Other modes stay.
    """
    return "pad64" if config.IMAGE_RESIZE_MODE == "crop" else config.IMAGE_RESIZE_MODE


def _warn_if_thin(index, original_shape, window, config):
    """ImageSizeWarning when a side of the molded window is below BACKBONE_STRIDES[0]."""
    height, width = window[2] - window[0], window[3] - window[1]
    finest = int(config.BACKBONE_STRIDES[0])
    if min(height, width) < finest:
        warnings.warn(
            f"image {index} is {original_shape[0]}x{original_shape[1]} and molds to "
            f"{height}x{width} pixels (IMAGE_MAX_DIM {config.IMAGE_MAX_DIM}): a side below "
            f"{finest} px (BACKBONE_STRIDES[0]) leaves little to detect; split or tile "
            f"such images", ImageSizeWarning, stacklevel=4)


def mold_inputs(images, config):
    """Resize, normalise and describe images for the inference graph.

    Args:
        images: what detect() takes (see prepare_images): a list of [H, W, C] arrays of
            any sizes, one image, or a [B, H, W, C] array.
    Returns:
        molded_images float32 [N, h, w, C], image_metas float32 [N, META],
        windows int32 [N, 4] (y1, x1, y2, x2 of each image inside its molded image).
        Images are resized with `inference_resize_mode(config)`; where the molded sizes
        differ ("pad64", "none") molded_images is a list of [h_i, w_i, C] arrays.
    """
    molded_images, image_metas, windows = [], [], []
    mode = inference_resize_mode(config)
    for index, image in enumerate(prepare_images(images, config.IMAGE_CHANNEL_COUNT)):
        molded, window, scale, _, _ = utils.resize_image(
            image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
            max_dim=config.IMAGE_MAX_DIM, mode=mode)
        _warn_if_thin(index, image.shape, window, config)
        if mode == "none":
            validate.check_molded_size(molded.shape, config, f"image {index}")
        molded = subtract_mean_pixel(molded, config)
        meta = compose_image_meta(0, image.shape, molded.shape, window, scale,
                                  np.zeros([config.NUM_CLASSES], dtype=np.int32))
        molded_images.append(molded)
        image_metas.append(meta)
        windows.append(window)
    if not molded_images:
        size = config.IMAGE_META_SIZE
        return (np.zeros((0,) + tuple(int(s) for s in config.IMAGE_SHAPE), np.float32),
                np.zeros((0, size), np.float32), np.zeros((0, 4), np.int32))
    shapes = {m.shape for m in molded_images}
    if len(shapes) > 1:
        # Only "none"/"pad64" give per-image sizes; callers batch by shape.
        return molded_images, np.stack(image_metas), np.array(windows, dtype=np.int32)
    return np.stack(molded_images), np.stack(image_metas), np.array(windows, dtype=np.int32)


def subtract_mean_pixel(image, config):
    """`data.mold_image` of one image, bit for bit, without its slow inner loop.

    numpy broadcasts MEAN_PIXEL [C] over an innermost axis of C values, a loop of C
    elements per call; rows of W * C values against the mean tiled W times do the same
    float32 subtractions about 5x faster (a 1024x1024 image: 1.3 ms instead of 7 ms).

    Args:
        image: [H, W, C] pixel values 0..255 (any real dtype).
    Returns:
        float32 [H, W, C]: image - MEAN_PIXEL.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        return mold_image(image, config)
    height, width, channels = image.shape
    mean = np.tile(np.asarray(config.MEAN_PIXEL, dtype=np.float32), width)
    rows = np.ascontiguousarray(image).reshape(height, width * channels)
    return np.subtract(rows, mean, dtype=np.float32).reshape(height, width, channels)


def warn_if_unit_range(molded_images, config):
    """Warn when molded images look like [0, 1] images minus MEAN_PIXEL.

    Args:
        molded_images: float32 [N, h, w, C] (image - MEAN_PIXEL, zero padding included).
    An image whose pixel values (molded + MEAN_PIXEL) all lie in [0, 1] but not all at 0
    is almost surely a float image that was not scaled to 0..255: the model then sees a
    black image and its detections mean nothing.
    """
    for index, molded in enumerate(molded_images):
        pixels = molded + np.asarray(config.MEAN_PIXEL, np.float32)
        top = float(pixels.max()) if pixels.size else 0.0
        if 0 < top <= 1 + 1e-3:
            warnings.warn(
                f"molded image {index} holds pixel values in [0, {top:.3g}] (molded + "
                f"MEAN_PIXEL): mold_image expects images with values 0..255; scale float "
                f"[0, 1] images by 255 first (detect() does)", UserWarning, stacklevel=3)


def detections_to_pixels(boxes, original_image_shape, image_shape, window):
    """Normalised boxes of the molded image -> int32 pixel boxes of the original image.

    Both frames use the normalised convention (box - [0, 0, 1, 1]) / [h-1, w-1, h-1, w-1],
    so the map is linear in pixel indices: the window's first pixel goes to the original's
    first pixel and the window's last pixel (y2 - 1, x2 - 1) to the original's last one.

    Args:
        boxes: float [N, 4] normalised to the molded image (clipped to the window, as the
            DetectionLayer does).
        original_image_shape: (H, W, C) before resizing.
        image_shape: (h, w, C) of the molded image.
        window: (y1, x1, y2, x2) pixels of the original image inside the molded one.
            An axis on which the window is one pixel wide (a 1-pixel side that was not
            resized) maps onto that single pixel.
    Returns:
        int32 [N, 4] pixels of the original image, y2/x2 exclusive.
    """
    y1, x1, y2, x2 = (int(v) for v in window)
    if y2 <= y1 or x2 <= x1:
        raise ValueError(f"the window {(y1, x1, y2, x2)} is empty: it must hold at least "
                         f"one pixel of the {image_shape[0]}x{image_shape[1]} molded image")
    window = utils.norm_boxes(np.array([y1, x1, y2, x2]), image_shape[:2])
    wy1, wx1, wy2, wx2 = window
    shift = np.array([wy1, wx1, wy1, wx1])
    size = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    size = np.where(size > 0, size, 1)
    return utils.denorm_boxes((boxes - shift) / size, original_image_shape[:2])


MASK_FORMATS = ("full", "box", "rle")


def check_mask_format(mask_format):
    """A ValueError naming the choices for a mask_format detect() does not know."""
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format must be one of {', '.join(map(repr, MASK_FORMATS))}, "
                         f"got {mask_format!r}")


def encode_box_mask(box_mask, box, image_shape):
    """COCO compressed RLE of a full-image mask given only its part inside a box.

    The full [H, W] mask is never made: COCO's RLE runs over the image column by column
    (Fortran order, pixel (y, x) at x * H + y), so the runs are found from the box's
    pixels alone, every pixel outside the box being background, and pycocotools
    compresses them.

    Args:
        box_mask: bool [y2 - y1, x2 - x1], the mask's pixels inside `box`.
        box: (y1, x1, y2, x2) pixels of the image, inside it, y2/x2 exclusive.
        image_shape: (H, W, ...) of the image.
    Returns:
        {"size": [H, W], "counts": str}: what pycocotools.mask.encode gives for the full
        mask (counts decoded to ASCII, so `json.dump` takes it; pycocotools reads str and
        bytes alike).
    """
    from pycocotools import mask as mask_utils

    height, width = int(image_shape[0]), int(image_shape[1])
    y1, x1 = int(box[0]), int(box[1])
    box_mask = np.asarray(box_mask, dtype=bool)
    rows, cols = box_mask.shape
    # One row per image column, the box's pixels framed by background above and below.
    columns = np.zeros((cols, rows + 2), dtype=np.int8)
    columns[:, 1:-1] = box_mask.T
    column, row = np.nonzero(np.diff(columns, axis=1))
    # Pixel (y1 + row, x1 + column) starts a run; ascending because nonzero is row-major.
    starts = (x1 + column.astype(np.int64)) * height + y1 + row
    # A run that ends at the image's last row and one that starts at the next column's
    # first row are one run: both boundaries fall on the same position; drop the pair.
    joined = np.flatnonzero(starts[1:] == starts[:-1])
    starts = np.delete(starts, np.concatenate([joined, joined + 1]))
    starts = starts[starts < height * width]      # the image's end starts no run
    counts = np.diff(np.concatenate([[0], starts, [height * width]]))
    rle = mask_utils.frPyObjects({"counts": counts.tolist(), "size": [height, width]},
                                 height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def encode_masks(masks, boxes, image_shape, threshold=0.5):
    """COCO RLE of predicted masks, pasted one at a time (no [H, W, N] stack).

    Args:
        masks: float [N, mh, mw] probabilities, mask i in the frame of box i.
        boxes: int [N, (y1, x1, y2, x2)] pixels of the image, y2/x2 exclusive.
        image_shape: (H, W, ...) of the image.
    Returns:
        list of N {"size": [H, W], "counts": str}: mask i equals
        utils.paste_masks(masks, boxes, image_shape)[..., i].
    """
    encoded = []
    for mask, box in zip(masks, np.asarray(boxes, dtype=np.int64)):
        inside, clipped = utils.paste_mask_in_box(mask, box, image_shape, threshold)
        encoded.append(encode_box_mask(inside, clipped, image_shape))
    return encoded


def format_masks(masks, boxes, image_shape, mask_format="full"):
    """Each detection's [mh, mw] probabilities in the form detect() returns.

    Args:
        masks: float [N, mh, mw] probabilities, mask i in the frame of box i.
        boxes: int [N, 4] pixel boxes of the original image.
        image_shape: (H, W, ...) of the original image.
        mask_format: "full": bool [H, W, N] (utils.paste_masks); "box": the
            probabilities themselves, float32 [N, mh, mw] (paste with utils.paste_mask);
            "rle": list of N COCO RLE dicts (encode_masks).
    """
    check_mask_format(mask_format)
    if mask_format == "box":
        return np.array(masks, dtype=np.float32)
    if mask_format == "rle":
        return encode_masks(masks, boxes, image_shape)
    return paste_masks(masks, boxes, image_shape)


def unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window,
                      mask_format="full"):
    """One image's graph outputs -> upstream's detection arrays in original-image pixels.

    Args:
        detections: float [D, 6] (y1, x1, y2, x2, class_id, score) normalised, zero-padded.
        mrcnn_mask: float [D, mh, mw, NUM_CLASSES] (the graph's mrcnn_mask, as upstream),
            or [D, mh, mw] masks of each detection's class (its detection_masks).
        mask_format: "full" (upstream's), "box" or "rle"; see format_masks.
    Returns:
        boxes int32 [N, 4], class_ids int32 [N], scores float32 [N], and masks: bool
        [H, W, N] ("full"), float32 [N, mh, mw] in the frame of each box ("box") or N
        COCO RLE dicts ("rle").
    """
    detections = np.asarray(detections)
    padding = np.where(detections[:, 4] == 0)[0]
    count = padding[0] if padding.size else detections.shape[0]
    boxes = detections[:count, :4]
    class_ids = detections[:count, 4].astype(np.int32)
    scores = detections[:count, 5].astype(np.float32)
    masks = np.asarray(mrcnn_mask)
    masks = masks[:count] if masks.ndim == 3 else masks[np.arange(count), :, :, class_ids]

    boxes = detections_to_pixels(boxes, original_image_shape, image_shape, window)
    keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
    boxes, class_ids, scores, masks = boxes[keep], class_ids[keep], scores[keep], masks[keep]
    masks = format_masks(masks, boxes, original_image_shape, mask_format)
    return boxes.astype(np.int32), class_ids, scores, masks

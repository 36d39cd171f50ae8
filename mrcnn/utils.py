"""Numpy helpers for Mask R-CNN: boxes, masks, resizing, anchors and AP.

Coordinate conventions used throughout this module:

* A box is ``(y1, x1, y2, x2)``. In pixel coordinates ``y2``/``x2`` are
  exclusive, so a box's height is ``y2 - y1`` and its width ``x2 - x1``.
* Normalised boxes (the frame the graph works in) are
  ``(box - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1]``; see
  :func:`norm_boxes` and :func:`denorm_boxes`.
* Masks are stacked on the last axis: ``[H, W, N]`` holds N instances.
* Box deltas are ``(dy, dx, log(dh), log(dw))`` relative to a box's centre
  and size.

Everything here is plain numpy (plus OpenCV for resizing) except
:func:`batch_slice`, which builds TensorFlow ops and imports TensorFlow only
when called.
"""
import mmap
import os
import shutil
import tempfile
import urllib.error
import urllib.request

import cv2
import numpy as np

from mrcnn.dataset import Dataset  # noqa: F401  (re-exported as utils.Dataset)

# Release URL of the COCO-trained weights published with matterport/Mask_RCNN.
COCO_MODEL_URL = ("https://github.com/matterport/Mask_RCNN/releases/download/"
                  "v2.0/mask_rcnn_coco.h5")

# OpenCV handles at most this many channels in one array.
_CV2_MAX_CHANNELS = 128


############################################################
#  Boxes
############################################################

def extract_bboxes(mask):
    """Tight bounding boxes of instance masks.

    mask: [H, W, N] array (bool or numeric; non-zero is foreground).

    Returns: int32 [N, (y1, x1, y2, x2)] in pixels, y2/x2 exclusive.
    An instance with no foreground pixel gets the box (0, 0, 0, 0).
    """
    mask = np.asarray(mask)
    rows = np.any(mask, axis=1)  # [H, N]: row y holds foreground
    cols = np.any(mask, axis=0)  # [W, N]: column x holds foreground
    present = rows.any(axis=0)   # [N]
    y1 = np.argmax(rows, axis=0)
    y2 = mask.shape[0] - np.argmax(rows[::-1], axis=0)
    x1 = np.argmax(cols, axis=0)
    x2 = mask.shape[1] - np.argmax(cols[::-1], axis=0)
    boxes = np.stack([y1, x1, y2, x2], axis=1) * present[:, None]
    return boxes.astype(np.int32)


def _box_areas(boxes):
    """Areas of [N, (y1, x1, y2, x2)] boxes: (y2 - y1) * (x2 - x1)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _safe_divide(numerator, denominator):
    """numerator / denominator, with 0 where the denominator is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.true_divide(numerator, denominator)
    return np.where(denominator == 0, 0, ratio)


def compute_iou(box, boxes, box_area, boxes_area):
    """IoU of one box with each of an array of boxes.

    box: (y1, x1, y2, x2). boxes: [N, (y1, x1, y2, x2)], same frame.
    box_area: area of ``box``. boxes_area: [N] areas of ``boxes``.
    The areas are passed in so callers can compute them once.

    Returns: [N] IoU; 0 where both boxes have zero area.
    """
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + boxes_area - intersection
    return _safe_divide(intersection, union)


def compute_overlaps(boxes1, boxes2):
    """IoU matrix of two sets of boxes.

    boxes1: [N1, (y1, x1, y2, x2)], boxes2: [N2, (y1, x1, y2, x2)], same
    frame (pixels or normalised).

    Returns: [N1, N2] IoU (float; float64 for integer boxes); 0 where both
    boxes have zero area. Rows are processed in blocks with reused buffers,
    so memory stays bounded for 261,888 anchors.
    """
    boxes1 = np.asarray(boxes1)
    boxes2 = np.asarray(boxes2)
    dtype = np.result_type(boxes1.dtype, boxes2.dtype)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.float64
    boxes1 = boxes1.astype(dtype, copy=False)
    boxes2 = boxes2.astype(dtype, copy=False)
    n1, n2 = boxes1.shape[0], boxes2.shape[0]
    overlaps = np.zeros((n1, n2), dtype=dtype)
    if overlaps.size == 0:
        return overlaps
    area1 = _box_areas(boxes1)
    area2 = _box_areas(boxes2)
    rows = max(1, (1 << 18) // n2)
    height_buf = np.empty((min(rows, n1), n2), dtype=dtype)
    width_buf = np.empty_like(height_buf)
    for start in range(0, n1, rows):
        b = boxes1[start:start + rows]
        out = overlaps[start:start + rows]          # a view: filled in place
        h, w = height_buf[:len(b)], width_buf[:len(b)]
        _overlap_extent(b[:, 0], b[:, 2], boxes2[:, 0], boxes2[:, 2], h, out)
        _overlap_extent(b[:, 1], b[:, 3], boxes2[:, 1], boxes2[:, 3], w, out)
        h *= w                                      # intersection
        np.add(area1[start:start + rows, None], area2, out=out)
        out -= h                                    # union
        np.divide(h, out, out=out, where=out > 0)   # union 0 stays 0
    return overlaps


def _overlap_extent(lo1, hi1, lo2, hi2, out, scratch):
    """Length of [lo1, hi1) & [lo2, hi2) for every pair, >= 0, into out [N1, N2]."""
    np.minimum(hi1[:, None], hi2, out=out)
    np.maximum(lo1[:, None], lo2, out=scratch)
    out -= scratch
    np.maximum(out, 0, out=out)


def compute_overlaps_masks(masks1, masks2):
    """IoU matrix of two sets of masks.

    masks1: [H, W, N1], masks2: [H, W, N2]; a pixel is foreground where the
    value is > 0.5 (bool masks work as is).

    Returns: float32 [N1, N2] IoU; zeros((N1, N2)) when either set is empty,
    and 0 for a pair of two empty masks.
    """
    n1, n2 = masks1.shape[-1], masks2.shape[-1]
    if n1 == 0 or n2 == 0:
        return np.zeros((n1, n2))
    flat1 = np.reshape(masks1 > .5, (-1, n1)).astype(np.float32)
    flat2 = np.reshape(masks2 > .5, (-1, n2)).astype(np.float32)
    area1 = flat1.sum(axis=0)
    area2 = flat2.sum(axis=0)
    intersections = flat1.T @ flat2
    union = area1[:, None] + area2[None, :] - intersections
    return _safe_divide(intersections, union).astype(np.float32)


def non_max_suppression(boxes, scores, threshold):
    """Greedy non-maximum suppression.

    boxes: [N, (y1, x1, y2, x2)]. scores: [N]. threshold: a box is dropped
    when its IoU with an already kept box is > threshold.

    Boxes are visited from the highest score down; equal scores are visited
    lower index first, which is the order tf.image.non_max_suppression uses.

    Returns: int32 [K] indices of the kept boxes, in the order they were kept.
    """
    boxes = np.asarray(boxes)
    if boxes.dtype.kind != "f":
        boxes = boxes.astype(np.float32)
    scores = np.asarray(scores, dtype=np.float64)
    areas = _box_areas(boxes)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        iou = compute_iou(boxes[best], boxes[rest], areas[best], areas[rest])
        order = rest[~(iou > threshold)]
    return np.array(keep, dtype=np.int32)


def _centres_and_sizes(boxes):
    """[N, (y1, x1, y2, x2)] -> (centre_y, centre_x, height, width), each [N]."""
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * height, boxes[:, 1] + 0.5 * width, height, width


def apply_box_deltas(boxes, deltas):
    """Move and resize boxes by deltas.

    boxes: [N, (y1, x1, y2, x2)]. deltas: [N, (dy, dx, log(dh), log(dw))],
    already multiplied by the std dev if they came from a network.

    Returns: float32 [N, (y1, x1, y2, x2)] in the frame of ``boxes``.

    Unclamped, as upstream: the exact inverse of :func:`box_refinement` for any pair of
    boxes. The graph (``mrcnn.nn.box_ops.apply_box_deltas``) clamps log(dh), log(dw) at
    log(1000 / 16); the two agree wherever a box grows less than 62.5 times.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    deltas = np.asarray(deltas, dtype=np.float32)
    centre_y, centre_x, height, width = _centres_and_sizes(boxes)
    centre_y = centre_y + deltas[:, 0] * height
    centre_x = centre_x + deltas[:, 1] * width
    height = height * np.exp(deltas[:, 2])
    width = width * np.exp(deltas[:, 3])
    y1 = centre_y - 0.5 * height
    x1 = centre_x - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=1)


def box_refinement(box, gt_box):
    """Deltas that turn each ``box`` into its ``gt_box``.

    box, gt_box: [N, (y1, x1, y2, x2)] in the same frame.

    Returns: float32 [N, (dy, dx, log(dh), log(dw))], not divided by the
    std dev (callers do that). Inverse of :func:`apply_box_deltas`.
    """
    box = np.asarray(box, dtype=np.float32)
    gt_box = np.asarray(gt_box, dtype=np.float32)
    centre_y, centre_x, height, width = _centres_and_sizes(box)
    gt_centre_y, gt_centre_x, gt_height, gt_width = _centres_and_sizes(gt_box)
    dy = (gt_centre_y - centre_y) / height
    dx = (gt_centre_x - centre_x) / width
    dh = np.log(gt_height / height)
    dw = np.log(gt_width / width)
    return np.stack([dy, dx, dh, dw], axis=1)


def norm_boxes(boxes, shape):
    """Pixel boxes -> normalised boxes.

    boxes: [..., (y1, x1, y2, x2)] in pixels, y2/x2 exclusive.
    shape: (height, width) of the image (extra entries are ignored).

    Returns: float32 boxes, ``(box - [0, 0, 1, 1]) / [h-1, w-1, h-1, w-1]``,
    so (0, 0, h, w) becomes (0, 0, 1, 1).
    """
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.divide(boxes - shift, scale).astype(np.float32)


def denorm_boxes(boxes, shape):
    """Normalised boxes -> pixel boxes; inverse of :func:`norm_boxes`.

    boxes: [..., (y1, x1, y2, x2)] normalised. shape: (height, width).

    Returns: int32 boxes in pixels, y2/x2 exclusive (rounded to nearest).
    """
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.around(np.multiply(boxes, scale) + shift).astype(np.int32)


def trim_zeros(x):
    """Drop the all-zero rows of a 2D array (padding of box tensors).

    x: [N, C]. Returns: [M, C] with M <= N, order kept.
    """
    if x.ndim != 2:
        raise ValueError("trim_zeros expects a 2D array, got shape {}".format(x.shape))
    return x[~np.all(x == 0, axis=1)]


############################################################
#  Resizing
############################################################

def _cv2_bilinear(image, out_h, out_w):
    """Bilinear resize of a float [H, W] or [H, W, C] array with OpenCV.

    Half-pixel centres, edge pixels replicated, no anti-aliasing.
    Returns an array of the same rank and dtype.
    """
    if image.ndim == 2:
        return cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    parts = []
    for start in range(0, image.shape[2], _CV2_MAX_CHANNELS):
        part = np.ascontiguousarray(image[:, :, start:start + _CV2_MAX_CHANNELS])
        out = cv2.resize(part, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        parts.append(out.reshape(out_h, out_w, part.shape[2]))
    return np.concatenate(parts, axis=2)


def _as_float_image(image, preserve_range):
    """Image -> float array the way skimage.transform.resize converts it."""
    if image.dtype == np.float16:
        return image.astype(np.float32)
    if image.dtype.kind == "f":
        return image
    if image.dtype == bool or preserve_range:
        return image.astype(np.float64)
    import skimage.util
    return skimage.util.img_as_float(image)


def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True,
           preserve_range=False, anti_aliasing=False, anti_aliasing_sigma=None):
    """Resize an image; same arguments and output dtype as skimage's resize.

    image: [H, W] or [H, W, C]. output_shape: (out_h, out_w) (a trailing
    channel entry equal to C is allowed).

    Returns: float [out_h, out_w(, C)] (float32 for float16/float32 input,
    float64 otherwise); with ``preserve_range=False`` integer images are
    scaled to [0, 1] first, as skimage does.

    Bilinear resizing without anti-aliasing (order=1, the case every caller
    in this package uses) runs in OpenCV: pixel centres are aligned as in
    skimage and the result equals ``skimage.transform.resize(...,
    mode="edge")`` to float rounding. Under ``mode="constant"`` skimage
    (through scipy.ndimage.zoom) also blends border pixels with ``cval``
    when enlarging, which darkens the image's outer 1-pixel frame; this
    function replicates the edge instead, so its output differs from
    skimage's only on that frame. Every other combination of arguments is
    delegated to skimage.
    """
    image = np.asarray(image)
    out_h, out_w = int(output_shape[0]), int(output_shape[1])
    keeps_channels = (len(output_shape) == 2
                      or tuple(output_shape[2:]) == image.shape[2:])
    fast = (order == 1 and not anti_aliasing and mode in ("constant", "edge")
            and image.ndim in (2, 3) and keeps_channels)
    if not fast:
        import skimage.transform
        return skimage.transform.resize(
            image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
            preserve_range=preserve_range, anti_aliasing=anti_aliasing,
            anti_aliasing_sigma=anti_aliasing_sigma)
    image = _as_float_image(image, preserve_range)
    if out_h == 0 or out_w == 0 or image.size == 0:
        return np.zeros((out_h, out_w) + image.shape[2:], dtype=image.dtype)
    # Bilinear output is a convex combination of input pixels, so it is
    # already inside the input's range: ``clip`` has nothing to do.
    return _cv2_bilinear(image, out_h, out_w)


def _scale_for(h, w, min_dim, max_dim, min_scale, mode):
    """Scale factor resize_image applies to an h x w image."""
    scale = 1
    if min_dim:
        # Scale up but not down.
        scale = max(1, min_dim / min(h, w))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        image_max = max(h, w)
        if round(image_max * scale) > max_dim:
            scale = max_dim / image_max
    return scale


# A scaled side is never shorter than this: a window 2 pixels wide still has a non-zero
# normalised extent ((x2 - 1 - x1) / (w - 1)), so detections can be mapped back out of it.
MIN_SCALED_SIDE = 2


def _scaled_shape(h, w, scale):
    """(round(h * scale), round(w * scale)), each at least MIN_SCALED_SIDE: the shape
    after scaling (a 5000x3 image scaled by 64/5000 becomes 64x2, not 64x0)."""
    return (max(MIN_SCALED_SIDE, round(h * scale)),
            max(MIN_SCALED_SIDE, round(w * scale)))


def _split_padding(total):
    """Split ``total`` pixels of padding into (before, after), extra after."""
    before = total // 2
    return before, total - before


def _pad(image, padding):
    """Zero-pad the first two axes; padding is [(top, bottom), (left, right), ...]."""
    pad_width = list(padding[:2]) + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad_width, mode="constant", constant_values=0)


def resize_image(image, min_dim=None, max_dim=None, min_scale=None, mode="square", rng=None):
    """Resize an image keeping its aspect ratio, then pad or crop it.

    image: [H, W, C] (or [H, W]) of any dtype; the output has the same dtype
    (integer images are truncated after bilinear resizing).
    min_dim: scale up (never down) so the short side is at least this.
    max_dim: in "square" mode, cap the long side at this and pad to
        max_dim x max_dim.
    min_scale: scale up by at least this factor.
    A side that would scale below MIN_SCALED_SIDE (2) pixels (a very elongated
    image in "square" mode) is stretched to 2 pixels, so a scaled window never
    has zero normalised extent; `scale` then describes the other side only.
    mode:
        "none": return the image unchanged.
        "square": scale, then pad to [max_dim, max_dim].
        "pad64": scale by min_dim/min_scale (max_dim is ignored), then pad
            each side to a multiple of 64. min_dim, if given, must be a
            multiple of 64.
        "crop": scale by min_dim/min_scale, then take a random
            min_dim x min_dim crop (drawn from rng).
    rng: np.random.Generator or RandomState for the crop offsets; None uses
        the global np.random.

    Returns:
        image: the resized image.
        window: (y1, x1, y2, x2) in pixels of the output: where the scaled
            image lies (padding excluded), y2/x2 exclusive.
        scale: the factor the image was scaled by.
        padding: [(top, bottom), (left, right), (0, 0)] pixels added.
        crop: (y, x, h, w) of the crop in the scaled image, or None.
    """
    image_dtype = image.dtype
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"resize_image: the image is {h}x{w} pixels (empty)")
    window = (0, 0, h, w)
    scale = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None
    if mode == "none":
        return image, window, scale, padding, crop
    if mode not in ("square", "pad64", "crop"):
        raise ValueError("Mode {} not supported".format(mode))
    if mode == "square" and not max_dim:
        raise ValueError("resize_image: mode 'square' needs max_dim")
    if mode == "crop" and not min_dim:
        raise ValueError("resize_image: mode 'crop' needs min_dim")
    if mode == "pad64" and min_dim and min_dim % 64:
        raise ValueError("resize_image: in mode 'pad64' min_dim must be a "
                         "multiple of 64, got {}".format(min_dim))

    scale = _scale_for(h, w, min_dim, max_dim, min_scale, mode)
    if scale != 1:
        image = _resize_pixels(image, *_scaled_shape(h, w, scale))
    h, w = image.shape[:2]

    if mode == "square":
        top, bottom = _split_padding(max_dim - h)
        left, right = _split_padding(max_dim - w)
    elif mode == "pad64":
        top, bottom = _split_padding(-h % 64)
        left, right = _split_padding(-w % 64)
    if mode in ("square", "pad64"):
        padding = [(top, bottom), (left, right), (0, 0)]
        image = _pad(image, padding)
        window = (top, left, h + top, w + left)
    else:  # crop
        source = np.random if rng is None else rng
        draw = source.integers if isinstance(source, np.random.Generator) else source.randint
        y = int(draw(0, h - min_dim + 1))
        x = int(draw(0, w - min_dim + 1))
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        window = (0, 0, min_dim, min_dim)
    # A copy also where the crop is a view of the caller's image (scale 1).
    return image.astype(image_dtype, copy=crop is not None), window, scale, padding, crop


def _resize_pixels(image, out_h, out_w):
    """resize_image's bilinear resize (OpenCV, half-pixel centres, edges replicated).

    image: [H, W] or [H, W, C] of any dtype. Returns [out_h, out_w(, C)] of the same dtype,
    integers truncated. 8-bit images are resized in float32, exact for their 0..255 values
    up to the rounding of float32 weights: where the float64 value lies within about 3e-5
    of an integer, truncation can land one level apart (measured on random images: a few
    values in 100,000 at COCO sizes, at most 3.5e-4 of them). Other dtypes are resized as
    `resize(..., preserve_range=True)` does (float64 for integers).
    """
    if image.dtype.itemsize == 1 and image.dtype.kind in "ui":
        resized = _cv2_bilinear(image.astype(np.float32), out_h, out_w)
    else:
        resized = resize(image, (out_h, out_w), preserve_range=True)
    return resized.astype(image.dtype)


def _nearest_indices(n_in, n_out):
    """Source index of each of n_out samples, nearest neighbour, half-pixel centres.

    Output pixel o covers input coordinate (o + 0.5) * n_in / n_out, the
    same sampling grid as the bilinear image resize, so masks stay aligned
    with their image.
    """
    o = np.arange(n_out, dtype=np.int64)
    return np.minimum(((2 * o + 1) * n_in) // (2 * n_out), n_in - 1)


def resize_mask(mask, scale, padding, crop=None):
    """Resize masks the way resize_image resized their image.

    mask: [H, W, N] (or [H, W]) of any dtype.
    scale, padding, crop: as returned by :func:`resize_image`.

    Returns: the mask in the frame of the resized image, same dtype; its
    height and width equal the resized image's. Nearest neighbour sampling
    on the same pixel grid as the image's bilinear resize, so the scaled
    mask lies exactly inside ``window``.
    """
    mask = np.asarray(mask)
    if scale != 1:
        h, w = mask.shape[:2]
        out_h, out_w = _scaled_shape(h, w, scale)
        rows = _nearest_indices(h, out_h)
        cols = _nearest_indices(w, out_w)
        mask = mask[rows][:, cols]
    if crop is not None:
        y, x, h, w = crop
        return mask[y:y + h, x:x + w]
    return _pad(mask, padding)


def _resize_to_bool(mask, out_h, out_w, threshold):
    """Bilinear resize of a [h, w] mask to [out_h, out_w], then >= threshold.

    Returns a bool [out_h, out_w]; all False when out_h or out_w is 0.
    """
    if out_h <= 0 or out_w <= 0:
        return np.zeros((max(out_h, 0), max(out_w, 0)), dtype=bool)
    values = _cv2_bilinear(np.asarray(mask, dtype=np.float32), out_h, out_w)
    return values >= threshold


# np.around on values in [0, 1] rounds 0.5 down (to even): threshold just above 0.5.
_ROUND_THRESHOLD = np.nextafter(np.float32(0.5), np.float32(1))


def minimize_mask(bbox, mask, mini_shape):
    """Crop each instance mask to its box and resize it to mini_shape.

    bbox: int [N, (y1, x1, y2, x2)] pixels, y2/x2 exclusive (as from
        :func:`extract_bboxes`).
    mask: [H, W, N] full-image masks.
    mini_shape: (height, width) of the mini masks, e.g. (56, 56).

    Returns: bool [mini_h, mini_w, N] (bilinear resize, rounded).
    Raises ValueError if an instance's box has zero area (an empty mask).
    """
    mini_shape = tuple(int(s) for s in mini_shape)
    mini_mask = np.zeros(mini_shape + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        crop = mask[y1:y2, x1:x2, i].astype(bool)
        if crop.size == 0:
            raise ValueError(
                "Invalid bounding box with area of zero for mask instance {}: "
                "box {}. The instance's mask is probably empty; remove empty "
                "instances before minimize_mask.".format(i, (y1, x1, y2, x2)))
        mini_mask[:, :, i] = _resize_to_bool(crop, *mini_shape, _ROUND_THRESHOLD)
    return mini_mask


def expand_mask(bbox, mini_mask, image_shape):
    """Paste mini masks back into full-image masks; inverse of minimize_mask.

    bbox: int [N, (y1, x1, y2, x2)] pixels of the full image.
    mini_mask: [mini_h, mini_w, N].
    image_shape: (H, W, ...) of the full image.

    Returns: bool [H, W, N]; instance i is resized (bilinear, rounded) to its
    box and is False outside it. A zero-area box gives an empty mask.
    """
    mask = np.zeros(tuple(image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        mask[y1:y2, x1:x2, i] = _resize_to_bool(
            mini_mask[:, :, i], y2 - y1, x2 - x1, _ROUND_THRESHOLD)
    return mask


def unmold_mask(mask, bbox, image_shape):
    """Turn one predicted mask into a full-image binary mask.

    mask: float [h, w] mask probabilities (e.g. the 28x28 head output).
    bbox: (y1, x1, y2, x2) in pixels of the full image, y2/x2 exclusive.
    image_shape: (H, W, ...) of the full image.

    Returns: bool [H, W], the mask resized (bilinear) to the box and
    thresholded at >= 0.5; False outside the box.
    """
    y1, x1, y2, x2 = (int(v) for v in bbox[:4])
    full_mask = np.zeros(tuple(image_shape[:2]), dtype=bool)
    full_mask[y1:y2, x1:x2] = _resize_to_bool(mask, y2 - y1, x2 - x1, 0.5)
    return full_mask


############################################################
#  Pasting predicted masks into the image
############################################################

def _zeros_paged(shape):
    """A zeroed bool array whose memory the OS maps in 4 KB pages on first write.

    detect()'s full-size masks are mostly zeros (100 masks of a 1024x1024 image: 105 MB,
    written only inside the boxes). numpy asks for transparent huge pages for arrays that
    large, and their page faults stall right after the graph has freed its buffers:
    pasting 100 masks took 40-230 ms there against 5 ms with an anonymous mmap, whose
    pages are ordinary (measured with random-weight detections at 1024x1024).
    """
    size = int(np.prod(shape))
    if size == 0:
        return np.zeros(shape, dtype=bool)
    return np.frombuffer(mmap.mmap(-1, size), dtype=bool).reshape(shape)


def paste_mask_in_box(mask, box, image_shape, threshold=0.5):
    """The part of one pasted mask that lies inside the image, and where it lies.

    The one implementation behind paste_mask, paste_masks and detect()'s "rle" masks:
    the probabilities are resized (bilinear, OpenCV) to the whole box, then thresholded,
    then the part inside the image is kept.

    Args:
        mask: float [mh, mw] probabilities in the frame of `box` (row 0 at y1, the last
            row at y2 - 1; e.g. a 28x28 head output).
        box: (y1, x1, y2, x2) pixels of the image, y2/x2 exclusive; it may reach outside
            the image.
        image_shape: (H, W, ...) of the image.
    Returns:
        (bool [y2' - y1', x2' - x1'], (y1', x1', y2', x2')): the box clipped to the image
        and the mask's pixels inside it; an empty (0-row or 0-column) array and a
        zero-area box when the box is empty or outside the image.
    """
    y1, x1, y2, x2 = (int(v) for v in box[:4])
    height, width = int(image_shape[0]), int(image_shape[1])
    top, left = min(max(y1, 0), height), min(max(x1, 0), width)
    bottom, right = max(min(y2, height), top), max(min(x2, width), left)
    if y2 <= y1 or x2 <= x1 or bottom == top or right == left:
        return np.zeros((bottom - top, right - left), dtype=bool), (top, left, bottom, right)
    resized = cv2.resize(np.asarray(mask, dtype=np.float32), (x2 - x1, y2 - y1),
                         interpolation=cv2.INTER_LINEAR)
    inside = resized[top - y1:bottom - y1, left - x1:right - x1] >= threshold
    return inside, (top, left, bottom, right)


def paste_mask(mask, box, image_shape, threshold=0.5):
    """One predicted mask as a full-image boolean mask.

    Args:
        mask: float [mh, mw] probabilities in the frame of `box` (a detect(...,
            mask_format="box") result's masks[i] with rois[i]).
        box: (y1, x1, y2, x2) pixels of the image, y2/x2 exclusive.
        image_shape: (H, W, ...) of the image.
        threshold: probabilities >= threshold (after the bilinear resize) are the mask.
    Returns:
        bool [H, W]: the mask resized to its box, False outside the box and the image.
    """
    full = np.zeros((int(image_shape[0]), int(image_shape[1])), dtype=bool)
    inside, (top, left, bottom, right) = paste_mask_in_box(mask, box, image_shape,
                                                           threshold)
    full[top:bottom, left:right] = inside
    return full


def paste_masks(masks, boxes, image_shape, threshold=0.5):
    """Predicted masks as the full-image boolean stack detect() returns by default.

    `paste_masks(r["masks"], r["rois"], image.shape)` of a detect(...,
    mask_format="box") result `r` equals detect()'s default "masks" bit for bit.

    Args:
        masks: float [N, mh, mw] probabilities, mask i in the frame of box i.
        boxes: int [N, (y1, x1, y2, x2)] pixels of the image, y2/x2 exclusive.
        image_shape: (H, W, ...) of the image.
        threshold: probabilities >= threshold (after the bilinear resize) are the mask.
    Returns:
        bool [H, W, N], a view of an [N, H, W] array: each mask is pasted into contiguous
        memory (writing [H, W, N] directly strides over all N masks at every pixel). Its
        pages are mapped on first write, so the memory resident is about the boxes' area.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    full = _zeros_paged((len(boxes), height, width))
    for i, box in enumerate(np.asarray(boxes, dtype=np.int64)):
        inside, (top, left, bottom, right) = paste_mask_in_box(masks[i], box, image_shape,
                                                               threshold)
        full[i, top:bottom, left:right] = inside
    return full.transpose(1, 2, 0)


############################################################
#  Anchors
############################################################

def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride):
    """Anchor boxes of one feature map.

    scales: anchor side(s) in pixels, e.g. 32 (a scalar or a 1D array).
    ratios: width/height ratios, e.g. [0.5, 1, 2].
    shape: (height, width) of the feature map.
    feature_stride: image pixels per feature-map cell.
    anchor_stride: place anchors on every anchor_stride-th cell.

    An anchor of scale s and ratio r has height s / sqrt(r) and width
    s * sqrt(r) and is centred on the cell's corner
    ``(y, x) * feature_stride``.

    Returns: float64 [positions * len(ratios) * len(scales), (y1, x1, y2, x2)]
    in image pixels. Order: positions row-major (y, then x); at each
    position the ratios in order (for each ratio, the scales in order).
    """
    scales, ratios = np.meshgrid(np.asarray(scales, dtype=np.float64),
                                 np.asarray(ratios, dtype=np.float64))
    scales, ratios = scales.ravel(), ratios.ravel()      # ratio-major
    sizes = np.stack([scales / np.sqrt(ratios), scales * np.sqrt(ratios)], axis=1)
    centre_y = np.arange(0, shape[0], anchor_stride) * feature_stride
    centre_x = np.arange(0, shape[1], anchor_stride) * feature_stride
    centre_y, centre_x = np.meshgrid(centre_y, centre_x, indexing="ij")
    centres = np.stack([centre_y.ravel(), centre_x.ravel()], axis=1)  # [P, 2]
    centres = np.repeat(centres, len(sizes), axis=0)                  # [P*A, 2]
    sizes = np.tile(sizes, (len(centre_y.ravel()), 1))                # [P*A, 2]
    return np.concatenate([centres - 0.5 * sizes, centres + 0.5 * sizes], axis=1)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides,
                             anchor_stride):
    """Anchors of every pyramid level, one scale per level.

    scales: [levels] anchor sizes, e.g. (32, 64, 128, 256, 512).
    ratios: width/height ratios used at every level.
    feature_shapes: [levels, (height, width)] feature-map shapes.
    feature_strides: [levels] strides, e.g. [4, 8, 16, 32, 64].
    anchor_stride: as in :func:`generate_anchors`.

    Returns: float64 [total, (y1, x1, y2, x2)] in image pixels, the levels
    concatenated in order. 1024x1024 with the defaults gives 261,888.
    """
    return np.concatenate([
        generate_anchors(scales[i], ratios, feature_shapes[i],
                         feature_strides[i], anchor_stride)
        for i in range(len(scales))], axis=0)


def compute_backbone_shapes(config, image_shape):
    """Feature-map shape of each pyramid level for an input image shape.

    config: a Config (uses BACKBONE, BACKBONE_STRIDES and, for a callable
        BACKBONE, COMPUTE_BACKBONE_SHAPE).
    image_shape: (height, width, ...) of the model input.

    Returns: int [levels, (height, width)], ceil(image side / stride).
    """
    if callable(config.BACKBONE):
        return config.COMPUTE_BACKBONE_SHAPE(image_shape)
    strides = np.asarray(config.BACKBONE_STRIDES)[:, None]
    sides = np.asarray(image_shape[:2], dtype=np.int64)[None, :]
    return -(-sides // strides)  # integer ceil division


############################################################
#  Evaluation: matches, AP, recall
############################################################

def _sort_by_score(pred_scores):
    """Indices ordering predictions by score, high to low, ties by index."""
    return np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable")


def compute_matches(gt_boxes, gt_class_ids, gt_masks,
                    pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):
    """Match predictions to ground truth by mask IoU.

    gt_boxes: [G, (y1, x1, y2, x2)] (all-zero rows are padding and dropped).
    gt_class_ids: [G] int. gt_masks: [H, W, G].
    pred_boxes: [P, (y1, x1, y2, x2)] (zero padding dropped), pred_class_ids:
        [P], pred_scores: [P], pred_masks: [H, W, P].
    iou_threshold: a match needs mask IoU >= this.
    score_threshold: candidate pairs with IoU below this are ignored (as in
        upstream, it applies to the IoU, not to the scores).

    Predictions are visited from the highest score down (ties by index);
    each takes the unmatched ground truth of its class with the highest
    IoU, if that IoU reaches iou_threshold.

    Returns:
        gt_match: float [G], index (in score order) of the matched
            prediction, or -1.
        pred_match: float [P], index of the matched ground truth, or -1.
            Predictions are in score order.
        overlaps: [P, G] mask IoU, predictions in score order.
    """
    gt_boxes = trim_zeros(np.asarray(gt_boxes))
    gt_masks = gt_masks[..., :gt_boxes.shape[0]]
    gt_class_ids = np.asarray(gt_class_ids)[:gt_boxes.shape[0]]
    pred_boxes = trim_zeros(np.asarray(pred_boxes))
    order = _sort_by_score(np.asarray(pred_scores)[:pred_boxes.shape[0]])
    pred_class_ids = np.asarray(pred_class_ids)[order]
    pred_masks = pred_masks[..., order]

    overlaps = compute_overlaps_masks(pred_masks, gt_masks)
    gt_match, pred_match = match_by_overlaps(
        overlaps, gt_class_ids, pred_class_ids,
        max(iou_threshold, score_threshold))
    return gt_match, pred_match, overlaps


def match_by_overlaps(overlaps, gt_class_ids, pred_class_ids, iou_threshold):
    """Greedy matching of :func:`compute_matches` on a precomputed IoU matrix.

    overlaps: [P, G] IoU, predictions in score order (best first).
    gt_class_ids: [G] int. pred_class_ids: [P] int, in score order.
    iou_threshold: a match needs IoU >= this.

    Each prediction in turn takes the unmatched ground truth of its class
    with the highest IoU, if that IoU reaches iou_threshold.

    Returns:
        gt_match: float [G], index of the matched prediction, or -1.
        pred_match: float [P], index of the matched ground truth, or -1.
    """
    overlaps = np.asarray(overlaps)
    gt_class_ids = np.asarray(gt_class_ids)
    pred_class_ids = np.asarray(pred_class_ids)
    pred_match = -1 * np.ones([len(pred_class_ids)])
    gt_match = -1 * np.ones([len(gt_class_ids)])
    eligible = ((overlaps >= iou_threshold)
                & (gt_class_ids[None, :] == pred_class_ids[:, None]))
    for i in range(len(pred_class_ids)):
        candidates = eligible[i] & (gt_match == -1)
        if not candidates.any():
            continue
        j = np.argmax(np.where(candidates, overlaps[i], -np.inf))
        gt_match[j] = i
        pred_match[i] = j
    return gt_match, pred_match


def average_precision_from_hits(hits, gt_count):
    """VOC all-point AP of a ranked list of detections.

    hits: bool [P], whether each detection (best score first) matched a
        ground truth. gt_count: number of ground-truth instances.

    Returns: (ap, precisions, recalls) as in :func:`compute_ap`; with
    gt_count 0 the recalls and the AP are NaN, as upstream.
    """
    true_positives = np.cumsum(np.asarray(hits, dtype=bool))
    precisions = true_positives / (np.arange(len(true_positives)) + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recalls = true_positives.astype(np.float32) / gt_count
    return _all_point_ap(precisions, recalls)


def _all_point_ap(precisions, recalls):
    """VOC all-point interpolated AP from per-detection precision/recall.

    precisions, recalls: [P] after each detection, in score order.

    Returns: (ap, precisions, recalls) where the curves are padded with
    (0, ..., 0) and (0, ..., 1) and precisions hold the running max from
    the right.
    """
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]
    steps = np.where(recalls[:-1] != recalls[1:])[0] + 1
    ap = np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps])
    return ap, precisions, recalls


def compute_ap(gt_boxes, gt_class_ids, gt_masks,
               pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):
    """Average precision of one image's detections at one mask-IoU threshold.

    Arguments as in :func:`compute_matches`.

    Returns:
        mAP: VOC all-point interpolated AP (area under the precision
            envelope; recall is 0 to 1 in steps of 1/G).
        precisions: [P + 2] interpolated precisions (padded, see below).
        recalls: [P + 2] recalls, padded with 0 in front and 1 at the end.
        overlaps: [P, G] mask IoU, predictions in score order.
    With no ground truth the recalls (and so mAP) are NaN, as upstream.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks,
        pred_boxes, pred_class_ids, pred_scores, pred_masks, iou_threshold)
    mAP, precisions, recalls = average_precision_from_hits(
        pred_match > -1, len(gt_match))
    return mAP, precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask,
                     pred_box, pred_class_id, pred_score, pred_mask,
                     iou_thresholds=None, verbose=1):
    """Mean of :func:`compute_ap` over several mask-IoU thresholds.

    iou_thresholds: defaults to np.arange(0.5, 1.0, 0.05) (0.5 ... 0.95),
    the COCO range. verbose: print AP per threshold and the mean.

    Returns: float, the mean AP.
    """
    if iou_thresholds is None:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    aps = []
    for iou_threshold in iou_thresholds:
        ap, _, _, _ = compute_ap(gt_box, gt_class_id, gt_mask,
                                 pred_box, pred_class_id, pred_score, pred_mask,
                                 iou_threshold=iou_threshold)
        if verbose:
            print("AP @{:.2f}:\t {:.3f}".format(iou_threshold, ap))
        aps.append(ap)
    mean_ap = np.array(aps).mean()
    if verbose:
        print("AP @{:.2f}-{:.2f}:\t {:.3f}".format(
            iou_thresholds[0], iou_thresholds[-1], mean_ap))
    return mean_ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """Recall of ground-truth boxes by predicted boxes at a box-IoU threshold.

    pred_boxes: [P, (y1, x1, y2, x2)], gt_boxes: [G, (y1, x1, y2, x2)].
    iou: a prediction is positive when its best box IoU is >= iou.

    Returns:
        recall: fraction of ground truth boxes that are the best match of
            at least one positive prediction.
        positive_ids: int [K] indices of the positive predictions.
    """
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    iou_max = np.max(overlaps, axis=1)
    iou_argmax = np.argmax(overlaps, axis=1)
    positive_ids = np.where(iou_max >= iou)[0]
    matched_gt_boxes = iou_argmax[positive_ids]
    recall = len(set(matched_gt_boxes)) / gt_boxes.shape[0]
    return recall, positive_ids


############################################################
#  TensorFlow helper
############################################################

def batch_slice(inputs, graph_fn, batch_size, names=None):
    """Run graph_fn on each item of a batch and stack the results.

    inputs: a tensor or list of tensors, each [batch, ...].
    graph_fn: called with one slice of each input; returns a tensor or a
        list/tuple of tensors.
    batch_size: number of items (the loop runs in Python, so it must be
        known when the graph is built).
    names: optional names of the stacked outputs.

    Returns: one stacked tensor [batch, ...], or a list of them when
    graph_fn returns several.
    """
    import tensorflow as tf

    if not isinstance(inputs, list):
        inputs = [inputs]
    outputs = []
    for i in range(batch_size):
        output_slice = graph_fn(*[x[i] for x in inputs])
        if not isinstance(output_slice, (tuple, list)):
            output_slice = [output_slice]
        outputs.append(output_slice)
    # From per-item lists of outputs to per-output lists of items.
    outputs = list(zip(*outputs))
    if names is None:
        names = [None] * len(outputs)
    result = [tf.stack(o, axis=0, name=n) for o, n in zip(outputs, names)]
    if len(result) == 1:
        result = result[0]
    return result


############################################################
#  Pretrained weights
############################################################

# Errors that mean the download did not get through (URLError covers DNS,
# refused connections and HTTP errors).
_NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError,
                   EOFError)


def download_trained_weights(coco_model_path, verbose=1):
    """Download the COCO-trained Mask R-CNN weights to coco_model_path.

    The file is written next to coco_model_path under a temporary name and
    renamed when complete, so an interrupted download leaves no partial
    file behind.

    Raises RuntimeError when the release URL cannot be reached.
    """
    if verbose > 0:
        print("Downloading pretrained model to " + str(coco_model_path) + " ...")
    target_dir = os.path.dirname(os.path.abspath(coco_model_path))
    fd, tmp_path = tempfile.mkstemp(dir=target_dir, suffix=".part",
                                    prefix=os.path.basename(coco_model_path) + ".")
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(COCO_MODEL_URL, timeout=60) as resp:
                shutil.copyfileobj(resp, out)
        os.replace(tmp_path, coco_model_path)
    except _NETWORK_ERRORS as error:
        _remove_quietly(tmp_path)
        raise RuntimeError(
            "Could not download the COCO weights from {url} ({error}). This "
            "machine cannot reach that URL (or the connection dropped). Download mask_rcnn_coco.h5 on a "
            "machine that can, copy it here and pass its local path "
            "instead (e.g. model.load_weights(path, by_name=True))."
            .format(url=COCO_MODEL_URL, error=error)) from error
    except BaseException:
        _remove_quietly(tmp_path)
        raise
    if verbose > 0:
        print("... done downloading pretrained model!")


def _remove_quietly(path):
    """Delete a file if it exists."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass

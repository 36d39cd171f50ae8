"""The training input path: from a Dataset image to the named inputs of the training graph.

Frames and units used here:

* images are uint8 [H, W, 3] until molded; a molded image is float32 ``image - MEAN_PIXEL``;
* boxes are (y1, x1, y2, x2) in pixels of the molded image, y2/x2 exclusive (the graph
  normalises them itself);
* anchors are the pixel anchors of ``utils.generate_pyramid_anchors`` for
  ``config.IMAGE_SHAPE``, in its order (level, then y, then x, then ratio);
* masks are bool [h, w, N]: full-image masks, or mini masks of MINI_MASK_SHAPE cropped to
  each instance's box when ``config.USE_MINI_MASK``.

What a Dataset returns is checked and converted by :mod:`mrcnn.validate` (errors name the
image); augmentation adapters live in :mod:`mrcnn.augment`.

Randomness (the crop of "crop" mode, RPN subsampling, instance subsampling, augmentation)
is drawn from an ``rng`` argument (``np.random.Generator`` or ``np.random.RandomState``);
without one the global ``np.random`` state is used, as upstream does. :class:`DataGenerator` derives one generator
per sample from (seed, epoch, pass, image_id), so a seed fixes its batches whatever the
number or the order of workers.
"""
import itertools
import logging
import math
import os
import sys

import keras
import numpy as np

from mrcnn import augment as augment_module
from mrcnn import keypoints as keypoint_module
from mrcnn import utils, validate
from mrcnn.image_meta import compose_image_meta, parse_image_meta, parse_image_meta_graph

__all__ = [
    "mold_image", "unmold_image", "compose_image_meta", "parse_image_meta",
    "parse_image_meta_graph", "load_image_gt", "apply_augmentation", "build_rpn_targets",
    "AnchorTable", "generate_random_rois",
    "build_detection_targets", "compute_anchors", "DataGenerator", "data_generator",
    "default_workers", "MASK_AUGMENTERS", "INPUT_NAMES",
]

logger = logging.getLogger(__name__)

# IoU thresholds of the RPN target assignment (upstream's values).
RPN_POSITIVE_IOU = 0.7
RPN_NEGATIVE_IOU = 0.3
RPN_CROWD_IOU = 0.001

# Upstream's list of the imgaug augmenters it also applied to masks. Kept for code that
# refers to it; masks now go through imgaug as segmentation maps, so every geometric
# augmenter moves them (see mrcnn.augment).
MASK_AUGMENTERS = ("Sequential", "SomeOf", "OneOf", "Sometimes", "Fliplr", "Flipud",
                   "CropAndPad", "Affine", "PiecewiseAffine")

# Names of the training graph's inputs, in upstream's order.
INPUT_NAMES = ("input_image", "input_image_meta", "input_rpn_match", "input_rpn_bbox",
               "input_gt_class_ids", "input_gt_boxes", "input_gt_masks")


############################################################
#  Molding
############################################################

def mold_image(images, config):
    """Subtract the mean pixel: uint8/float [..., H, W, C] -> float32, same shape.

    The only normalisation of the model's input (no division by a standard deviation).
    """
    return np.subtract(images, np.asarray(config.MEAN_PIXEL, dtype=np.float32),
                       dtype=np.float32)


def unmold_image(normalized_images, config):
    """Inverse of :func:`mold_image`: add the mean pixel back -> uint8, same shape.

    Values are truncated towards zero, as upstream's ``astype(np.uint8)``; callers pass
    molded images, so they lie in [0, 255] after adding the mean.
    """
    return (normalized_images + np.asarray(config.MEAN_PIXEL, dtype=np.float32)).astype(np.uint8)


def _mold_batch(images, config):
    """float32 [B, H, W, C] molded images from a list of B uint8 [H, W, C] (one pass each)."""
    mean = np.asarray(config.MEAN_PIXEL, dtype=np.float32)
    batch = np.empty((len(images),) + images[0].shape, dtype=np.float32)
    for b, image in enumerate(images):
        np.subtract(image, mean, out=batch[b], dtype=np.float32)
    return batch


############################################################
#  One image and its ground truth
############################################################

def _random_state(rng):
    """The rng to draw from: ``rng`` itself, or the global numpy state when it is None."""
    return np.random if rng is None else rng


def _integers(rng, low, high, size=None):
    """Integers in [low, high) from a Generator, a RandomState or the np.random module."""
    if isinstance(rng, np.random.Generator):
        return rng.integers(low, high, size)
    return rng.randint(low, high, size)


def _random_int(rng, high):
    """One integer in [0, high)."""
    return int(_integers(rng, 0, high))


def _seed(rng):
    """The augmentation seed drawn from ``rng`` as apply_augmentation draws it (None: None)."""
    if rng is None:
        return None
    return int(_integers(rng, 0, augment_module.SEED_RANGE))


def apply_augmentation(image, mask, augmentation, rng=None):
    """Apply an augmentation to an image and its masks with the same random draw.

    image: uint8 [H, W, 3]. mask: bool [H, W, N] full-image masks.
    augmentation: an imgaug augmenter, an albumentations transform or a function
        ``f(image, masks, rng)`` (see mrcnn.augment). Geometric augmenters move the
        masks with the image; colour augmenters change the image only.
    rng: seeds the draw (reproducible); None uses the augmenter's own random state.

    Returns: (image uint8 [H, W, 3], mask bool [H, W, N]). ValueError if the size changed.
    """
    return augment_module.apply_augmentation(image, mask, augmentation, rng)


def _active_class_ids(dataset, image_id):
    """int32 [num_classes]: 1 for the classes of the image's source (background included)."""
    active = np.zeros([dataset.num_classes], dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    active[dataset.source_class_ids[source]] = 1
    return active


def _drop_empty(class_ids, mask, keypoints=None):
    """Keep the instances whose mask has a pixel: (class_ids, boxes int32 [N, 4], mask,
    keypoints [N, K, 3] or None), rows kept aligned."""
    bbox = utils.extract_bboxes(mask)
    present = bbox[:, 2] > bbox[:, 0]
    if not present.all():
        keypoints = None if keypoints is None else keypoints[present]
        return class_ids[present], bbox[present], mask[:, :, present], keypoints
    return class_ids, bbox, mask, keypoints


def _molded_keypoints(dataset, config, image_id, image_shape, class_ids, scale, padding,
                      crop):
    """The image's checked keypoints moved by resize_image: float32 [N, K, 3]."""
    num_keypoints = int(getattr(config, "NUM_KEYPOINTS", 0) or 0) or None
    keypoints = validate.load_checked_keypoints(dataset, image_id, image_shape,
                                                len(class_ids), num_keypoints)
    return keypoint_module.resize_keypoints(keypoints, image_shape, scale, padding, crop)


def load_image_gt(dataset, config, image_id, augment=False, augmentation=None,
                  use_mini_mask=False, *, rng=None, with_keypoints=False):
    """Load an image with its ground truth, resized as the model sees it.

    Arguments, their order and defaults are upstream's.

    Args:
        dataset: a prepared Dataset. config: a Config (IMAGE_* resize settings,
            MINI_MASK_SHAPE, IMAGE_CHANNEL_COUNT).
        image_id: internal image id.
        augment: deprecated upstream flag (True/False): flip left-right with
            probability 0.5, with a warning. Use ``augmentation`` instead.
        augmentation: optional imgaug augmenter, albumentations transform or function
            (see mrcnn.augment), applied after resizing; geometric augmenters also move
            the masks.
        use_mini_mask: False (upstream's default): full-image masks [H, W, N]; True:
            mini masks of MINI_MASK_SHAPE. Training batches pass config.USE_MINI_MASK.
        rng: keyword only; random source of the crop of "crop" mode, of ``augment`` and
            of ``augmentation`` (see the module docstring).
        with_keypoints: keyword only; True adds a sixth value, the instances'
            keypoints from ``dataset.load_keypoints`` (checked by mrcnn.validate)
            moved with the image (see mrcnn.keypoints): resized, padded, cropped,
            flipped and augmented, left/right swapped by config.KEYPOINT_FLIP_MAP when
            the image is mirrored.

    Returns:
        image: uint8 [H, W, 3] molded size (not mean-subtracted).
        image_meta: float32 [IMAGE_META_SIZE] (see mrcnn.image_meta).
        class_ids: int32 [N]. Instances whose mask is empty after resizing, cropping or
            augmentation are dropped.
        bbox: int32 [N, (y1, x1, y2, x2)] pixels, the extent of each mask.
        mask: bool [H, W, N], or [MINI_MASK_SHAPE..., N] mini masks.
        keypoints (only with ``with_keypoints``): float32 [N, K, 3] (x, y, v) in the
            pixel-index frame of the returned image, rows aligned with class_ids;
            keypoints outside the image, unlabelled ones and those of crowd
            instances are (0, 0, 0).

    Raises:
        mrcnn.validate.DatasetError: the image or its masks are unusable (the message
            names the image id, its source and path).
    """
    if not isinstance(augment, (bool, np.bool_, int, np.integer)):
        raise TypeError(
            f"load_image_gt: augment is upstream's deprecated flip flag (True/False), got "
            f"{type(augment).__name__}; pass augmenters as augmentation=...")
    image, mask, class_ids = validate.load_checked(dataset, image_id,
                                                   int(config.IMAGE_CHANNEL_COUNT))
    original_shape = image.shape
    image, window, scale, padding, crop = utils.resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE, rng=rng)
    mask = utils.resize_mask(mask, scale, padding, crop)
    keypoints = None
    if with_keypoints:
        keypoints = _molded_keypoints(dataset, config, image_id, original_shape, class_ids,
                                      scale, padding, crop)
        # Without NUM_KEYPOINTS (keypoints of any K on request) there is no flip map.
        flip = (keypoint_module.config_flip_permutation(config)
                if getattr(config, "NUM_KEYPOINTS", 0) else None)

    if augment:
        logger.warning("'augment' is deprecated. Use 'augmentation' instead.")
        if _random_int(_random_state(rng), 2):
            image, mask = np.fliplr(image), np.fliplr(mask)
            if keypoints is not None:
                keypoints = keypoint_module.flip_keypoints_horizontal(
                    keypoints, image.shape[1], flip)
    if augmentation is not None and keypoints is not None:
        adapter = keypoint_module.as_keypoint_augmentation(augmentation)
        image, mask, keypoints = adapter(image, mask, keypoints, _seed(rng), flip)
    elif augmentation is not None:
        image, mask = apply_augmentation(image, mask, augmentation, rng)

    class_ids, bbox, mask, keypoints = _drop_empty(class_ids, mask, keypoints)
    if use_mini_mask:
        mask = utils.minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
    image_meta = compose_image_meta(image_id, original_shape, image.shape, window, scale,
                                    _active_class_ids(dataset, image_id))
    if keypoints is not None:
        keypoints = keypoint_module.mark_outside(keypoints, image.shape)
        keypoints[class_ids < 0] = 0
        return np.ascontiguousarray(image), image_meta, class_ids, bbox, mask, keypoints
    return np.ascontiguousarray(image), image_meta, class_ids, bbox, mask


############################################################
#  RPN targets
############################################################

class _AnchorGroup:
    """Anchors of (nearly) one size, sorted by (y1, x1) for range searches.

    coords: float64 [A, 4] all anchors. ids: the ids of this group's anchors.
    When the group's corners form a lattice (every row of equal y1 holds the same x1
    values, as pyramid anchors do) a box's neighbours are one rectangular block of the
    lattice; otherwise they are a run of rows of y1.
    """

    def __init__(self, coords, ids):
        ids = ids[np.lexsort((coords[ids, 1], coords[ids, 0]))]
        self.ids = ids
        self.y1 = np.ascontiguousarray(coords[ids, 0])
        x1 = coords[ids, 1]
        # Largest extents: the searches below only need upper bounds.
        self.height = float((coords[ids, 2] - coords[ids, 0]).max())
        self.width = float((coords[ids, 3] - coords[ids, 1]).max())
        self.grid = None
        rows = np.unique(self.y1)
        if len(ids) % len(rows) == 0:
            x_grid = x1.reshape(len(rows), -1)
            y_grid = self.y1.reshape(len(rows), -1)
            if (x_grid == x_grid[:1]).all() and (y_grid == rows[:, None]).all():
                self.grid = ids.reshape(x_grid.shape)
                self.row_y1, self.col_x1 = rows, np.ascontiguousarray(x_grid[0])

    def near(self, box):
        """Ids of a superset of this group's anchors that overlap ``box`` (y1, x1, y2, x2).

        An anchor overlaps the box only if box.y1 - height < anchor.y1 < box.y2 (and the
        same along x), so anchors outside those ranges are never returned.
        """
        y1, x1, y2, x2 = box
        if self.grid is None:
            lo, hi = np.searchsorted(self.y1, [y1 - self.height, y2])
            return self.ids[lo:hi]
        r0, r1 = np.searchsorted(self.row_y1, [y1 - self.height, y2])
        c0, c1 = np.searchsorted(self.col_x1, [x1 - self.width, x2])
        return self.grid[r0:r1, c0:c1].reshape(-1)


class AnchorTable:
    """Pixel anchors indexed for fast IoU with a few boxes.

    anchors: [A, (y1, x1, y2, x2)] pixels.

    Pyramid anchors come in a few sizes (one per scale and ratio), each on a regular
    grid. The table groups anchors of (nearly) equal size and sorts each group, so the
    anchors that can overlap a box are found by binary searches: the IoU of a box is
    computed for the anchors near it rather than for all 261,888 of a 1024 x 1024
    image. Anchor sets of many different sizes fall back to a test of every anchor.
    Build it once per anchor set (DataGenerator does) and pass it to
    :func:`build_rpn_targets`.
    """

    MAX_GROUPS = 64  # more distinct anchor sizes than this: test every anchor

    def __init__(self, anchors):
        self.boxes = np.asarray(anchors)
        coords = np.asarray(anchors, dtype=np.float64).reshape(-1, 4)
        self.coords = coords
        self.area = (coords[:, 2] - coords[:, 0]) * (coords[:, 3] - coords[:, 1])
        self.groups = self._group_by_size(coords)

    def __len__(self):
        return self.area.shape[0]

    @classmethod
    def _group_by_size(cls, coords):
        """[_AnchorGroup per anchor size], or None if there are too many sizes.

        Sizes are compared after rounding to 1/1000 pixel (anchor corners computed from
        centres differ in their last bits); the searches use each group's largest
        extents, so the grouping affects speed only, never which anchors are found.
        """
        if not len(coords):
            return []
        heights = np.round(coords[:, 2] - coords[:, 0], 3)
        widths = np.round(coords[:, 3] - coords[:, 1], 3)
        unique, inverse = np.unique(heights + 1j * widths, return_inverse=True)
        if len(unique) > cls.MAX_GROUPS:
            return None
        inverse = inverse.reshape(-1)
        by_group = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[by_group], np.arange(len(unique) + 1))
        return [_AnchorGroup(coords, by_group[bounds[g]:bounds[g + 1]])
                for g in range(len(unique))]

    def candidates(self, box):
        """int64 ids of the anchors whose intersection with ``box`` has a positive area.

        box: (y1, x1, y2, x2) pixels. Ids are unique, in no particular order.
        """
        y1, x1, y2, x2 = box
        if self.groups is None:
            near = np.arange(len(self))
        else:
            near = np.concatenate([group.near(box) for group in self.groups])
        c = self.coords[near]
        return near[(c[:, 0] < y2) & (c[:, 2] > y1) & (c[:, 1] < x2) & (c[:, 3] > x1)]

    def iou(self, box):
        """(ids, float64 IoU): the anchors overlapping ``box`` and their IoU with it.

        box: (y1, x1, y2, x2) pixels. Every anchor not in ``ids`` has IoU 0.
        IoU = intersection / (anchor area + box area - intersection).
        """
        box = np.asarray(box, dtype=np.float64)
        ids = self.candidates(box)
        c = self.coords[ids]
        height = np.minimum(c[:, 2], box[2]) - np.maximum(c[:, 0], box[0])
        width = np.minimum(c[:, 3], box[3]) - np.maximum(c[:, 1], box[1])
        intersection = np.maximum(height, 0) * np.maximum(width, 0)
        box_area = (box[2] - box[0]) * (box[3] - box[1])
        union = self.area[ids] + box_area - intersection
        return ids, intersection / union


def _anchor_gt_match(table, gt_boxes):
    """Each anchor's best GT box, and the anchors that are some GT box's best.

    table: AnchorTable of A anchors. gt_boxes: [G, 4] pixels (non-crowd).

    Returns:
        anchor_gt: int64 [A], index of the GT box of largest IoU (the first on ties;
            0 for an anchor that overlaps none).
        anchor_iou: float64 [A], that IoU (0 without GT boxes).
        best_of_gt: bool [A], anchors whose IoU with some GT box equals that box's
            largest IoU, every tied anchor included (upstream's
            ``argwhere(overlaps == max)``). A GT box that overlaps no anchor (largest
            IoU 0) selects nothing; upstream would select every anchor there.
    """
    count = len(table)
    anchor_gt = np.zeros([count], dtype=np.int64)
    anchor_iou = np.zeros([count], dtype=np.float64)
    best_of_gt = np.zeros([count], dtype=bool)
    for g, box in enumerate(np.asarray(gt_boxes).reshape(-1, 4)):
        ids, iou = table.iou(box)
        if not len(ids) or iou.max() <= 0:
            continue
        best_of_gt[ids[iou == iou.max()]] = True
        better = iou > anchor_iou[ids]
        anchor_iou[ids[better]] = iou[better]
        anchor_gt[ids[better]] = g
    return anchor_gt, anchor_iou, best_of_gt


def _crowd_max_iou(table, crowd_boxes):
    """float64 [A]: each anchor's largest IoU with the crowd boxes (0 without any)."""
    result = np.zeros([len(table)], dtype=np.float64)
    for box in np.asarray(crowd_boxes).reshape(-1, 4):
        ids, iou = table.iou(box)
        result[ids] = np.maximum(result[ids], iou)
    return result


def _disable_extra(rpn_match, value, keep, rng):
    """Set random entries equal to ``value`` back to 0 (neutral) so at most ``keep`` remain.

    The entries that stay form a uniformly random subset of size ``keep``. It is drawn
    from its smaller side: the ``extra`` entries to disable when they are fewer than
    ``keep`` (upstream's draw), otherwise the ``keep`` entries to retain, which avoids
    a permutation of all 261,888 anchors for the negatives.
    """
    ids = np.flatnonzero(rpn_match == value)
    extra = len(ids) - keep
    if extra <= 0:
        return
    if extra <= keep:
        rpn_match[rng.choice(ids, extra, replace=False)] = 0
        return
    kept = rng.choice(ids, keep, replace=False) if keep > 0 else ids[:0]
    rpn_match[ids] = 0
    rpn_match[kept] = value


def build_rpn_targets(image_shape, anchors, gt_class_ids, gt_boxes, config, rng=None):
    """Which anchors are foreground/background, and the deltas of the foreground ones.

    Args:
        image_shape: (H, W, C) of the molded image (unused; kept for upstream's signature).
        anchors: [A, (y1, x1, y2, x2)] pixels, or an :class:`AnchorTable` of them (faster
            when called for many images).
        gt_class_ids: int [G]; negative ids are crowd boxes, 0 is padding (ignored).
        gt_boxes: [G, (y1, x1, y2, x2)] pixels.
        config: uses RPN_TRAIN_ANCHORS_PER_IMAGE and RPN_BBOX_STD_DEV.
        rng: random source of the subsampling.

    Rules (upstream's): an anchor with IoU >= 0.001 with a crowd box is never negative;
    IoU < 0.3 with every GT box -> negative; the best anchor(s) of each GT box and
    IoU >= 0.7 -> positive. Positives are subsampled to RPN_TRAIN_ANCHORS_PER_IMAGE // 2,
    then negatives to fill up RPN_TRAIN_ANCHORS_PER_IMAGE. Without GT boxes every anchor
    away from crowd boxes is negative.

    Returns:
        rpn_match: int32 [A], 1 positive, -1 negative, 0 neutral.
        rpn_bbox: float32 [RPN_TRAIN_ANCHORS_PER_IMAGE, (dy, dx, log dh, log dw)]: the
            deltas from each positive anchor (in anchor order) to the GT box it overlaps
            most, divided by RPN_BBOX_STD_DEV; zero rows after the last positive.
    """
    del image_shape
    rng = _random_state(rng)
    table = anchors if isinstance(anchors, AnchorTable) else AnchorTable(anchors)
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    count = config.RPN_TRAIN_ANCHORS_PER_IMAGE
    rpn_match = np.zeros([len(table)], dtype=np.int32)
    rpn_bbox = np.zeros([count, 4], dtype=np.float32)

    crowd = gt_class_ids < 0
    no_crowd = _crowd_max_iou(table, gt_boxes[crowd]) < RPN_CROWD_IOU
    gt_boxes = gt_boxes[gt_class_ids > 0]
    anchor_gt, anchor_iou, best_of_gt = _anchor_gt_match(table, gt_boxes)
    rpn_match[(anchor_iou < RPN_NEGATIVE_IOU) & no_crowd] = -1
    rpn_match[best_of_gt] = 1
    rpn_match[anchor_iou >= RPN_POSITIVE_IOU] = 1

    _disable_extra(rpn_match, 1, count // 2, rng)
    _disable_extra(rpn_match, -1, count - np.sum(rpn_match == 1), rng)

    positive = np.flatnonzero(rpn_match == 1)
    anchors_px = np.asarray(table.boxes)
    deltas = utils.box_refinement(anchors_px[positive], gt_boxes[anchor_gt[positive]])
    rpn_bbox[:len(positive)] = deltas / np.asarray(config.RPN_BBOX_STD_DEV)
    return rpn_match, rpn_bbox


############################################################
#  Random ROIs and detection-head targets (for inspection and USE_RPN_ROIS=False)
############################################################

def _random_boxes(rng, count, y_range, x_range):
    """int32 [count, (y1, x1, y2, x2)] with y1 < y2 in [y_range) and x1 < x2 in [x_range).

    Pairs of coordinates are drawn uniformly and sorted; pairs closer than 1 pixel are
    redrawn. A range narrower than 2 pixels cannot hold such a pair and raises ValueError.
    """
    pairs = []
    for low, high in (y_range, x_range):
        if high - low < 2:
            raise ValueError(f"cannot draw boxes in the pixel range [{low}, {high})")
        values = np.zeros([0, 2], dtype=np.int64)
        while len(values) < count:
            draw = _integers(rng, low, high, (2 * count, 2))
            values = np.concatenate([values, draw[draw[:, 0] != draw[:, 1]]])
        pairs.append(np.sort(values[:count], axis=1))
    (y1, y2), (x1, x2) = pairs[0].T, pairs[1].T
    return np.stack([y1, x1, y2, x2], axis=1).astype(np.int32)


def generate_random_rois(image_shape, count, gt_class_ids, gt_boxes, rng=None):
    """Random ROIs, most of them around the GT boxes, as upstream's inspection helper.

    image_shape: (H, W, ...). count: number of ROIs. gt_boxes: [G, (y1, x1, y2, x2)] pixels.

    For each GT box, int(0.9 * count / G) ROIs lie within the box grown by its own height
    and width on each side (clipped to the image); the rest lie anywhere in the image.

    Returns: int32 [count, (y1, x1, y2, x2)] pixels, every box at least 1 pixel high/wide.
    """
    rng = _random_state(rng)
    gt_boxes = np.asarray(gt_boxes)
    height, width = int(image_shape[0]), int(image_shape[1])
    per_box = int(0.9 * count / gt_boxes.shape[0]) if gt_boxes.shape[0] else 0
    rois = []
    for y1, x1, y2, x2 in gt_boxes.astype(np.int64):
        h, w = y2 - y1, x2 - x1
        rois.append(_random_boxes(rng, per_box, (max(y1 - h, 0), min(y2 + h, height)),
                                  (max(x1 - w, 0), min(x2 + w, width))))
    rois.append(_random_boxes(rng, count - per_box * gt_boxes.shape[0], (0, height), (0, width)))
    return np.concatenate(rois, axis=0)


def _sample(rng, ids, size, replace=False):
    """``size`` entries of ``ids`` drawn at random (all of them, in order, when too few)."""
    if not replace and len(ids) <= size:
        return ids
    return rng.choice(ids, size, replace=replace)


def _roi_mask_target(config, roi, gt_box, gt_mask):
    """float32 MASK_SHAPE: the GT mask cropped to the ROI and resized (bilinear).

    roi, gt_box: (y1, x1, y2, x2) pixels. gt_mask: bool [H, W] full-image mask, or the
    mini mask of gt_box when config.USE_MINI_MASK.
    """
    y1, x1, y2, x2 = np.asarray(roi).astype(np.int64)
    if config.USE_MINI_MASK:
        canvas = (max(int(gt_box[2]), y2), max(int(gt_box[3]), x2))
        gt_mask = utils.expand_mask(np.asarray(gt_box)[None], gt_mask[:, :, None],
                                    canvas)[:, :, 0]
    crop = gt_mask[y1:y2, x1:x2].astype(np.float32)
    return utils.resize(crop, config.MASK_SHAPE).astype(np.float32)


def _sample_rois(rng, roi_iou, total, positive_ratio):
    """Indices of the ROIs to keep: positives (IoU > 0.5) first, then negatives (< 0.5).

    At most int(total * positive_ratio) positives; negatives fill up ``total``; when there
    are too few, kept negatives (or, without any, kept positives) are repeated at random.
    """
    fg = _sample(rng, np.flatnonzero(roi_iou > 0.5), int(total * positive_ratio))
    bg = _sample(rng, np.flatnonzero(roi_iou < 0.5), total - len(fg))
    keep = np.concatenate([fg, bg]).astype(np.int64)
    short = total - len(keep)
    if short > 0:
        pool = bg if len(bg) else fg
        if not len(pool):
            raise ValueError("every ROI has an IoU of exactly 0.5: nothing to sample")
        keep = np.concatenate([keep, _sample(rng, pool, short, replace=True)])
    return keep.astype(np.int64)


def build_detection_targets(rpn_rois, gt_class_ids, gt_boxes, gt_masks, config, rng=None):
    """Targets of the detection heads for given ROIs, in numpy (upstream's inspection helper).

    Args:
        rpn_rois: int [R, (y1, x1, y2, x2)] pixels. gt_class_ids: int32 [G] (<= 0 ignored).
        gt_boxes: int32 [G, 4] pixels. gt_masks: bool [H, W, G] or mini masks.
        config: uses TRAIN_ROIS_PER_IMAGE, ROI_POSITIVE_RATIO, NUM_CLASSES, BBOX_STD_DEV,
            MASK_SHAPE, USE_MINI_MASK.
        rng: random source of the sampling.

    An ROI with IoU > 0.5 with a GT box is positive and takes the class of the GT box it
    overlaps most; IoU < 0.5 is negative (class 0). See :func:`_sample_rois`. Without GT
    instances every ROI is negative.

    Returns:
        rois: [TRAIN_ROIS_PER_IMAGE, 4] pixels, positives first.
        class_ids: int32 [TRAIN_ROIS_PER_IMAGE], 0 for negatives.
        bboxes: float32 [TRAIN_ROIS_PER_IMAGE, NUM_CLASSES, 4]: deltas / BBOX_STD_DEV in
            the slot of the positive's class, zeros elsewhere.
        masks: float32 [TRAIN_ROIS_PER_IMAGE, MASK_H, MASK_W, NUM_CLASSES]: the GT mask
            inside the ROI, in the slot of the positive's class.
    """
    rng = _random_state(rng)
    rpn_rois = np.asarray(rpn_rois)
    total = config.TRAIN_ROIS_PER_IMAGE
    instances = np.flatnonzero(np.asarray(gt_class_ids) > 0)
    if not len(rpn_rois):
        raise ValueError("build_detection_targets needs at least one ROI")
    gt_class_ids = np.asarray(gt_class_ids)[instances]
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)[instances]
    gt_masks = gt_masks[:, :, instances]

    if len(instances):
        overlaps = utils.compute_overlaps(rpn_rois, gt_boxes)
        roi_gt = overlaps.argmax(axis=1)
        roi_iou = overlaps[np.arange(len(rpn_rois)), roi_gt]
    else:  # no GT instance: every ROI is a negative
        roi_gt = np.zeros([len(rpn_rois)], dtype=np.int64)
        roi_iou = np.zeros([len(rpn_rois)])
    keep = _sample_rois(rng, roi_iou, total, config.ROI_POSITIVE_RATIO)
    rois, assigned = rpn_rois[keep], roi_gt[keep]
    class_ids = np.zeros([len(keep)], dtype=np.int32)
    positive = roi_iou[keep] > 0.5
    class_ids[positive] = gt_class_ids[assigned[positive]]

    bboxes = np.zeros([total, config.NUM_CLASSES, 4], dtype=np.float32)
    masks = np.zeros([total, *config.MASK_SHAPE, config.NUM_CLASSES], dtype=np.float32)
    positive = np.flatnonzero(class_ids > 0)
    bboxes[positive, class_ids[positive]] = (
        utils.box_refinement(rois[positive], gt_boxes[assigned[positive]])
        / np.asarray(config.BBOX_STD_DEV))
    for i in positive:
        gt = assigned[i]
        masks[i, :, :, class_ids[i]] = _roi_mask_target(config, rois[i], gt_boxes[gt],
                                                        gt_masks[:, :, gt])
    return rois, class_ids, bboxes, masks


############################################################
#  Batches for Keras
############################################################

def compute_anchors(config):
    """Pixel anchors [A, 4] of config.IMAGE_SHAPE, in the order of the RPN outputs."""
    return utils.generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
        utils.compute_backbone_shapes(config, config.IMAGE_SHAPE),
        config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)


def _subsample_instances(rng, limit, class_ids, boxes, masks, keypoints=None):
    """Keep at most ``limit`` instances, chosen at random (order of the draw).

    Returns (class_ids, boxes, masks, keypoints), keypoints None when not given.
    """
    if len(class_ids) <= limit:
        return class_ids, boxes, masks, keypoints
    ids = rng.choice(np.arange(len(class_ids)), limit, replace=False)
    keypoints = None if keypoints is None else keypoints[ids]
    return class_ids[ids], boxes[ids], masks[:, :, ids], keypoints


def default_workers(config=None):
    """Input worker threads: config.DATA_WORKERS, or the CPUs this process may use."""
    workers = getattr(config, "DATA_WORKERS", None)
    if workers is None:
        try:
            workers = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            workers = os.cpu_count() or 1
    return max(int(workers), 1)


class DataGenerator(keras.utils.PyDataset):
    """Training batches of a Dataset, for ``keras.Model.fit``.

    ``dataset[i]`` is ``(inputs,)`` where ``inputs`` is a dict keyed by the training
    graph's input names (B = batch size, A = anchors, K = RPN_TRAIN_ANCHORS_PER_IMAGE,
    M = MAX_GT_INSTANCES, h x w = MINI_MASK_SHAPE or the image size):

        input_image         float32 [B, H, W, 3]   molded (image - MEAN_PIXEL)
        input_image_meta    float32 [B, IMAGE_META_SIZE]
        input_rpn_match     int32   [B, A, 1]      1 / -1 / 0
        input_rpn_bbox      float32 [B, K, 4]      deltas / RPN_BBOX_STD_DEV
        input_gt_class_ids  int32   [B, M]         0 = padding, negative = crowd
        input_gt_boxes      float32 [B, M, 4]      pixels
        input_gt_masks      bool    [B, h, w, M]

    With config.NUM_KEYPOINTS > 0 (the dataset implements ``load_keypoints``):

        input_gt_keypoints  float32 [B, M, NUM_KEYPOINTS, 3]
                                                   (x, y, v) pixel-index frame of the
                                                   molded image, rows aligned with
                                                   input_gt_class_ids; zero rows pad

    With ``random_rois`` > 0, ``inputs["input_rois"]`` holds int32 [B, random_rois, 4] random
    ROIs in pixels (see :func:`generate_random_rois`). The default, None, gives the
    training graph what it takes: POST_NMS_ROIS_TRAINING ROIs when config.USE_RPN_ROIS is
    False (the heads then train on these instead of the RPN's proposals), none otherwise.
    With ``detection_targets`` as well, the item is ``(inputs, targets)``
    where ``targets`` holds "rois" [B, T, 4], "mrcnn_class_ids" int32 [B, T, 1],
    "mrcnn_bbox" [B, T, NUM_CLASSES, 4] and "mrcnn_mask" [B, T, mh, mw, NUM_CLASSES]
    (T = TRAIN_ROIS_PER_IMAGE).

    Order: an epoch reads a stream of samples made of successive passes over the data
    set, each pass a permutation of the image ids (the identity when ``shuffle`` is False).
    Batch i holds stream positions i*B .. i*B + B-1. An epoch is ``steps_per_epoch``
    batches, by default ceil(num_images / batch_size) (one pass; the last batch runs into
    the next pass). Give ``steps_per_epoch`` when ``fit`` is given more steps per epoch
    than that (e.g. config.STEPS_PER_EPOCH on a small data set): Keras stops an epoch
    when its data set runs out. An image that is not used (no instance, or a bad image
    under the "skip" policy) is replaced by the next one in the stream.

    Images without instances: skipped as upstream, unless ``train_on_empty_images``
    (default config.TRAIN_ON_EMPTY_IMAGES, else False): then they are negatives, with
    every sampled RPN anchor negative and no GT instance.

    Bad images (see mrcnn.validate): ``bad_image_policy`` (default
    config.BAD_IMAGE_POLICY, else "raise") "raise" stops with a DatasetError naming the
    image; "skip" skips it with a BadImageWarning, and ``on_epoch_end`` warns with the
    list of the epoch's skipped images. ``bad_images`` holds the record.

    Parallelism: ``fit`` prepares batches in ``workers`` threads (default
    config.DATA_WORKERS, else the number of usable CPUs), at most ``max_queue_size``
    (default max(10, 2 * workers)) batches ahead. Threads need no pickling (datasets
    defined in a notebook work) and the heavy steps (image decoding and resizing, IoU,
    mask resizing) run in numpy/OpenCV code that releases the GIL.
    ``use_multiprocessing=True`` uses Keras' process pool instead; then bad-image
    records stay in the worker processes.

    Randomness: the permutation of pass k of epoch e is a function of (seed, e, k), each
    sample's draws (crop, augmentation, RPN and instance subsampling) of (seed, e, k, image_id),
    so a seed fixes every batch whatever the number or the order of workers.
    ``on_epoch_end`` (called by Keras) moves to the next epoch; set ``epoch`` to resume.
    Call ``fit(..., shuffle=False)``: the generator shuffles itself, and Keras' own shuffle
    would reorder the batches of an epoch with Python's global ``random`` state.
    """

    def __init__(self, dataset, config, shuffle=True, augmentation=None, batch_size=None,
                 seed=None, no_augmentation_sources=None, random_rois=None,
                 detection_targets=False, augment=False, steps_per_epoch=None,
                 workers=None, use_multiprocessing=False, max_queue_size=None,
                 bad_image_policy=None, train_on_empty_images=None):
        workers = default_workers(config) if workers is None else max(int(workers), 1)
        if max_queue_size is None:
            max_queue_size = max(10, 2 * workers)
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing,
                         max_queue_size=max_queue_size)
        if len(dataset.image_ids) == 0:
            raise ValueError("the dataset holds no images; did you call prepare()?")
        # Batches have the training graph's layout (fixed IMAGE_SHAPE, its anchors).
        config.validate(mode="training")
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self._augmentation = augment_module.as_augmentation(augmentation)
        self.augment = augment
        self.batch_size = int(batch_size or config.BATCH_SIZE)
        self.steps_per_epoch = steps_per_epoch
        if seed is None:
            seed = getattr(config, "SEED", None)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2 ** 63))
        self.seed = int(seed)
        self.no_augmentation_sources = set(no_augmentation_sources or [])
        if random_rois is None:  # the training graph's input_rois, if it has one
            random_rois = 0 if config.USE_RPN_ROIS else config.POST_NMS_ROIS_TRAINING
        self.random_rois = int(random_rois)
        self.detection_targets = bool(detection_targets)
        if train_on_empty_images is None:
            train_on_empty_images = getattr(config, "TRAIN_ON_EMPTY_IMAGES", False)
        self.train_on_empty_images = bool(train_on_empty_images)
        if bad_image_policy is None:
            bad_image_policy = getattr(config, "BAD_IMAGE_POLICY", "raise")
        self.bad_images = validate.BadImageLog(bad_image_policy)
        self.num_keypoints = int(getattr(config, "NUM_KEYPOINTS", 0) or 0)
        if self.num_keypoints:
            self._augmentation = keypoint_module.as_keypoint_augmentation(self._augmentation)
        self.anchors = compute_anchors(config)
        self._anchor_table = AnchorTable(self.anchors)
        self.epoch = 0
        self._permutations = {}

    # ---------------------------------------------------------------- indexing
    def __len__(self):
        if self.steps_per_epoch:
            return int(self.steps_per_epoch)
        return math.ceil(len(self.dataset.image_ids) / self.batch_size)

    def on_epoch_end(self):
        """Report the epoch's skipped bad images, then advance to the next epoch."""
        self.bad_images.end_epoch(self.epoch)
        self.epoch += 1

    def _permutation(self, epoch, data_pass):
        """The image ids in the order of pass ``data_pass`` of ``epoch`` (cached)."""
        key = (epoch, data_pass)
        order = self._permutations.get(key)
        if order is None:
            order = np.asarray(self.dataset.image_ids).copy()
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch, data_pass]).permutation(order)
            if len(self._permutations) >= 8:
                self._permutations.clear()
            self._permutations[key] = order
        return order

    def _sample_rng(self, epoch, data_pass, image_id):
        """The random source of one sample."""
        return np.random.default_rng([self.seed, epoch, data_pass, int(image_id)])

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        epoch, samples, position = self.epoch, [], index * self.batch_size
        while len(samples) < self.batch_size:
            sample, position = self._next_sample(epoch, position)
            samples.append(sample)
        inputs, targets = self._collate(samples)
        if targets is not None:
            return inputs, targets
        return (inputs,)

    def _next_sample(self, epoch, position):
        """The first usable sample at or after stream ``position`` of ``epoch``.

        Returns (sample dict, the stream position after it).
        """
        count = len(self.dataset.image_ids)
        for step in range(2 * count):  # covers at least one whole pass
            data_pass, index = divmod(position + step, count)
            image_id = self._permutation(epoch, data_pass)[index]
            if self.bad_images.known_bad(image_id, epoch):
                continue
            rng = self._sample_rng(epoch, data_pass, image_id)
            try:
                sample = self.load_sample(image_id, rng)
            except validate.DatasetError as error:
                self.bad_images.handle(error, epoch)
                continue
            if sample is not None:
                return sample, position + step + 1
        bad = len(self.bad_images.errors)
        raise ValueError(
            "no usable training image: " + (f"{bad} of {count} images are bad and were "
                                            f"skipped, the others have " if bad else "")
            + "no instance with a positive class id (set TRAIN_ON_EMPTY_IMAGES = True to "
              "train on images without instances)")

    # ---------------------------------------------------------------- one sample
    def load_sample(self, image_id, rng=None):
        """All training arrays of one image, or None when it is not used for training.

        An image without an instance of a positive class is not used unless
        ``train_on_empty_images``. rng: the random source of the sample's draws; None
        uses the global numpy state.

        Raises:
            mrcnn.validate.DatasetError: the image or its masks are unusable.
        """
        config = self.config
        source = self.dataset.image_info[image_id]["source"]
        augmentation = None if source in self.no_augmentation_sources else self._augmentation
        loaded = load_image_gt(
            self.dataset, config, image_id, augmentation=augmentation,
            use_mini_mask=config.USE_MINI_MASK, augment=self.augment, rng=rng,
            with_keypoints=bool(self.num_keypoints))
        image, image_meta, class_ids, boxes, masks = loaded[:5]
        keypoints = loaded[5] if self.num_keypoints else None
        if not np.any(class_ids > 0) and not self.train_on_empty_images:
            return None
        rpn_match, rpn_bbox = build_rpn_targets(image.shape, self._anchor_table, class_ids,
                                                boxes, config, rng=rng)
        sample = {"image": image, "image_meta": image_meta, "rpn_match": rpn_match,
                  "rpn_bbox": rpn_bbox}
        if self.random_rois:
            rois = generate_random_rois(image.shape, self.random_rois, class_ids, boxes, rng)
            sample["random_rois"] = rois
            if self.detection_targets:
                sample["detection"] = build_detection_targets(rois, class_ids, boxes, masks,
                                                              config, rng)
        class_ids, boxes, masks, keypoints = _subsample_instances(
            rng, config.MAX_GT_INSTANCES, class_ids, boxes, masks, keypoints)
        sample.update(class_ids=class_ids, boxes=boxes, masks=masks)
        if keypoints is not None:
            sample["keypoints"] = keypoints
        return sample

    # ---------------------------------------------------------------- batching
    def _collate(self, samples):
        """Stack samples into (inputs dict, targets dict or None)."""
        config, batch = self.config, len(samples)
        limit = config.MAX_GT_INSTANCES
        mask_hw = samples[0]["masks"].shape[:2]
        gt_class_ids = np.zeros([batch, limit], dtype=np.int32)
        gt_boxes = np.zeros([batch, limit, 4], dtype=np.float32)
        gt_masks = np.zeros([batch, *mask_hw, limit], dtype=bool)
        for b, sample in enumerate(samples):
            n = len(sample["class_ids"])
            gt_class_ids[b, :n] = sample["class_ids"]
            gt_boxes[b, :n] = sample["boxes"]
            gt_masks[b, :, :, :n] = sample["masks"]
        inputs = {
            "input_image": _mold_batch([s["image"] for s in samples], config),
            "input_image_meta": np.stack([s["image_meta"] for s in samples]),
            "input_rpn_match": np.stack([s["rpn_match"] for s in samples])[:, :, None],
            "input_rpn_bbox": np.stack([s["rpn_bbox"] for s in samples]),
            "input_gt_class_ids": gt_class_ids,
            "input_gt_boxes": gt_boxes,
            "input_gt_masks": gt_masks,
        }
        if self.num_keypoints:
            gt_keypoints = np.zeros([batch, limit, self.num_keypoints, 3], dtype=np.float32)
            for b, sample in enumerate(samples):
                gt_keypoints[b, :len(sample["keypoints"])] = sample["keypoints"]
            inputs["input_gt_keypoints"] = gt_keypoints
        targets = None
        if self.random_rois:
            inputs["input_rois"] = np.stack([s["random_rois"] for s in samples])
            if self.detection_targets:
                rois, class_ids, bboxes, masks = (np.stack(parts) for parts in
                                                  zip(*(s["detection"] for s in samples)))
                targets = {"rois": rois, "mrcnn_class_ids": class_ids[:, :, None],
                           "mrcnn_bbox": bboxes, "mrcnn_mask": masks}
        return inputs, targets

    def as_lists(self, index):
        """Batch ``index`` in upstream's generator layout: (inputs list, outputs list).

        inputs: the seven arrays in INPUT_NAMES order, then the random ROIs and the
        detection ROIs when requested, then input_gt_keypoints with NUM_KEYPOINTS > 0;
        outputs: [] or the three detection targets.
        """
        item = self[index]
        inputs = item[0]
        values = [inputs[name] for name in INPUT_NAMES]
        outputs = []
        if self.random_rois:
            values.append(inputs["input_rois"])
            if self.detection_targets:
                targets = item[1]
                values.append(targets["rois"])
                outputs = [targets["mrcnn_class_ids"], targets["mrcnn_bbox"],
                           targets["mrcnn_mask"]]
        if self.num_keypoints:
            values.append(inputs["input_gt_keypoints"])
        return values, outputs


def data_generator(dataset, config, shuffle=True, augment=False, augmentation=None,
                   random_rois=0, batch_size=1, detection_targets=False,
                   no_augmentation_sources=None):
    """Upstream's endless Python generator, over :class:`DataGenerator`.

    Yields ``(inputs, outputs)``: ``inputs`` = [images, image_meta, rpn_match, rpn_bbox,
    gt_class_ids, gt_boxes, gt_masks] (+ [random rois] (+ [rois])), ``outputs`` = [] or
    [mrcnn_class_ids, mrcnn_bbox, mrcnn_mask]; shapes and dtypes as in DataGenerator.
    As upstream, batches follow one continuous stream of images, reshuffled at the start
    of every pass over the data set. The seed is config.SEED (random when None).
    """
    generator = DataGenerator(
        dataset, config, shuffle=shuffle, augmentation=augmentation, batch_size=batch_size,
        no_augmentation_sources=no_augmentation_sources, random_rois=random_rois,
        detection_targets=detection_targets, augment=augment,
        steps_per_epoch=sys.maxsize // max(int(batch_size), 1))
    for index in itertools.count():
        yield generator.as_lists(index)

"""Keypoint geometry of the input pipeline: resizing, flips, augmentation, OKS.

Frame: keypoints are float32 [N, K, 3] rows (x, y, v) in the pixel-index frame of COCO
and of matplotlib's ``imshow``: (x, y) = (column, row), integer x is the centre of
pixel column x, so the image spans x in [-0.5, W - 0.5). A keypoint's continuous
position is x + 0.5 (the frame of boxes, whose y2/x2 are exclusive): resizing by a
factor f maps x -> (x + 0.5) * f - 0.5, padding adds its offset, cropping subtracts
it and a horizontal flip of an image W pixels wide maps x -> W - 1 - x.

Visibility v (COCO): 0 not labelled, 1 labelled but occluded, 2 visible. Every
transform keeps v; a keypoint moved outside the image gets v = 0 and unlabelled
keypoints are (0, 0, 0) in the pipeline's output.

A mirror image swaps left and right: horizontal flips (and any augmentation that
reverses the image's orientation, e.g. a vertical flip or a transpose) swap the
keypoints named in ``config.KEYPOINT_FLIP_MAP`` (:func:`flip_permutation`).
"""
import inspect
import threading

import numpy as np

from mrcnn import augment as augment_module
from mrcnn import utils

__all__ = [
    "COCO_PERSON_KEYPOINT_NAMES", "COCO_PERSON_FLIP_MAP", "COCO_PERSON_SKELETON",
    "COCO_PERSON_SIGMAS", "flip_permutation", "config_flip_permutation",
    "resize_keypoints", "flip_keypoints_horizontal", "permute_keypoints",
    "mark_outside", "clear_unlabelled", "KeypointAugmentation", "as_keypoint_augmentation",
    "keypoint_sigmas", "compute_oks", "compute_oks_matrix",
]

# COCO's 17 person keypoints, in the order of person_keypoints_*.json.
COCO_PERSON_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
COCO_PERSON_FLIP_MAP = tuple(
    (name, "right_" + name[len("left_"):]) for name in COCO_PERSON_KEYPOINT_NAMES
    if name.startswith("left_"))
# COCO's person skeleton (its 1-based "skeleton" entry) as 0-based index pairs.
COCO_PERSON_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
# Per-keypoint OKS constants of COCO's person keypoints (pycocotools' kpt_oks_sigmas).
COCO_PERSON_SIGMAS = np.array(
    [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89],
    dtype=np.float64) / 10.0


############################################################
#  Flip map
############################################################

def flip_permutation(num_keypoints, flip_map=(), names=None):
    """Index array that swaps left and right keypoints.

    Args:
        num_keypoints: K.
        flip_map: pairs (a, b) of keypoint names (looked up in ``names``) or of
            indices 0..K-1; each pair is swapped. config.KEYPOINT_FLIP_MAP.
        names: the K keypoint names (config.KEYPOINT_NAMES), or None when the pairs
            are indices.

    Returns:
        int64 [K] ``perm``: the mirrored instance's keypoint i is keypoint perm[i] of
        the original (``keypoints[:, perm]``). The identity without a flip map.
    Raises:
        ValueError naming KEYPOINT_FLIP_MAP / KEYPOINT_NAMES for unknown names, indices
        out of range, or a keypoint in two pairs.
    """
    k = int(num_keypoints)
    if names is not None:
        names = list(names)
        if len(names) != k:
            raise ValueError(f"KEYPOINT_NAMES has {len(names)} names but NUM_KEYPOINTS is "
                             f"{k}")
    perm = np.arange(k, dtype=np.int64)
    seen = set()
    for pair in flip_map or ():
        if len(pair) != 2:
            raise ValueError(f"KEYPOINT_FLIP_MAP entries are (left, right) pairs; got "
                             f"{pair!r}")
        a, b = (_keypoint_index(item, names, k) for item in pair)
        if a in seen or b in seen or a == b:
            raise ValueError(f"KEYPOINT_FLIP_MAP: keypoint {pair!r} appears in more than "
                             f"one pair (or is paired with itself)")
        seen.update((a, b))
        perm[a], perm[b] = b, a
    return perm


def _keypoint_index(item, names, k):
    if isinstance(item, str):
        if names is None:
            raise ValueError(f"KEYPOINT_FLIP_MAP names keypoint {item!r} but KEYPOINT_NAMES "
                             f"is None; give the names or index pairs")
        if item not in names:
            raise ValueError(f"KEYPOINT_FLIP_MAP names {item!r}, which is not in "
                             f"KEYPOINT_NAMES {names}")
        return names.index(item)
    index = int(item)
    if not 0 <= index < k:
        raise ValueError(f"KEYPOINT_FLIP_MAP index {index} is outside 0..{k - 1}")
    return index


def config_flip_permutation(config):
    """:func:`flip_permutation` of a Config's NUM_KEYPOINTS, KEYPOINT_FLIP_MAP, KEYPOINT_NAMES."""
    return flip_permutation(config.NUM_KEYPOINTS, getattr(config, "KEYPOINT_FLIP_MAP", ()),
                            getattr(config, "KEYPOINT_NAMES", None))


def permute_keypoints(keypoints, permutation):
    """keypoints[:, permutation]: [N, K, 3] with left and right swapped (None: a copy)."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if permutation is None:
        return keypoints.copy()
    return keypoints[:, np.asarray(permutation)]


############################################################
#  Geometry of resize_image and flips
############################################################

def resize_keypoints(keypoints, image_shape, scale, padding, crop=None):
    """Move keypoints the way ``utils.resize_image`` moved their image.

    Args:
        keypoints: float [N, K, 3] (x, y, v) in the original image's pixel-index frame.
        image_shape: (H, W, ...) of the original image.
        scale, padding, crop: as returned by ``utils.resize_image``.

    Returns:
        float32 [N, K, 3] in the resized image's pixel-index frame; v unchanged (see
        :func:`mark_outside` for points a crop cut off). The factor per axis is the
        one the pixels were resampled with, out / in (round(H * scale) / H), so a
        keypoint stays on the image content it marks.
    """
    out = np.array(keypoints, dtype=np.float32, copy=True)
    h, w = int(image_shape[0]), int(image_shape[1])
    if scale != 1:
        out_h, out_w = utils._scaled_shape(h, w, scale)
        out[..., 0] = (out[..., 0] + 0.5) * (out_w / w) - 0.5
        out[..., 1] = (out[..., 1] + 0.5) * (out_h / h) - 0.5
    if crop is not None:
        y, x = crop[0], crop[1]
        out[..., 0] -= x
        out[..., 1] -= y
    else:
        out[..., 0] += padding[1][0]
        out[..., 1] += padding[0][0]
    return out


def flip_keypoints_horizontal(keypoints, width, permutation=None):
    """Keypoints of the image mirrored left-right (``np.fliplr``).

    keypoints: [N, K, 3] pixel-index frame; width: W of the image.
    permutation: :func:`flip_permutation` (left/right swap), or None for none.
    Returns float32 [N, K, 3]: x -> W - 1 - x, then the keypoints permuted.
    """
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[..., 0] = (width - 1) - out[..., 0]
    return permute_keypoints(out, permutation)


def mark_outside(keypoints, image_shape):
    """v = 0 for keypoints outside an image of ``image_shape`` (H, W, ...).

    Inside means x in [-0.5, W - 0.5) and y in [-0.5, H - 0.5) (the pixel squares).
    Unlabelled keypoints become (0, 0, 0). Returns float32 [N, K, 3] (a copy).
    """
    out = np.array(keypoints, dtype=np.float32, copy=True)
    h, w = int(image_shape[0]), int(image_shape[1])
    x, y = out[..., 0], out[..., 1]
    inside = (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)
    out[..., 2] = np.where(inside & np.isfinite(x) & np.isfinite(y), out[..., 2], 0)
    return clear_unlabelled(out)


def clear_unlabelled(keypoints):
    """(0, 0, 0) for every keypoint with v = 0 (in place; returns the array)."""
    keypoints[keypoints[..., 2] <= 0] = 0
    return keypoints


############################################################
#  Augmentation with keypoints
############################################################

def _probes(image_shape):
    """float32 [3, 2] pixel-index points: the centre and steps along x and along y."""
    h, w = image_shape[:2]
    step = max(1.0, min(h, w) / 8.0)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    return np.array([[cx, cy], [cx + step, cy], [cx, cy + step]], dtype=np.float32)


def _is_mirrored(probes):
    """True when the moved probes have the opposite orientation (a reflection)."""
    (x0, y0), (x1, y1), (x2, y2) = np.asarray(probes, dtype=np.float64)
    return (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0) < 0


class KeypointAugmentation:
    """An augmentation (see mrcnn.augment) that moves keypoints with the image and masks.

    ``augmentation(image, masks, keypoints, seed, permutation) -> (image, masks, keypoints)``
    with image uint8 [H, W, C], masks bool [H, W, N], keypoints float32 [N, K, 3] in the
    pixel-index frame, seed an int (or None: the augmenter's own random state) and
    permutation the flip map's index array (:func:`flip_permutation`).

    * imgaug augmenters get the points as ``KeypointsOnImage`` (imgaug's frame puts
      pixel centres at +0.5, converted both ways);
    * albumentations transforms run inside a ``Compose`` with
      ``KeypointParams(format="xy", remove_invisible=False)`` (so rows stay aligned);
    * a function must take a ``keypoints`` keyword:
      ``f(image, masks, rng, keypoints=points) -> (image, masks, points)``, points
      float32 [P, 2] (x, y) pixel-index frame, moved as the image.

    Three probe points travel with the keypoints; when they come back mirrored (a
    horizontal or vertical flip, a transpose) the flip map is applied. Visibility is
    kept; :func:`mark_outside` then drops what left the image.
    """

    def __init__(self, augmentation):
        self.adapter = augment_module.as_augmentation(augmentation)
        self.augmenter = self.adapter.augmenter
        self._local = threading.local()
        self._lock = threading.Lock()
        if isinstance(self.adapter, augment_module.FunctionAugmentation):
            _check_function_takes_keypoints(self.augmenter)

    def __getstate__(self):
        return {"augmenter": self.augmenter}

    def __setstate__(self, state):
        self.__init__(state["augmenter"])

    def __repr__(self):
        return f"{type(self).__name__}({self.augmenter!r})"

    def __call__(self, image, masks, keypoints, seed=None, permutation=None):
        keypoints = np.asarray(keypoints, dtype=np.float32)
        shapes = (image.shape, masks.shape)
        count = keypoints.shape[0] * keypoints.shape[1]
        points = np.concatenate([keypoints[..., :2].reshape(-1, 2), _probes(image.shape)])
        if isinstance(self.adapter, augment_module.FunctionAugmentation):
            if seed is None:
                seed = int(np.random.randint(augment_module.SEED_RANGE))
            image, masks, points = self._function(image, masks, points, seed)
        elif seed is None:
            with self._lock:
                image, masks, points = self._apply(self.augmenter, image, masks, points, None)
        else:
            image, masks, points = self._apply(self.adapter._copy_for_this_thread(), image, masks,
                                               points, int(seed))
        if (image.shape, masks.shape) != shapes:
            raise ValueError(
                f"augmentation {self.augmenter!r} changed the image shape {shapes[0]} -> "
                f"{image.shape} or the mask shape {shapes[1]} -> {masks.shape}; use "
                f"augmenters that keep the image size")
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        out = keypoints.copy()
        out[..., :2] = points[:count].reshape(keypoints.shape[:2] + (2,))
        if _is_mirrored(points[count:]):
            out = permute_keypoints(out, permutation)
        return np.ascontiguousarray(image), masks, out

    def _apply(self, augmenter, image, masks, points, seed):
        if isinstance(self.adapter, augment_module.ImgaugAugmentation):
            return _imgaug(augmenter, image, masks, points, seed)
        return self._albumentations(augmenter, image, masks, points, seed)

    def _albumentations(self, augmenter, image, masks, points, seed):
        import albumentations as A

        key = id(augmenter)
        composes = getattr(self._local, "composes", None)
        if composes is None:
            composes = self._local.composes = {}
        compose = composes.get(key)
        if compose is None:
            compose = A.Compose([augmenter], keypoint_params=A.KeypointParams(
                format="xy", remove_invisible=False))
            composes[key] = compose
        if seed is not None:
            compose.set_random_seed(seed)
        arguments = {"image": image, "keypoints": points}
        if masks.shape[-1]:
            arguments["masks"] = np.ascontiguousarray(np.moveaxis(masks, -1, 0),
                                                      dtype=np.uint8)
        result = compose(**arguments)
        if masks.shape[-1]:
            masks = np.moveaxis(np.asarray(result["masks"]), 0, -1).astype(bool)
        return result["image"], masks, np.asarray(result["keypoints"])[:, :2]

    def _function(self, image, masks, points, seed):
        result = self.augmenter(image, masks, np.random.default_rng(seed), keypoints=points)
        if not isinstance(result, tuple) or len(result) != 3:
            raise TypeError(
                f"augmentation function {self.augmenter!r} was called with keypoints= and "
                f"must return (image, masks, keypoints)")
        image, masks, points = result
        return np.asarray(image), np.asarray(masks).astype(bool, copy=False), points


def _imgaug(augmenter, image, masks, points, seed):
    from imgaug.augmentables.kps import KeypointsOnImage
    from imgaug.augmentables.segmaps import SegmentationMapsOnImage

    if seed is None:
        augmenter = augmenter.to_deterministic()
    else:
        augmenter.seed_(seed)
    # imgaug's keypoints are continuous coordinates: pixel centres at +0.5.
    keypoints = KeypointsOnImage.from_xy_array(points + 0.5, shape=image.shape)
    if masks.shape[-1] == 0:
        image, keypoints = augmenter(image=image, keypoints=keypoints)
    else:
        segmaps = SegmentationMapsOnImage(masks, shape=image.shape)
        image, segmaps, keypoints = augmenter(image=image, segmentation_maps=segmaps,
                                              keypoints=keypoints)
        masks = segmaps.get_arr().astype(bool, copy=False)
    return image, masks, keypoints.to_xy_array() - 0.5


def _check_function_takes_keypoints(function):
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return
    takes = "keypoints" in parameters or any(
        p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if not takes:
        raise TypeError(
            f"augmentation function {function!r} takes no keypoints: with NUM_KEYPOINTS > 0 "
            f"it must be f(image, masks, rng, keypoints) -> (image, masks, keypoints), the "
            f"keypoints float32 [P, 2] (x, y) pixels moved as the image")


def as_keypoint_augmentation(augmentation):
    """A :class:`KeypointAugmentation` of an augmenter or adapter (None gives None)."""
    if augmentation is None or isinstance(augmentation, KeypointAugmentation):
        return augmentation
    return KeypointAugmentation(augmentation)


############################################################
#  Object keypoint similarity (COCO)
############################################################

def keypoint_sigmas(num_keypoints, sigmas=None):
    """float64 [K] OKS constants: ``sigmas`` if given, COCO's person ones when K == 17.

    Raises ValueError when K != 17 and no sigmas are given, or their length is not K.
    """
    k = int(num_keypoints)
    if sigmas is None:
        if k != len(COCO_PERSON_SIGMAS):
            raise ValueError(
                f"OKS needs one sigma per keypoint: give sigmas for your {k} keypoints "
                f"(COCO's 17 person sigmas are the default only for K = 17)")
        return COCO_PERSON_SIGMAS.copy()
    sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if sigmas.shape[0] != k or not np.all(sigmas > 0):
        raise ValueError(f"sigmas must be {k} positive numbers, got {sigmas.tolist()}")
    return sigmas


def compute_oks(gt_keypoints, gt_area, dt_keypoints, sigmas, gt_box=None):
    """COCO's object keypoint similarity of one detection with one ground truth.

    Args:
        gt_keypoints: [K, 3] (x, y, v) of the ground truth. gt_area: its area (pixels²;
            COCO uses the segment's area).
        dt_keypoints: [K, 2] or [K, 3] (x, y, ...) of the detection.
        sigmas: [K] (see :func:`keypoint_sigmas`).
        gt_box: (x, y, w, h) of the ground truth, used only when it has no labelled
            keypoint (COCO then measures the distance outside the box grown by its size).

    Returns:
        float: mean over labelled keypoints of exp(-d² / (2 * area * (2 * sigma)²)).
    """
    return float(compute_oks_matrix(np.asarray(gt_keypoints)[None], [gt_area],
                                    np.asarray(dt_keypoints)[None], sigmas,
                                    None if gt_box is None else [gt_box])[0, 0])


def compute_oks_matrix(gt_keypoints, gt_areas, dt_keypoints, sigmas, gt_boxes=None):
    """OKS of every detection with every ground truth: float64 [D, G] (COCO's ``ious``).

    gt_keypoints [G, K, 3], gt_areas [G], dt_keypoints [D, K, 2 or 3], sigmas [K],
    gt_boxes [G, (x, y, w, h)] (needed for ground truths without labelled keypoints).
    """
    gt = np.asarray(gt_keypoints, dtype=np.float64).reshape(len(gt_areas), -1, 3)
    dt = np.asarray(dt_keypoints, dtype=np.float64)
    dt = dt.reshape(dt.shape[0], gt.shape[1], -1)[..., :2]
    variances = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    areas = np.asarray(gt_areas, dtype=np.float64) + np.spacing(1)
    oks = np.zeros((dt.shape[0], gt.shape[0]))
    for j in range(gt.shape[0]):
        labelled = gt[j, :, 2] > 0
        if labelled.any():
            dx = dt[:, :, 0] - gt[j, None, :, 0]
            dy = dt[:, :, 1] - gt[j, None, :, 1]
        else:
            if gt_boxes is None:
                raise ValueError("a ground truth without labelled keypoints needs gt_boxes")
            x, y, w, h = np.asarray(gt_boxes[j], dtype=np.float64)
            dx = np.maximum(0, (x - w) - dt[:, :, 0]) + np.maximum(0, dt[:, :, 0] - (x + 2 * w))
            dy = np.maximum(0, (y - h) - dt[:, :, 1]) + np.maximum(0, dt[:, :, 1] - (y + 2 * h))
            labelled = np.ones_like(labelled)
        e = (dx ** 2 + dy ** 2) / variances / areas[j] / 2
        oks[:, j] = np.exp(-e)[:, labelled].mean(axis=1)
    return oks

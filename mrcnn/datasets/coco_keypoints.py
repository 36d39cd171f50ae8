"""The keypoints of a COCO JSON: categories' "keypoints" names and "skeleton", and
annotations' flat "keypoints" lists, as CocoDataset reads them.

COCO's keypoint layout (person_keypoints_*.json, and keypoint exports of annotation tools)::

    "categories": [{"id": 1, "name": "person",
                    "keypoints": ["nose", "left_eye", ...],      # K names
                    "skeleton": [[16, 14], [14, 12], ...]}]       # 1-based index pairs
    "annotations": [{..., "keypoints": [x1, y1, v1, x2, y2, v2, ...],   # 3K numbers
                     "num_keypoints": 12}]

(x, y) are pixel indices of the original image (x the column, integer x the centre of
pixel column x; see mrcnn.keypoints), v COCO's visibility: 0 not labelled, 1 labelled but
occluded, 2 visible. A model has one set of K keypoints, so every kept category that
names keypoints must name the same ones; instances of categories without keypoints (and
crowd regions, and annotations without a "keypoints" list) get K unlabelled rows.
"""
import warnings

import numpy as np

from mrcnn.datasets.errors import AnnotationError, AnnotationWarning
from mrcnn.validate import KEYPOINT_TOLERANCE

__all__ = ["category_keypoints", "merge_keypoint_names", "flip_map_from_names",
           "annotation_keypoints", "KeypointReport"]


def category_keypoints(record, label):
    """(names tuple, 0-based skeleton tuple of pairs) of one category record, or None
    when it names no keypoints. AnnotationError naming the category for a "keypoints"
    entry that is not a list of distinct names or a "skeleton" outside 1..K."""
    names = record.get("keypoints")
    if names in (None, []):
        return None
    where = f"category {record.get('id')!r} ({record.get('name')!r})"
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise AnnotationError(f"'keypoints' must be a list of keypoint names, got "
                              f"{names!r:.80}", label, where)
    if len(set(names)) != len(names):
        raise AnnotationError(f"'keypoints' names a keypoint twice: {names}", label, where)
    skeleton = []
    for pair in record.get("skeleton") or ():
        ok = (isinstance(pair, (list, tuple)) and len(pair) == 2
              and all(isinstance(i, int) and not isinstance(i, bool) for i in pair))
        if not ok or not all(1 <= i <= len(names) for i in pair):
            raise AnnotationError(f"'skeleton' entry {pair!r} is not a pair of keypoint "
                                  f"numbers 1..{len(names)} (COCO's skeleton is 1-based)",
                                  label, where)
        skeleton.append((pair[0] - 1, pair[1] - 1))
    return tuple(names), tuple(skeleton)


def merge_keypoint_names(known, names, label, where):
    """The dataset's keypoint names after a category (or file) names ``names``.

    known: the names so far (None when none yet). AnnotationError when they differ: a
    model has one set of keypoints.
    """
    if known is None or tuple(known) == tuple(names):
        return tuple(names)
    raise AnnotationError(
        f"names the keypoints {list(names)} but other categories (or files loaded before) "
        f"name {list(known)}; a model has one set of keypoints: load the categories that "
        f"share them (class_names=...)", label, where)


def flip_map_from_names(names):
    """(left, right) name pairs of keypoints named "left_<part>" and "right_<part>".

    Only this naming convention is recognised (COCO's person keypoints follow it); any
    other left/right pairing is for the user to give as config.KEYPOINT_FLIP_MAP.
    """
    names = tuple(names or ())
    return tuple((name, "right_" + name[len("left_"):]) for name in names
                 if name.startswith("left_") and "right_" + name[len("left_"):] in names)


def annotation_keypoints(annotation, num_keypoints, label, where):
    """float32 [K, 3] (x, y, v) of an annotation's flat "keypoints" list, or None when it
    has none. Unlabelled points (v = 0) become (0, 0, 0).

    Raises AnnotationError naming the annotation for a list whose length is not 3K (or
    not a multiple of 3), values that are not numbers, visibilities other than 0/1/2 and
    labelled points with NaN or infinite coordinates.
    """
    flat = annotation.get("keypoints")
    if flat is None or (isinstance(flat, list) and not flat):
        return None
    if not isinstance(flat, list):
        raise AnnotationError(f"'keypoints' must be a flat list [x1, y1, v1, x2, ...], got "
                              f"{flat!r:.80}", label, where)
    try:
        values = np.array(flat, dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationError(f"'keypoints' holds values that are not numbers: "
                              f"{flat!r:.80}", label, where) from None
    if values.ndim != 1:
        raise AnnotationError(f"'keypoints' must be a flat list [x1, y1, v1, x2, ...], not "
                              f"nested (shape {tuple(values.shape)})", label, where)
    if values.size % 3:
        raise AnnotationError(f"'keypoints' has {values.size} values, not a multiple of 3 "
                              f"(x, y, v per keypoint)", label, where)
    if values.size != 3 * num_keypoints:
        raise AnnotationError(f"'keypoints' has {values.size // 3} keypoints "
                              f"({values.size} values) but its category names "
                              f"{num_keypoints}", label, where)
    points = values.reshape(num_keypoints, 3)
    visibility = points[:, 2]
    valid = (visibility == 0) | (visibility == 1) | (visibility == 2)
    if not valid.all():
        bad = sorted(set(visibility[~valid].tolist()))[:6]
        raise AnnotationError(f"keypoint visibilities {bad} are not 0 (not labelled), 1 "
                              f"(occluded) or 2 (visible)", label, where)
    labelled = visibility > 0
    if not np.isfinite(points).all() and not np.isfinite(points[labelled, :2]).all():
        raise AnnotationError("labelled keypoints hold NaN or infinite coordinates",
                              label, where)
    points[~labelled] = 0
    return points.astype(np.float32)


class KeypointReport:
    """Keypoints of one file that were left out, reported in one AnnotationWarning.

    * a labelled point more than ``mrcnn.validate.KEYPOINT_TOLERANCE`` pixels outside
      its image (a rare annotation slip in COCO itself) becomes unlabelled (v = 0);
    * keypoints of annotations whose category names no keypoints are ignored.
    """

    def __init__(self, file):
        self.file = file
        self.outside, self.first_outside = 0, None
        self.ignored, self.first_ignored = 0, None

    def clip_outside(self, points, height, width, where):
        """Mark labelled points outside the image unlabelled (in place); returns points."""
        x, y = points[:, 0], points[:, 1]
        outside = (points[:, 2] > 0) & (
            (x < -KEYPOINT_TOLERANCE) | (x > width - 1 + KEYPOINT_TOLERANCE)
            | (y < -KEYPOINT_TOLERANCE) | (y > height - 1 + KEYPOINT_TOLERANCE))
        if outside.any():
            self.outside += int(outside.sum())
            self.first_outside = self.first_outside or where
            points[outside] = 0
        return points

    def ignore(self, where):
        self.ignored += 1
        self.first_ignored = self.first_ignored or where

    def warn(self, stacklevel=3):
        if self.outside:
            warnings.warn(
                f"{self.file}: {self.outside} labelled keypoint(s) lie outside their image "
                f"(first: {self.first_outside}); they are loaded as not labelled (v = 0)",
                AnnotationWarning, stacklevel=stacklevel)
        if self.ignored:
            warnings.warn(
                f"{self.file}: {self.ignored} annotation(s) carry 'keypoints' but their "
                f"category names no keypoints (first: {self.first_ignored}); those "
                f"keypoints are ignored", AnnotationWarning, stacklevel=stacklevel)

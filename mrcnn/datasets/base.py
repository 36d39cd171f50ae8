"""The common base of the annotation loaders, and splitting any Dataset in two."""
import copy
import json

import numpy as np
from PIL import Image

from mrcnn.dataset import Dataset
from mrcnn.datasets import raster
from mrcnn.datasets.errors import AnnotationError, OutsideReport

__all__ = ["AnnotationDataset", "split_dataset", "image_size", "read_json_object"]


def read_json_object(path, kind):
    """The JSON object (dict) in annotation file `path`; AnnotationError naming the file when
    it is no JSON or its top level is not an object. kind: the format, for the message."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"not a JSON file: {error}", path) from error
    if not isinstance(data, dict):
        raise AnnotationError(f"not a {kind} (the top level is not an object)", path)
    return data


def image_size(path, file=None, annotation=None):
    """(height, width) of an image file, read from its header.

    Raises AnnotationError naming ``file`` (the annotation file that refers to the image)
    and ``annotation`` when the image is missing or unreadable.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise AnnotationError(f"the image file {str(path)!r} does not exist", file,
                              annotation) from None
    except OSError as error:
        raise AnnotationError(f"cannot read the image file {str(path)!r}: {error}", file,
                              annotation) from error
    return int(height), int(width)


def split_dataset(dataset, val_fraction, seed=0):
    """Split a prepared Dataset into (train, val), both prepared, with the same classes.

    Works on any Dataset whose per-image data lives in ``image_info`` (the Dataset
    contract): each part is a shallow copy of ``dataset`` holding a subset of the
    ``image_info`` entries, renumbered 0..n-1 by ``prepare()``.

    Args:
        dataset: a Dataset with at least 2 images.
        val_fraction: share of the images in the validation part, 0 < val_fraction < 1;
            round(val_fraction * num_images) images, at least 1 and at most all but one.
        seed: the images are drawn by ``np.random.default_rng(seed).permutation``; each
            part keeps the images in their original order.
    Returns:
        (train, val) datasets of the same class as ``dataset``.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got "
                         f"{val_fraction!r}")
    count = len(dataset.image_info)
    if count < 2:
        raise ValueError(f"cannot split a dataset of {count} image(s) into train and val")
    val_count = min(max(int(round(count * val_fraction)), 1), count - 1)
    order = np.random.default_rng(seed).permutation(count)
    val_ids = np.sort(order[:val_count])
    train_ids = np.sort(order[val_count:])
    return _subset(dataset, train_ids), _subset(dataset, val_ids)


def _subset(dataset, image_ids):
    part = copy.copy(dataset)
    part.image_info = [dict(dataset.image_info[int(i)]) for i in image_ids]
    part.class_info = [dict(info) for info in dataset.class_info]
    part.source_class_ids = {}
    part.prepare()
    return part


class AnnotationDataset(Dataset):
    """A Dataset whose instances are shapes parsed from annotation files.

    Subclasses parse their format in ``load_annotations`` and register each image with
    ``height``, ``width`` and ``instances``: a list of {"class": source class id, "crowd":
    bool, "shapes": [shape dicts of mrcnn.datasets.raster]}. ``load_mask`` rasterises
    them (see mrcnn.datasets.raster for the pixel convention).

    Class attributes:
        SOURCE: the source name of the classes and images.
        OUTSIDE_TOLERANCE: a polygon vertex, box corner or circle centre may lie outside
            the image by up to this fraction of the image side (at least 2 px); the parts
            outside are cut off with one AnnotationWarning per annotation file. Farther
            out is an AnnotationError.
    """

    SOURCE = "annotations"
    OUTSIDE_TOLERANCE = 0.1

    # ------------------------------------------------------------------ classes
    def class_source_id(self, name):
        """Source class id of class ``name``, registering it (next free id) if new."""
        for info in self.class_info:
            if info["source"] == self.SOURCE and info["name"] == name:
                return info["id"]
        ids = [info["id"] for info in self.class_info if info["source"] == self.SOURCE]
        new_id = max(ids, default=0) + 1
        self.add_class(self.SOURCE, new_id, name)
        return new_id

    def register_classes(self, names):
        """{name: source class id} of ``names``, registering the new ones in this order."""
        return {name: self.class_source_id(name) for name in names}

    def _outside_report(self, file):
        return OutsideReport(file, self.OUTSIDE_TOLERANCE)

    @staticmethod
    def _check_shapes(report, shapes, height, width, annotation, file=None):
        for shape in shapes:
            report.check(raster.shape_extent(shape, height, width), raster.shape_anchors(shape),
                         width, height, annotation, file)

    # ------------------------------------------------------------------ masks
    def load_mask(self, image_id):
        """Instance masks of an image.

        Returns:
            masks: bool [H, W, N] (H, W from the annotations); class_ids: int32 [N],
            negative for crowd regions. Instances whose shapes cover no pixel are left
            out; an image without instances gives [H, W, 0] and [0].
        """
        info = self.image_info[image_id]
        if info["source"] != self.SOURCE:
            return super().load_mask(image_id)
        height, width = int(info["height"]), int(info["width"])
        masks, class_ids = [], []
        for instance in info["instances"]:
            mask = raster.instance_mask(instance["shapes"], height, width)
            if not mask.any():
                continue
            class_id = self.map_source_class_id(f"{self.SOURCE}.{instance['class']}")
            masks.append(mask)
            class_ids.append(-class_id if instance.get("crowd") else class_id)
        if not masks:
            return np.zeros([height, width, 0], dtype=bool), np.zeros([0], dtype=np.int32)
        return np.stack(masks, axis=2), np.array(class_ids, dtype=np.int32)

    def image_reference(self, image_id):
        """The image's path."""
        return self.image_info[image_id]["path"]

    # ------------------------------------------------------------------ splitting
    def split(self, val_fraction, seed=0):
        """(train, val): this dataset split by :func:`split_dataset` (both prepared)."""
        return split_dataset(self, val_fraction, seed)

"""Ready-made Datasets for the common annotation formats.

Each is a ``mrcnn.dataset.Dataset`` subclass, loaded and prepared by its constructor, and
used exactly as a hand-written one (``load_image``, ``load_mask``, ``class_names``,
``image_info``, training, evaluation)::

    from mrcnn.datasets import CocoDataset, ViaDataset, LabelMeDataset, MaskFolderDataset

    dataset = CocoDataset("annotations/instances_default.json", "images")  # COCO JSON
    dataset = ViaDataset("via_project.json", "images", class_attribute="class")
    dataset = LabelMeDataset("labelme_folder/")
    dataset = MaskFolderDataset("images/", "masks/")     # masks/<image>/<class>_<k>.png
    train, val = dataset.split(0.2, seed=0)              # prepared, same classes

Masks follow one pixel convention, COCO's (see :mod:`mrcnn.datasets.raster`). Bad
annotations raise :class:`AnnotationError` (a ``mrcnn.validate.DatasetError``) naming the
file and the annotation; shapes slightly outside their image are cut off at the border
with one :class:`AnnotationWarning` per file. :func:`coco_results` writes detections
and :func:`dataset_to_coco` any Dataset's ground truth in COCO's JSON formats.

Keypoints: a COCO file whose categories name "keypoints" gives a CocoDataset with
``load_keypoints`` (rows aligned with ``load_mask``), ``keypoint_names``,
``keypoint_skeleton`` and ``keypoint_settings()`` for the Config; ``coco_results`` and
``dataset_to_coco`` write COCO's keypoint results and ground truth.
"""
from mrcnn.datasets.base import AnnotationDataset, split_dataset
from mrcnn.datasets.coco import CocoDataset
from mrcnn.datasets.coco_export import (coco_category_ids, coco_image_ids, coco_results,
                                        dataset_to_coco, has_keypoints)
from mrcnn.datasets.errors import AnnotationError, AnnotationWarning
from mrcnn.datasets.labelme import LabelMeDataset
from mrcnn.datasets.mask_folder import MaskFolderDataset
from mrcnn.datasets.via import ViaDataset

__all__ = ["AnnotationDataset", "AnnotationError", "AnnotationWarning", "CocoDataset",
           "LabelMeDataset", "MaskFolderDataset", "ViaDataset", "coco_category_ids",
           "coco_image_ids", "coco_results", "dataset_to_coco", "has_keypoints",
           "split_dataset"]

"""Detections and ground truth of any Dataset in COCO's JSON formats.

    results = [model.detect([dataset.load_image(i)])[0] for i in image_ids]
    json.dump(coco_results(results, dataset, image_ids), open("results.json", "w"))
    json.dump(dataset_to_coco(dataset), open("instances.json", "w"))

Ids: a COCO file needs integer image and category ids. When the dataset's own ids (its
``image_info[i]["id"]``, ``class_info[c]["id"]``) are distinct integers — a CocoDataset's
COCO image and category ids, for instance — they are used, so results match the file
the dataset was read from; otherwise (file names as ids, several sources with the same
ids) the internal ids are (images 0..n-1, categories 1..K). ``coco_image_ids`` and
``coco_category_ids`` tell which. Boxes are [x, y, width, height] pixels, masks compressed
RLE with str counts (see mrcnn.coco_eval), so the lists ``json.dump`` as they are and
pycocotools' ``COCO.loadRes`` reads them.
"""
import os

import numpy as np

from mrcnn.coco_eval import _image_size, detections_to_coco, mask_annotations

__all__ = ["coco_results", "dataset_to_coco", "coco_image_ids", "coco_category_ids"]


def _own_ids(values):
    """True when ``values`` are distinct integers (not bools)."""
    ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
               for v in values)
    return ints and len(set(int(v) for v in values)) == len(values)


def coco_image_ids(dataset):
    """list: the COCO image id of each internal image id (see the module docstring)."""
    own = [info["id"] for info in dataset.image_info]
    return [int(v) for v in own] if _own_ids(own) else list(range(len(own)))


def coco_category_ids(dataset):
    """list: the COCO category id of each internal class id (index 0, BG, is None)."""
    own = [info["id"] for info in dataset.class_info[1:]]
    ids = [int(v) for v in own] if _own_ids(own) else list(range(1, len(own) + 1))
    return [None] + ids


def coco_results(results, dataset, image_ids):
    """Detections as a COCO results list.

    Args:
        results: detect() dicts ("rois", "class_ids", "scores", "masks"), one per image.
        dataset: the prepared Dataset the images come from.
        image_ids: the internal image id of each result.
    Returns:
        list of {"image_id", "category_id", "bbox" [x, y, w, h], "score", "segmentation"
        (RLE)} with the dataset's COCO ids (see the module docstring); ``COCO.loadRes``
        of a COCO object of the same images reads it.
    """
    image_ids = list(image_ids)
    if len(image_ids) != len(results):
        raise ValueError(f"{len(results)} results but {len(image_ids)} image ids")
    images, categories = coco_image_ids(dataset), coco_category_ids(dataset)
    listed = []
    for image_id, result in zip(image_ids, results):
        listed.extend(detections_to_coco(images[int(image_id)], result,
                                         category_of=lambda c: categories[int(c)]))
    return listed


def _file_name(path, image_dir):
    if not path:
        return ""
    path = os.fspath(path)
    return os.path.relpath(path, image_dir) if image_dir is not None else path


def dataset_to_coco(dataset, image_ids=None, image_dir=None):
    """The ground truth of a prepared Dataset as a COCO instances dict (JSON-ready).

    Args:
        dataset: any prepared Dataset (its load_mask masks; negative class ids become
            crowd regions, iscrowd=1).
        image_ids: internal image ids to export (default: all).
        image_dir: write each "file_name" relative to this folder (default: the image
            paths as they are, so ``CocoDataset(dataset_to_coco(d))`` finds the images).
    Returns:
        {"images": [{"id", "file_name", "height", "width"}], "categories": [{"id",
        "name", "supercategory"}], "annotations": [...]} with the ids of
        ``coco_image_ids`` / ``coco_category_ids``; masks as compressed RLE (lossless:
        ``CocoDataset`` of it gives the same masks and classes).
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    coco_images, categories = coco_image_ids(dataset), coco_category_ids(dataset)
    images, annotations = [], []
    for image_id in image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        masks = np.asarray(masks, dtype=bool)
        height, width = _image_size(dataset, image_id, masks)
        coco_id = coco_images[int(image_id)]
        images.append({"id": coco_id, "height": height, "width": width,
                       "file_name": _file_name(dataset.image_info[image_id]["path"],
                                               image_dir)})
        annotations.extend(mask_annotations(coco_id, masks, class_ids,
                                            category_of=lambda c: categories[c],
                                            first_id=len(annotations) + 1))
    return {"images": images,
            "categories": [{"id": categories[c], "name": dataset.class_info[c]["name"],
                            "supercategory": ""} for c in range(1, dataset.num_classes)],
            "annotations": annotations}

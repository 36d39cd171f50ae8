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

Keypoints: results holding "keypoints" (a keypoint model's detect()) get COCO's keypoint
results entry, flat [x1, y1, s1, ...] (s the keypoint score; the detection's "score"
stays the one of the box); a keypoint-only model's results (no "masks") have boxes and
keypoints but no "segmentation". A dataset with keypoints (``load_keypoints``) writes
COCO's person_keypoints layout: categories with "keypoints" (names) and a 1-based
"skeleton", annotations with flat "keypoints" [x1, y1, v1, ...] and "num_keypoints".
pycocotools' ``COCOeval(gt, dt, iouType="keypoints")`` reads both (set
``params.kpt_oks_sigmas`` to K constants unless K is COCO's 17).
"""
import os

import numpy as np

from mrcnn.coco_eval import _image_size, detections_to_coco, mask_annotations
from mrcnn.dataset import Dataset

__all__ = ["coco_results", "dataset_to_coco", "coco_image_ids", "coco_category_ids",
           "has_keypoints"]


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
            With "keypoints" float32 [N, K, 3] (x, y, score), pixels of the original
            image, each detection also gets "keypoints"; without "masks" (a
            keypoint-only model, KEYPOINT_WITH_MASKS False) it gets no "segmentation".
        dataset: the prepared Dataset the images come from.
        image_ids: the internal image id of each result.
    Returns:
        list of {"image_id", "category_id", "bbox" [x, y, w, h], "score"[,
        "segmentation" (RLE)][, "keypoints" flat 3K floats]} with the dataset's COCO ids
        (see the module docstring); ``COCO.loadRes`` of a COCO object of the same images
        reads it.
    """
    image_ids = list(image_ids)
    if len(image_ids) != len(results):
        raise ValueError(f"{len(results)} results but {len(image_ids)} image ids")
    images, categories = coco_image_ids(dataset), coco_category_ids(dataset)
    listed = []
    for image_id, result in zip(image_ids, results):
        listed.extend(_with_keypoints(
            detections_to_coco(images[int(image_id)], result,
                               category_of=lambda c: categories[int(c)]), result))
    return listed


def _flat(points):
    """[K, 3] -> [x1, y1, c1, ...] plain floats."""
    return [float(v) for v in np.asarray(points, dtype=np.float64).reshape(-1)]


def _with_keypoints(entries, result):
    """entries (one per detection, in order) with the result's "keypoints" added."""
    if "keypoints" not in result:
        return entries
    points = np.asarray(result["keypoints"])
    if len(points) != len(entries):
        raise ValueError(f"the result holds {len(points)} keypoint rows for "
                         f"{len(entries)} detections")
    for entry, row in zip(entries, points):
        entry["keypoints"] = _flat(row)
    return entries


def _file_name(path, image_dir):
    if not path:
        return ""
    path = os.fspath(path)
    return os.path.relpath(path, image_dir) if image_dir is not None else path


def has_keypoints(dataset):
    """Whether a Dataset has keypoints: its ``num_keypoints`` (CocoDataset) when it has
    one, else whether its class implements ``load_keypoints``."""
    count = getattr(dataset, "num_keypoints", None)
    if isinstance(count, (int, np.integer)) and not isinstance(count, bool):
        return count > 0
    return type(dataset).load_keypoints is not Dataset.load_keypoints


def dataset_to_coco(dataset, image_ids=None, image_dir=None, keypoints=None,
                    keypoint_names=None, keypoint_skeleton=None):
    """The ground truth of a prepared Dataset as a COCO instances dict (JSON-ready).

    Args:
        dataset: any prepared Dataset (its load_mask masks; negative class ids become
            crowd regions, iscrowd=1).
        image_ids: internal image ids to export (default: all).
        image_dir: write each "file_name" relative to this folder (default: the image
            paths as they are, so ``CocoDataset(dataset_to_coco(d))`` finds the images).
        keypoints: also write the keypoints of ``load_keypoints`` (default: when
            :func:`has_keypoints`); False leaves them out.
        keypoint_names: the K names (default: the dataset's ``keypoint_names``, else
            "0".."K-1").
        keypoint_skeleton: 0-based index pairs (default: the dataset's
            ``keypoint_skeleton`` or ``skeleton``, else none), written 1-based as COCO.
    Returns:
        {"images": [{"id", "file_name", "height", "width"}], "categories": [{"id",
        "name", "supercategory"}], "annotations": [...]} with the ids of
        ``coco_image_ids`` / ``coco_category_ids``; masks as compressed RLE (lossless:
        ``CocoDataset`` of it gives the same masks and classes). With keypoints, every
        category also has "keypoints" and "skeleton" and every annotation "keypoints"
        (flat [x1, y1, v1, ...], as ``mrcnn.validate.check_keypoints`` returns them:
        unlabelled points (0, 0, 0)) and "num_keypoints" (the labelled ones);
        ``CocoDataset`` of it gives the same keypoints.
    """
    keypoints = has_keypoints(dataset) if keypoints is None else bool(keypoints)
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    coco_images, categories = coco_image_ids(dataset), coco_category_ids(dataset)
    images, annotations, count = [], [], None
    for image_id in image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        masks = np.asarray(masks, dtype=bool)
        height, width = _image_size(dataset, image_id, masks)
        coco_id = coco_images[int(image_id)]
        images.append({"id": coco_id, "height": height, "width": width,
                       "file_name": _file_name(dataset.image_info[image_id]["path"],
                                               image_dir)})
        added = mask_annotations(coco_id, masks, class_ids,
                                 category_of=lambda c: categories[c],
                                 first_id=len(annotations) + 1)
        if keypoints:
            count = _add_keypoints(added, dataset, image_id, (height, width), masks,
                                   class_ids, count)
        annotations.extend(added)
    listed = [{"id": categories[c], "name": dataset.class_info[c]["name"],
               "supercategory": ""} for c in range(1, dataset.num_classes)]
    if keypoints:
        names, skeleton = _keypoint_description(dataset, count, keypoint_names,
                                                keypoint_skeleton)
        for category in listed:
            category["keypoints"] = list(names)
            category["skeleton"] = [[int(a) + 1, int(b) + 1] for a, b in skeleton]
    return {"images": images, "categories": listed, "annotations": annotations}


def _add_keypoints(annotations, dataset, image_id, image_shape, masks, class_ids, count):
    """Add "keypoints" and "num_keypoints" to one image's ``mask_annotations`` (which
    leave out class 0 and empty masks, as here); returns K (None while unknown)."""
    from mrcnn import validate

    points = validate.load_checked_keypoints(dataset, image_id, image_shape,
                                             len(class_ids), count)
    kept = [i for i, class_id in enumerate(np.asarray(class_ids))
            if class_id != 0 and masks[..., i].any()]
    for annotation, i in zip(annotations, kept):
        row = points[i]
        annotation["keypoints"] = [v for x, y, vis in row.tolist()
                                   for v in (float(x), float(y), int(vis))]
        annotation["num_keypoints"] = int((row[:, 2] > 0).sum())
    return points.shape[1] if len(points) else count


def _keypoint_description(dataset, count, names, skeleton):
    """(K names, 0-based skeleton pairs) of the exported keypoints."""
    names = names if names is not None else getattr(dataset, "keypoint_names", None)
    if names is None:
        names = [str(i) for i in range(count or 0)]
    names = [str(n) for n in names]
    if count is not None and len(names) != count:
        raise ValueError(f"{len(names)} keypoint names for {count} keypoints per instance")
    if skeleton is None:
        skeleton = (getattr(dataset, "keypoint_skeleton", None)
                    or getattr(dataset, "skeleton", None) or ())
    for pair in skeleton:
        if len(pair) != 2 or not all(0 <= int(i) < len(names) for i in pair):
            raise ValueError(f"skeleton pair {tuple(pair)!r} is not two keypoint indices "
                             f"0..{len(names) - 1}")
    return names, [tuple(int(i) for i in pair) for pair in skeleton]

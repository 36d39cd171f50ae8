"""COCO keypoint AP (object keypoint similarity) through pycocotools, for any keypoint dataset.

pycocotools' ``COCOeval(..., iouType="keypoints")`` matches detections to ground truth by
OKS instead of IoU: for a ground truth of area ``a`` (its mask's pixels, COCO's segment
area) and labelled keypoints i (v > 0) at distance d_i from the detection's,

    OKS = mean_i exp(-d_i² / (2 a (2 sigma_i)²))

with one constant sigma_i per keypoint: COCO's 17 person sigmas when K = 17
(``mrcnn.keypoints.COCO_PERSON_SIGMAS``), the user's otherwise (``sigmas=``). Ground
truths without labelled keypoints are ignored, as COCO does.

Frame: keypoints are (x, y) pixel indices of the original image, COCO's own frame, so
they go to COCO as they are: ground truth as flat [x1, y1, v1, ...] with v the
visibility, detections as flat [x1, y1, s1, ...] with s the keypoint score (unused by
the OKS). Metric names follow ``COCOeval.summarize()`` for keypoints: AP (OKS
0.50:0.95), AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl, over at most 20
detections per image::

    metrics = evaluate_keypoint_metrics(model, dataset, sigmas=(0.1, 0.1, 0.1))
    metrics["AP50"]
"""
import numpy as np

from mrcnn import keypoints as keypoint_module
from mrcnn import utils
from mrcnn.coco_eval import (_identity, _image_size, _json_id, _quiet, box_to_xywh,
                              make_coco, run_cocoeval)
from mrcnn.evaluate import detect_dataset

__all__ = ["KEYPOINT_METRIC_NAMES", "keypoints_to_coco", "keypoint_annotations",
           "dataset_to_coco_keypoints", "load_keypoint_results", "keypoint_metrics",
           "evaluate_keypoint_metrics", "keypoint_metrics_of_detections"]

KEYPOINT_METRIC_NAMES = ("AP", "AP50", "AP75", "APm", "APl",
                         "AR", "AR50", "AR75", "ARm", "ARl")


def _flat(keypoints):
    """[K, 3] -> [x1, y1, c1, x2, ...] plain floats."""
    return [float(v) for v in np.asarray(keypoints, dtype=np.float64).reshape(-1)]


def keypoints_to_coco(image_id, result, category_of=_identity):
    """One image's detections as COCO keypoint result dicts.

    Args:
        image_id: the COCO image id.
        result: a detect() dict with "class_ids" [N], "scores" [N] and "keypoints"
            float32 [N, K, 3] (x, y, score) pixels of the original image.
        category_of: internal class id -> COCO category id (default: the same).
    Returns:
        list of {"image_id", "category_id", "keypoints" (flat, 3K floats), "score"}.
    Raises:
        KeyError: the result has no "keypoints" (the model has no keypoint head).
    """
    if "keypoints" not in result:
        raise KeyError("the detection result has no 'keypoints': detect() returns them "
                       "only for a model with NUM_KEYPOINTS > 0")
    points = np.asarray(result["keypoints"])
    return [{"image_id": _json_id(image_id),
             "category_id": _json_id(category_of(result["class_ids"][i])),
             "keypoints": _flat(points[i]), "score": float(result["scores"][i])}
            for i in range(len(result["class_ids"]))]


def keypoint_annotations(image_id, masks, class_ids, keypoints, category_of=_identity,
                         first_id=1):
    """COCO keypoint ground-truth annotations of one image.

    Args:
        image_id: the COCO image id. masks: bool [H, W, N]. class_ids: [N] internal ids
            (negative: crowd, iscrowd=1). keypoints: [N, K, 3] (x, y, v) pixel indices.
        category_of, first_id: as ``coco_eval.mask_annotations``.
    Returns:
        list of {"id", "image_id", "category_id", "iscrowd", "keypoints" (flat 3K),
        "num_keypoints" (labelled ones), "area" (mask pixels), "bbox" [x, y, w, h]};
        class id 0 and empty masks are left out.
    """
    boxes = utils.extract_bboxes(masks) if masks.ndim == 3 else np.zeros((0, 4))
    points = np.asarray(keypoints, dtype=np.float64)
    annotations = []
    for i, class_id in enumerate(np.asarray(class_ids)):
        if class_id == 0 or not masks[..., i].any():
            continue
        annotations.append({
            "id": first_id + len(annotations), "image_id": _json_id(image_id),
            "category_id": _json_id(category_of(abs(int(class_id)))),
            "iscrowd": int(class_id < 0), "keypoints": _flat(points[i]),
            "num_keypoints": int((points[i, :, 2] > 0).sum()),
            "area": float(masks[..., i].sum()), "bbox": box_to_xywh(boxes[i])})
    return annotations


def dataset_to_coco_keypoints(dataset, image_ids=None, keypoint_names=None, skeleton=None):
    """Keypoint ground truth of a prepared Dataset (with ``load_keypoints``) as a COCO object.

    Ids as ``coco_eval.dataset_to_coco`` (internal image and class ids). Keypoints are
    checked as training checks them (``mrcnn.validate.check_keypoints``). Categories get
    "keypoints" (``keypoint_names`` or "0".."K-1") and "skeleton" (1-based index pairs,
    COCO's convention, from 0-based ``skeleton`` pairs).
    """
    from mrcnn import validate

    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    images, annotations, num_keypoints = [], [], None
    for image_id in image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        masks = np.asarray(masks, dtype=bool)
        height, width = _image_size(dataset, image_id, masks)
        points = validate.load_checked_keypoints(dataset, image_id, (height, width),
                                                 len(class_ids), num_keypoints)
        num_keypoints = points.shape[1] if len(points) else num_keypoints
        images.append({"id": int(image_id), "height": height, "width": width})
        annotations.extend(keypoint_annotations(int(image_id), masks, class_ids, points,
                                                first_id=len(annotations) + 1))
    k = num_keypoints or (len(keypoint_names) if keypoint_names is not None else 0)
    names = list(keypoint_names) if keypoint_names is not None else [str(i) for i in range(k)]
    categories = [{"id": i, "name": dataset.class_names[i], "keypoints": names,
                   "skeleton": [[int(a) + 1, int(b) + 1] for a, b in (skeleton or ())]}
                  for i in range(1, dataset.num_classes)]
    return make_coco({"images": images, "categories": categories,
                      "annotations": annotations})


def load_keypoint_results(coco_gt, results):
    """A COCO object of keypoint detections (an empty one for no detections)."""
    copies = [dict(r) for r in results]
    if copies:
        return _quiet(coco_gt.loadRes, copies)
    return make_coco({"images": list(coco_gt.dataset["images"]),
                      "categories": list(coco_gt.dataset.get("categories", [])),
                      "annotations": []})


def _num_keypoints(coco_gt):
    for annotation in coco_gt.dataset.get("annotations", []):
        return len(annotation["keypoints"]) // 3
    for category in coco_gt.dataset.get("categories", []):
        if category.get("keypoints"):
            return len(category["keypoints"])
    raise ValueError("the ground truth has no keypoint annotations and no category "
                     "names its keypoints")


def keypoint_metrics(coco_gt, results, sigmas=None, image_ids=None, verbose=False,
                     return_eval=False):
    """COCOeval's ten keypoint summary numbers (OKS) for detections against ground truth.

    Args:
        coco_gt: pycocotools COCO ground truth with keypoint annotations.
        results: COCO keypoint result dicts (see :func:`keypoints_to_coco`).
        sigmas: K OKS constants; default COCO's person sigmas when K = 17 (else required).
        image_ids: COCO image ids to evaluate (default: every image of coco_gt).
        verbose: print COCOeval's summary table.
        return_eval: also return the COCOeval object.
    Returns:
        dict KEYPOINT_METRIC_NAMES -> float (-1 where a range has no ground truth).
    """
    sigmas = keypoint_module.keypoint_sigmas(_num_keypoints(coco_gt), sigmas)
    coco_dt = load_keypoint_results(coco_gt, results)

    def use_sigmas(evaluator):
        evaluator.params.kpt_oks_sigmas = sigmas

    return run_cocoeval(coco_gt, coco_dt, "keypoints", KEYPOINT_METRIC_NAMES,
                        image_ids=image_ids, verbose=verbose, return_eval=return_eval,
                        configure=use_sigmas)


def keypoint_metrics_of_detections(dataset, detections, sigmas=None, verbose=False):
    """Keypoint metrics of (image_id, detect() result) pairs against a dataset's keypoints."""
    detections = list(detections)
    image_ids = [int(image_id) for image_id, _ in detections]
    coco_gt = dataset_to_coco_keypoints(dataset, image_ids)
    results = []
    for image_id, result in detections:
        results.extend(keypoints_to_coco(int(image_id), result))
    return keypoint_metrics(coco_gt, results, sigmas, image_ids, verbose)


def evaluate_keypoint_metrics(model, dataset, image_ids=None, sigmas=None, batch_size=None,
                              verbose=0):
    """Run ``model.detect`` over a dataset and score its keypoints (OKS AP).

    Args:
        model: a MaskRCNN in inference mode with a keypoint head.
        dataset: a prepared Dataset with ``load_keypoints``.
        image_ids: internal image ids (all by default).
        sigmas: K OKS constants (COCO's person sigmas by default when K = 17).
        batch_size: images per detect() call (default: the model's BATCH_SIZE).
        verbose: progress bar, then COCOeval's summary table.
    Returns:
        dict KEYPOINT_METRIC_NAMES -> float.
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    detections = detect_dataset(model, dataset, image_ids, batch_size, verbose)
    return keypoint_metrics_of_detections(dataset, detections, sigmas, bool(verbose))

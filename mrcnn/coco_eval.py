"""The standard COCO metrics through pycocotools, for any dataset and detections.

Boxes go to COCO as [x, y, width, height] pixels (from our (y1, x1, y2, x2) with y2/x2
exclusive, so width = x2 - x1), masks as compressed RLE with the counts as an ASCII str
(as COCO's JSON files hold them; pycocotools reads str and bytes alike), so results and
ground truth `json.dump` as they are. `coco_metrics` evaluates result
dicts against a pycocotools COCO object; `dataset_to_coco` builds that object from any
prepared Dataset (crowd instances, negative class ids, become iscrowd annotations), and
`evaluate_coco_metrics` runs a model over a dataset and returns both "bbox" and "segm"
metrics:

    metrics = evaluate_coco_metrics(model, dataset)
    metrics["segm"]["AP"], metrics["bbox"]["AP50"]

Metric names follow COCOeval.summarize(): AP (IoU 0.50:0.95), AP50, AP75, APs / APm / APl
(small < 32^2 px < medium < 96^2 px < large), AR1 / AR10 / AR100 (at most 1, 10, 100
detections per image) and ARs / ARm / ARl. A metric without ground truth in its range is
-1, as pycocotools reports it.

Keypoint models: OKS keypoint AP (``iouType="keypoints"``) lives in mrcnn.keypoint_eval and
is re-exported here (``keypoint_metrics``, ``evaluate_keypoint_metrics``, ...);
``evaluate_coco_metrics(..., iou_types=("bbox", "segm", "keypoints"), sigmas=...)`` adds
its ten metrics under "keypoints". A keypoint-only model (KEYPOINT_WITH_MASKS False)
has no masks: its result dicts have no "segmentation", and it is scored with "bbox" (and
"keypoints") only.
"""
import contextlib
import io

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn import utils
from mrcnn.evaluate import detect_dataset

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
IOU_TYPES = ("bbox", "segm")


def encode_mask(mask):
    """Compressed RLE of one bool [H, W] mask: {"size": [H, W], "counts": str}, JSON-ready
    (pycocotools returns the counts as bytes)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask).astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _json_id(value):
    """An id as a plain Python int when it is an integer (numpy ints do not json.dump)."""
    return int(value) if isinstance(value, (int, np.integer)) else value


def box_to_xywh(box):
    """(y1, x1, y2, x2) pixels, y2/x2 exclusive -> COCO [x, y, width, height] floats."""
    y1, x1, y2, x2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def _identity(value):
    return int(value)


def detections_to_coco(image_id, result, category_of=_identity):
    """One image's detections as COCO result dicts.

    Args:
        image_id: the COCO image id the detections belong to.
        result: a detect() dict: "rois" [N, (y1, x1, y2, x2)] px, "class_ids" [N],
            "scores" [N] and "masks" bool [H, W, N] — no "masks" for a keypoint-only
            model (KEYPOINT_WITH_MASKS False), whose dicts then have no "segmentation".
        category_of: maps an internal class id to the COCO category id (default: same).
    Returns:
        list of {"image_id", "category_id", "bbox" [x, y, w, h], "score"[,
        "segmentation" RLE]}: plain Python values (integer ids as int, the RLE counts
        as str), so `json.dumps` takes the list as it is and `COCO.loadRes` reads it
        back (without "segmentation": for iouType "bbox").
    """
    results = []
    masks = np.asarray(result["masks"]) if "masks" in result else None
    for i in range(len(result["class_ids"])):
        entry = {
            "image_id": _json_id(image_id),
            "category_id": _json_id(category_of(result["class_ids"][i])),
            "bbox": box_to_xywh(result["rois"][i]),
            "score": float(result["scores"][i]),
        }
        if masks is not None:
            entry["segmentation"] = encode_mask(masks[..., i])
        results.append(entry)
    return results


def has_masks(config):
    """Whether a model of ``config`` returns "masks" from detect(): every model but a
    keypoint-only one (NUM_KEYPOINTS > 0 and KEYPOINT_WITH_MASKS False)."""
    from mrcnn.nn.keypoint_head import uses_masks

    return uses_masks(config)


def _image_size(dataset, image_id, masks):
    """(height, width) of an image: from its masks, its image_info or the image itself."""
    if masks.ndim == 3 and masks.shape[0] and masks.shape[1]:
        return int(masks.shape[0]), int(masks.shape[1])
    info = dataset.image_info[image_id]
    if "height" in info and "width" in info:
        return int(info["height"]), int(info["width"])
    return tuple(int(s) for s in dataset.load_image(image_id).shape[:2])


def _quiet(function, *args):
    """Call a pycocotools function without its progress prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def make_coco(dataset_dict):
    """A pycocotools COCO object from an in-memory dataset dict (images, categories,
    annotations)."""
    coco = COCO()
    coco.dataset = dataset_dict
    _quiet(coco.createIndex)
    return coco


def mask_annotations(image_id, masks, class_ids, category_of=_identity, first_id=1):
    """COCO annotation dicts of one image's instance masks.

    Args:
        image_id: the COCO image id. masks: bool [H, W, N]; class_ids: [N] internal class
            ids, negative for crowd regions (iscrowd=1, of the class of the absolute id).
        category_of: internal class id (positive) -> COCO category id (default: same).
        first_id: the annotation id of the first one; the others follow.
    Returns:
        list of {"id", "image_id", "category_id", "iscrowd", "segmentation" (RLE, counts
        str), "area" (mask pixels), "bbox" [x, y, w, h]}; class id 0 and empty masks are
        left out.
    """
    boxes = utils.extract_bboxes(masks) if masks.ndim == 3 else np.zeros((0, 4))
    annotations = []
    for i, class_id in enumerate(np.asarray(class_ids)):
        if class_id == 0 or not masks[..., i].any():
            continue
        annotations.append({
            "id": first_id + len(annotations), "image_id": _json_id(image_id),
            "category_id": _json_id(category_of(abs(int(class_id)))),
            "iscrowd": int(class_id < 0), "segmentation": encode_mask(masks[..., i]),
            "area": float(masks[..., i].sum()), "bbox": box_to_xywh(boxes[i])})
    return annotations


def dataset_to_coco(dataset, image_ids=None):
    """Ground truth of a prepared Dataset as a pycocotools COCO object.

    COCO ids are the dataset's internal ids: image ids 0..num_images-1, category ids
    1..num_classes-1. An instance with a negative class id is a crowd region
    (iscrowd=1) of the class of the same absolute id; an empty mask is left out.
    Areas are mask areas in pixels. (``mrcnn.datasets.dataset_to_coco`` writes a JSON
    dict with the dataset's own image and category ids and the image file names.)
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    images, annotations = [], []
    for image_id in image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        masks = np.asarray(masks, dtype=bool)
        height, width = _image_size(dataset, image_id, masks)
        images.append({"id": int(image_id), "height": height, "width": width})
        annotations.extend(mask_annotations(int(image_id), masks, class_ids,
                                            first_id=len(annotations) + 1))
    categories = [{"id": i, "name": dataset.class_names[i]}
                  for i in range(1, dataset.num_classes)]
    return make_coco({"images": images, "categories": categories,
                      "annotations": annotations})


def load_results(coco_gt, results, iou_type):
    """A COCO object of detections for `iou_type`, leaving `results` untouched.

    For "segm" the boxes are dropped so that pycocotools takes each detection's area from
    its mask (the area decides small/medium/large); for "bbox" the masks are dropped.
    No detections at all give an empty result set (pycocotools' loadRes cannot).
    Raises ValueError for "segm" of results without "segmentation" (a keypoint-only
    model's).
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    if iou_type == "segm" and any("segmentation" not in r for r in results):
        raise ValueError('iou_type "segm" needs a "segmentation" in every result; these '
                         'come from a model without masks (a keypoint-only model, '
                         'KEYPOINT_WITH_MASKS False): evaluate "bbox" (and "keypoints")')
    drop = "bbox" if iou_type == "segm" else "segmentation"
    copies = [{k: v for k, v in r.items() if k != drop} for r in results]
    if copies:
        return _quiet(coco_gt.loadRes, copies)
    return make_coco({"images": list(coco_gt.dataset["images"]),
                      "categories": list(coco_gt.dataset.get("categories", [])),
                      "annotations": []})


def coco_metrics(coco_gt, results, iou_type="segm", image_ids=None, verbose=False,
                 return_eval=False):
    """COCOeval's twelve summary numbers for detections against ground truth.

    Args:
        coco_gt: pycocotools COCO ground truth.
        results: list of COCO result dicts (see detections_to_coco).
        iou_type: "bbox" or "segm".
        image_ids: COCO image ids to evaluate (default: every image of coco_gt).
        verbose: print COCOeval's summary table.
        return_eval: also return the COCOeval object (precision/recall arrays in .eval).
    Returns:
        dict METRIC_NAMES -> float (and the COCOeval when return_eval).
    """
    coco_dt = load_results(coco_gt, results, iou_type)
    return run_cocoeval(coco_gt, coco_dt, iou_type, METRIC_NAMES, image_ids=image_ids,
                        verbose=verbose, return_eval=return_eval)


def run_cocoeval(coco_gt, coco_dt, iou_type, metric_names, image_ids=None, verbose=False,
                 return_eval=False, configure=None):
    """Evaluate, accumulate and summarise one COCOeval; its stats named by metric_names.

    configure: optional function called with the COCOeval before it evaluates (e.g. to
    set params.kpt_oks_sigmas).
    """
    evaluator = COCOeval(coco_gt, coco_dt, iou_type)
    if image_ids is not None:
        evaluator.params.imgIds = [int(i) for i in image_ids]
    if configure is not None:
        configure(evaluator)
    _quiet(evaluator.evaluate)
    _quiet(evaluator.accumulate)
    if verbose:
        evaluator.summarize()
    else:
        _quiet(evaluator.summarize)
    metrics = {name: float(value) for name, value in zip(metric_names, evaluator.stats)}
    return (metrics, evaluator) if return_eval else metrics


def evaluate_coco_metrics(model, dataset, image_ids=None, iou_types=IOU_TYPES,
                          batch_size=None, verbose=0, sigmas=None):
    """Run `model.detect` over a dataset and score it with the COCO metrics.

    Args:
        model: a MaskRCNN in inference mode (anything with `detect` and `config`).
        dataset: a prepared Dataset; its masks are the ground truth (see dataset_to_coco).
        image_ids: internal image ids (all by default).
        iou_types: any of "bbox", "segm", and "keypoints" (keypoint models: OKS AP of
            the dataset's load_keypoints, see mrcnn.keypoint_eval). A keypoint-only
            model (no masks, see :func:`has_masks`) leaves "segm" out.
        batch_size: images per detect() call (default: the model's BATCH_SIZE).
        verbose: progress bar over the images, then COCOeval's summary tables.
        sigmas: the K OKS constants of "keypoints" (COCO's person ones when K = 17).
    Returns:
        {iou_type: {metric name: value}} ("segm" absent for a model without masks).
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    mask_types = [t for t in iou_types if t != "keypoints"
                  and (t != "segm" or has_masks(model.config))]
    coco_gt = dataset_to_coco(dataset, image_ids) if mask_types else None
    results, keypoint_detections = [], []
    for image_id, result in detect_dataset(model, dataset, image_ids, batch_size, verbose):
        if mask_types:
            results.extend(detections_to_coco(int(image_id), result))
        if "keypoints" in iou_types:
            keypoint_detections.append((image_id, {k: result[k] for k in result
                                                   if k != "masks"}))
    metrics = {iou_type: coco_metrics(coco_gt, results, iou_type, image_ids, bool(verbose))
               for iou_type in mask_types}
    if "keypoints" in iou_types:
        from mrcnn.keypoint_eval import keypoint_metrics_of_detections
        metrics["keypoints"] = keypoint_metrics_of_detections(
            dataset, keypoint_detections, sigmas, bool(verbose))
    return metrics



# Keypoint AP lives in mrcnn.keypoint_eval (which imports this module): its names are
# read from there on first use.
_KEYPOINT_EXPORTS = ("KEYPOINT_METRIC_NAMES", "dataset_to_coco_keypoints",
                     "evaluate_keypoint_metrics", "keypoint_annotations", "keypoint_metrics",
                     "keypoint_metrics_of_detections", "keypoints_to_coco")


def __getattr__(name):
    if name in _KEYPOINT_EXPORTS:
        from mrcnn import keypoint_eval
        return getattr(keypoint_eval, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Dataset-level evaluation: mean average precision with upstream's per-image AP.

`evaluate_map` runs `model.detect` over a dataset's images in batches and averages
upstream's per-image AP (`utils.compute_ap`: greedy matching by mask IoU, VOC all-point
interpolation) over the images, as upstream's notebooks did, at one or several IoU
thresholds (0.5, or 0.5:0.95 for the COCO range). The mask IoU of an image is computed once
and matched at every threshold, which gives compute_ap's values without its cost. It
also pools the detections of each class over the whole dataset into a per-class AP, shown
by `per_class_table` as rows for `visualize.display_table`. Ground truth is taken at the
original image resolution.

The standard COCO metrics (AP, AP50, AP75, APs/m/l, AR1/10/100) through pycocotools are in
`mrcnn.coco_eval`.
"""
import math

import numpy as np

from mrcnn import utils

COCO_IOU_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.5, 1.0, 0.05), 2))
"""The ten mask-IoU thresholds 0.50, 0.55, ..., 0.95 of mAP@[0.5:0.95]."""


def ground_truth(dataset, image_id):
    """(boxes int32 [N, 4], class_ids int32 [N], masks bool [H, W, N]) of one image.

    Boxes are (y1, x1, y2, x2) pixels of the original image, y2/x2 exclusive. Crowd
    instances (negative class ids) are left out, as upstream's AP ignores them.
    """
    masks, class_ids = dataset.load_mask(image_id)
    keep = class_ids > 0
    masks, class_ids = masks[..., keep], class_ids[keep]
    return utils.extract_bboxes(masks), class_ids.astype(np.int32), masks


def _progress_bar(count, verbose):
    """A keras Progbar over `count` images, or None when quiet."""
    if not verbose:
        return None
    import keras

    return keras.utils.Progbar(count, unit_name="image")


def detect_dataset(model, dataset, image_ids=None, batch_size=None, verbose=0):
    """Run `model.detect` over images of a dataset, yielding (image_id, result) in order.

    Args:
        model: anything with `detect(images) -> [result dict]` and, when `batch_size` is
            None, `config.BATCH_SIZE`.
        dataset: a prepared Dataset (its `load_image` feeds the model).
        image_ids: internal image ids (all by default).
        batch_size: images per detect() call.
        verbose: show a progress bar over the images.
    Yields:
        (image_id, {"rois" [N, 4] px, "class_ids" [N], "scores" [N], "masks" [H, W, N]}).
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    batch_size = int(batch_size or model.config.BATCH_SIZE)
    progress = _progress_bar(len(image_ids), verbose)
    for start in range(0, len(image_ids), batch_size):
        batch_ids = image_ids[start:start + batch_size]
        results = model.detect([dataset.load_image(i) for i in batch_ids])
        for image_id, result in zip(batch_ids, results):
            yield image_id, result
        if progress is not None:
            progress.update(start + len(batch_ids))


def _sorted_predictions(result):
    """One result's predictions in score order (high first, ties by index).

    Returns class_ids [P], scores float64 [P] and masks [H, W, P] in that order, as
    utils.compute_matches orders them.
    """
    scores = np.asarray(result["scores"], dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    return (np.asarray(result["class_ids"])[order], scores[order],
            np.asarray(result["masks"])[..., order])


class _ClassPool:
    """Detections of every image pooled per class, for a dataset-level AP per class."""

    def __init__(self):
        self.gt_count = {}
        self.scores = {}
        self.hits = {}

    def add(self, gt_class_ids, pred_class_ids, pred_scores, pred_match):
        """Add one image: its ground-truth classes and its matched predictions.

        pred_class_ids, pred_scores, pred_match: [P] in score order; pred_match holds the
        index of the matched ground truth or -1.
        """
        for class_id in gt_class_ids:
            self.gt_count[int(class_id)] = self.gt_count.get(int(class_id), 0) + 1
        for class_id, score, match in zip(pred_class_ids, pred_scores, pred_match):
            self.scores.setdefault(int(class_id), []).append(float(score))
            self.hits.setdefault(int(class_id), []).append(bool(match > -1))

    def average_precision(self, class_id):
        """VOC all-point AP of one class over the dataset; NaN without ground truth."""
        count = self.gt_count.get(class_id, 0)
        if count == 0:
            return math.nan
        scores = np.asarray(self.scores.get(class_id, []), dtype=np.float64)
        hits = np.asarray(self.hits.get(class_id, []), dtype=bool)
        order = np.argsort(-scores, kind="stable")
        return float(utils.average_precision_from_hits(hits[order], count)[0])

    def class_ids(self):
        return sorted(set(self.gt_count) | set(self.scores))


def _nanmean(values):
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def evaluate_map(model, dataset, image_ids=None, iou_thresholds=(0.5,), batch_size=None,
                 verbose=0):
    """Mean over images of upstream's per-image AP, for each IoU threshold.

    Args:
        model: a MaskRCNN in inference mode (or anything with `detect` and `config`).
        dataset: a prepared Dataset.
        image_ids: images to evaluate (all by default).
        iou_thresholds: mask-IoU thresholds; the result has one mAP per threshold. Pass
            COCO_IOU_THRESHOLDS for mAP@[0.5:0.95].
        batch_size: images per detect() call (default: the model's BATCH_SIZE).
        verbose: show a progress bar over the images.
    Returns:
        dict with
        "mAP": {threshold: mean over images of compute_ap},
        "mAP_range": mean of "mAP" over the thresholds (mAP@[0.5:0.95] for the COCO range),
        "per_image": {threshold: [AP per image]} in the order of "image_ids",
        "per_class": {threshold: {class_id: AP}}, each class's detections pooled over
            the dataset (NaN for a class without ground truth),
        "gt_count" / "detection_count": {class_id: instances / detections},
        "image_ids": the images in order.
        An image without ground truth has no AP (NaN in "per_image", as compute_ap gives)
        and is left out of the means.
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    thresholds = [float(t) for t in iou_thresholds]
    per_image = {t: [] for t in thresholds}
    pools = {t: _ClassPool() for t in thresholds}
    detection_count = {}
    for image_id, result in detect_dataset(model, dataset, image_ids, batch_size, verbose):
        _, gt_class_ids, gt_masks = ground_truth(dataset, image_id)
        present = gt_masks.any(axis=(0, 1))
        gt_class_ids, gt_masks = gt_class_ids[present], gt_masks[..., present]
        pred_class_ids, pred_scores, pred_masks = _sorted_predictions(result)
        overlaps = utils.compute_overlaps_masks(pred_masks, gt_masks)
        for class_id in pred_class_ids:
            detection_count[int(class_id)] = detection_count.get(int(class_id), 0) + 1
        for threshold in thresholds:
            _, pred_match = utils.match_by_overlaps(
                overlaps, gt_class_ids, pred_class_ids, threshold)
            per_image[threshold].append(_image_ap(pred_match, len(gt_class_ids)))
            pools[threshold].add(gt_class_ids, pred_class_ids, pred_scores, pred_match)
    mean_ap = {t: _nanmean(v) if v else 0.0 for t, v in per_image.items()}
    per_class = {t: {c: pools[t].average_precision(c) for c in pools[t].class_ids()}
                 for t in thresholds}
    return {"mAP": mean_ap, "mAP_range": _nanmean(list(mean_ap.values())),
            "per_image": per_image, "per_class": per_class,
            "gt_count": dict(pools[thresholds[0]].gt_count) if thresholds else {},
            "detection_count": detection_count, "image_ids": image_ids}


def _image_ap(pred_match, gt_count):
    """utils.compute_ap's value from one image's matches (NaN without ground truth).

    compute_ap gives 0, not NaN, for an image with neither ground truth nor detections;
    here every image without ground truth is NaN, so that it stays out of the mean.
    """
    if gt_count == 0:
        return math.nan
    return float(utils.average_precision_from_hits(np.asarray(pred_match) > -1, gt_count)[0])


def per_class_table(result, class_names):
    """Rows for `visualize.display_table`: one per class, AP at each threshold.

    Args:
        result: the dict returned by `evaluate_map`.
        class_names: dataset.class_names (index = internal class id).
    Returns:
        list of rows; the first is the header ["class", "instances", "detections",
        "AP@0.50", ..., and "AP@[0.50:0.95]" when there are several thresholds]; APs are
        formatted with three decimals ("-" for a class without ground truth); the last row
        is the mean over the classes with ground truth.
    """
    thresholds = list(result["per_class"])
    header = ["class", "instances", "detections"] + [f"AP@{t:.2f}" for t in thresholds]
    if len(thresholds) > 1:
        header.append(f"AP@[{thresholds[0]:.2f}:{thresholds[-1]:.2f}]")
    class_ids = sorted(set().union(*(result["per_class"][t] for t in thresholds)))
    rows = [header]
    columns = []
    for class_id in class_ids:
        aps = [result["per_class"][t].get(class_id, math.nan) for t in thresholds]
        if len(thresholds) > 1:
            aps.append(_nanmean(aps))
        columns.append(aps)
        name = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
        rows.append([name, result["gt_count"].get(class_id, 0),
                     result["detection_count"].get(class_id, 0)] + [_fmt(a) for a in aps])
    if columns:
        means = [_nanmean(column) for column in zip(*columns)]
        rows.append(["mean", sum(result["gt_count"].values()),
                     sum(result["detection_count"].values())] + [_fmt(m) for m in means])
    return rows


def _fmt(value):
    return "-" if math.isnan(value) else f"{value:.3f}"


# The confusion matrix and the precision-recall / F1 curves live in mrcnn.evaluation_curves
# (which builds on this module); they are reachable from here too.
_CURVE_FUNCTIONS = ("image_record", "collect_records", "confusion_matrix",
                    "precision_recall_curves", "f1_by_score_threshold")


def __getattr__(name):
    if name in _CURVE_FUNCTIONS:
        from mrcnn import evaluation_curves
        return getattr(evaluation_curves, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

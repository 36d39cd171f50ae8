"""Evaluation beyond one mAP figure: confusion matrix, precision-recall and F1 curves.

All three start from the same per-image records (`image_record`): the ground-truth class
ids [G], the predictions' class ids [P] and scores [P] in score order (best first), and
their IoU matrix [P, G] (mask IoU from `collect_records`, or any IoU a caller computes).
Collect them once over a dataset, then derive every picture from them:

    records = collect_records(model, dataset)               # runs detect() once per image
    matrix = confusion_matrix(records, dataset.num_classes, iou_threshold=0.5,
                              score_threshold=0.5)
    curves = precision_recall_curves(records, iou_threshold=0.5)
    f1 = f1_by_score_threshold(records, iou_threshold=0.5)

Matching is upstream's (utils.match_by_overlaps): predictions in score order, each taking
the unmatched ground truth of its class with the highest IoU >= iou_threshold, so the
precision-recall curves and their APs are exactly those of `evaluate_map`'s per-class
table. The pictures are in mrcnn.visualize_evaluation.
"""
import numpy as np

from mrcnn import utils
from mrcnn.evaluate import _sorted_predictions, detect_dataset, ground_truth


def image_record(gt_class_ids, pred_class_ids, pred_scores, overlaps, image_id=None):
    """One image's ground truth, predictions and IoUs, predictions sorted by score.

    Args:
        gt_class_ids: int [G], class ids > 0.
        pred_class_ids: int [P]; pred_scores: float [P] (any order).
        overlaps: float [P, G] IoU of each prediction with each ground truth.
    Returns:
        dict with "gt_class_ids", "pred_class_ids", "pred_scores" and "overlaps",
        predictions in descending score order (ties keep their order), and "image_id".
    """
    gt_class_ids = np.asarray(gt_class_ids, dtype=np.int64).reshape(-1)
    pred_class_ids = np.asarray(pred_class_ids, dtype=np.int64).reshape(-1)
    pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    overlaps = np.asarray(overlaps, dtype=np.float64).reshape(len(pred_class_ids),
                                                              len(gt_class_ids))
    if len(pred_scores) != len(pred_class_ids):
        raise ValueError(f"image {image_id}: {len(pred_class_ids)} predicted classes but "
                         f"{len(pred_scores)} scores")
    order = np.argsort(-pred_scores, kind="stable")
    return {"image_id": image_id, "gt_class_ids": gt_class_ids,
            "pred_class_ids": pred_class_ids[order], "pred_scores": pred_scores[order],
            "overlaps": overlaps[order]}


def collect_records(model, dataset, image_ids=None, batch_size=None, verbose=0):
    """Run `model.detect` over a dataset and return one `image_record` per image (mask IoU
    against the ground truth at the original resolution, crowds left out, as evaluate_map).
    """
    records = []
    for image_id, result in detect_dataset(model, dataset, image_ids, batch_size, verbose):
        _, gt_class_ids, gt_masks = ground_truth(dataset, image_id)
        present = gt_masks.any(axis=(0, 1))
        gt_class_ids, gt_masks = gt_class_ids[present], gt_masks[..., present]
        pred_class_ids, pred_scores, pred_masks = _sorted_predictions(result)
        overlaps = utils.compute_overlaps_masks(pred_masks, gt_masks)
        records.append(image_record(gt_class_ids, pred_class_ids, pred_scores, overlaps,
                                    image_id=image_id))
    return records


def _matches(record, iou_threshold):
    """(gt_match [G], pred_match [P]) of upstream's class-aware greedy matching."""
    if len(record["pred_class_ids"]) == 0 or len(record["gt_class_ids"]) == 0:
        return (-np.ones(len(record["gt_class_ids"])), -np.ones(len(record["pred_class_ids"])))
    return utils.match_by_overlaps(record["overlaps"], record["gt_class_ids"],
                                   record["pred_class_ids"], iou_threshold)


# --- Confusion matrix ---------------------------------------------------------------------

def confusion_matrix(records, num_classes, iou_threshold=0.5, score_threshold=0.5):
    """Counts of (true class, predicted class) over the records, background included.

    Only predictions with score >= score_threshold take part. They are matched in two
    passes: first upstream's class-aware matching (each prediction takes the unmatched
    ground truth of its own class with the highest IoU >= iou_threshold: the diagonal,
    the true positives of the AP), then each prediction still unmatched, in score order,
    takes the unmatched ground truth of any class with the highest IoU >= iou_threshold
    (a confusion between classes). What is left is a false positive or a missed ground
    truth.

    Returns:
        int64 [num_classes, num_classes] M: M[t, p] for t, p >= 1 counts ground truths of
        class t matched by a prediction of class p; M[0, p] counts false positives of
        class p (no ground truth); M[t, 0] counts missed ground truths of class t;
        M[0, 0] is 0. Row sums over p >= 0 of row t >= 1 are the ground truths of class t.
    """
    matrix = np.zeros([num_classes, num_classes], dtype=np.int64)
    for record in records:
        keep = record["pred_scores"] >= score_threshold
        gt_class_ids = record["gt_class_ids"]
        pred_class_ids = record["pred_class_ids"][keep]
        overlaps = record["overlaps"][keep]
        _check_class_ids(record, num_classes)
        sub = {"gt_class_ids": gt_class_ids, "pred_class_ids": pred_class_ids,
               "overlaps": overlaps}
        gt_match, pred_match = _matches(sub, iou_threshold)
        for i in range(len(pred_class_ids)):
            if pred_match[i] > -1:
                continue
            free = (gt_match == -1) & (overlaps[i] >= iou_threshold)
            if free.any():
                j = int(np.argmax(np.where(free, overlaps[i], -np.inf)))
                gt_match[j], pred_match[i] = i, j
        for i, j in enumerate(pred_match.astype(int)):
            true = gt_class_ids[j] if j > -1 else 0
            matrix[true, pred_class_ids[i]] += 1
        for j in np.flatnonzero(gt_match == -1):
            matrix[gt_class_ids[j], 0] += 1
    return matrix


def _check_class_ids(record, num_classes):
    ids = np.concatenate([record["gt_class_ids"], record["pred_class_ids"]])
    if ids.size and (ids.min() < 1 or ids.max() >= num_classes):
        raise ValueError(f"image {record.get('image_id')}: class ids must be in "
                         f"1..{num_classes - 1}, got {sorted(set(ids.tolist()))}")


# --- Precision-recall per class ----------------------------------------------------------

def _pooled_hits(records, iou_threshold):
    """Per class: ground-truth count, and (score, hit) of its predictions over the records."""
    gt_count, scores, hits = {}, {}, {}
    for record in records:
        _, pred_match = _matches(record, iou_threshold)
        for class_id in record["gt_class_ids"]:
            gt_count[int(class_id)] = gt_count.get(int(class_id), 0) + 1
        for class_id, score, match in zip(record["pred_class_ids"], record["pred_scores"],
                                          pred_match):
            scores.setdefault(int(class_id), []).append(float(score))
            hits.setdefault(int(class_id), []).append(bool(match > -1))
    return gt_count, scores, hits


def precision_recall_curves(records, iou_threshold=0.5):
    """Each class's precision-recall curve over the records, and its AP.

    The predictions of a class are pooled over the records and ranked by score (ties in
    record order). AP is VOC all-point (upstream's compute_ap), the same as
    evaluate_map's "per_class" and the per-class table.

    Returns:
        {class_id: {"precision": float [P], "recall": float [P] after each of the class's
        P ranked predictions, "scores": float [P], "ap": float, "gt_count": int}} for
        every class with ground truth; a class with ground truth but no prediction has
        empty curves and AP 0.
    """
    gt_count, scores, hits = _pooled_hits(records, iou_threshold)
    curves = {}
    for class_id in sorted(gt_count):
        class_scores = np.asarray(scores.get(class_id, []), dtype=np.float64)
        class_hits = np.asarray(hits.get(class_id, []), dtype=bool)
        order = np.argsort(-class_scores, kind="stable")
        class_scores, class_hits = class_scores[order], class_hits[order]
        true_positives = np.cumsum(class_hits)
        precision = true_positives / np.arange(1, len(class_hits) + 1)
        recall = true_positives / gt_count[class_id]
        ap = utils.average_precision_from_hits(class_hits, gt_count[class_id])[0]
        curves[class_id] = {"precision": precision.astype(np.float64),
                            "recall": recall.astype(np.float64), "scores": class_scores,
                            "ap": float(ap), "gt_count": gt_count[class_id]}
    return curves


# --- F1 against the score threshold --------------------------------------------------------

def f1_by_score_threshold(records, iou_threshold=0.5, thresholds=None, class_id=None):
    """Precision, recall and F1 of the detections kept at each score threshold.

    Greedy matching in score order means that the matches of the predictions above a
    threshold do not depend on those below it, so one matching serves every threshold:
    at threshold t the true positives are the matched predictions with score >= t.

    Args:
        thresholds: score thresholds (ascending); None: every distinct prediction score.
        class_id: None pools every class; an id restricts ground truth and predictions to
            that class.
    Returns:
        dict with "thresholds" [K], "precision" [K] (1 where nothing is kept),
        "recall" [K], "f1" [K] (0 where precision + recall is 0), and "best_threshold",
        "best_f1" (the lowest threshold of the highest F1; NaN without thresholds).
    """
    pred_scores, pred_hits, gt_total = [], [], 0
    for record in records:
        _, pred_match = _matches(record, iou_threshold)
        predicted = (np.ones(len(pred_match), bool) if class_id is None
                     else record["pred_class_ids"] == class_id)
        gt_total += int(len(record["gt_class_ids"]) if class_id is None
                        else np.sum(record["gt_class_ids"] == class_id))
        pred_scores.append(record["pred_scores"][predicted])
        pred_hits.append(pred_match[predicted] > -1)
    scores = np.concatenate(pred_scores) if pred_scores else np.zeros([0])
    hits = np.concatenate(pred_hits) if pred_hits else np.zeros([0], bool)
    if thresholds is None:
        thresholds = np.unique(scores)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    kept = (scores[None, :] >= thresholds[:, None])                       # [K, N]
    true_positives = (kept & hits[None, :]).sum(axis=1).astype(np.float64)
    kept_count = kept.sum(axis=1).astype(np.float64)
    precision = np.where(kept_count > 0, true_positives / np.maximum(kept_count, 1), 1.0)
    recall = true_positives / gt_total if gt_total else np.zeros_like(true_positives)
    denominator = precision + recall
    f1 = np.where(denominator > 0, 2 * precision * recall / np.where(denominator > 0,
                                                                      denominator, 1), 0.0)
    if len(thresholds):
        best = int(np.argmax(f1))
        best_threshold, best_f1 = float(thresholds[best]), float(f1[best])
    else:
        best_threshold = best_f1 = float("nan")
    return {"thresholds": thresholds, "precision": precision, "recall": recall, "f1": f1,
            "best_threshold": best_threshold, "best_f1": best_f1}

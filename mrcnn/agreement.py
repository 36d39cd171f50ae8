"""How closely two detectors agree on the same images (e.g. bfloat16 against float32).

A candidate detection matches a reference detection when both have the same class and
their boxes overlap with IoU >= `box_iou`; pairs are formed greedily, the highest box IoU
first, each detection in at most one pair. Agreement is then the fraction of reference
detections matched, and the mask IoU of each matched pair.
"""
import numpy as np

from mrcnn import utils


def match_detections(reference, candidate, box_iou=0.9):
    """Pairs of matching detections of one image.

    Args:
        reference, candidate: detect() results of one image (dicts with "rois" int
            [N, (y1, x1, y2, x2)] image pixels, "class_ids" [N]).
        box_iou: the smallest box IoU of a pair.
    Returns:
        int [P, 2] array of (reference index, candidate index), highest IoU first.
    """
    overlaps = utils.compute_overlaps(reference["rois"], candidate["rois"])
    same_class = reference["class_ids"][:, None] == candidate["class_ids"][None, :]
    overlaps = np.where(same_class, overlaps, 0.0)
    rows, cols = np.nonzero(overlaps >= box_iou)
    order = np.argsort(-overlaps[rows, cols], kind="stable")
    used_reference, used_candidate, pairs = set(), set(), []
    for r, c in zip(rows[order], cols[order]):
        if r not in used_reference and c not in used_candidate:
            used_reference.add(r)
            used_candidate.add(c)
            pairs.append((r, c))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _pair_mask_ious(reference_masks, candidate_masks, pairs):
    """Mask IoU of each pair; masks bool [H, W, N] of one image."""
    ious = []
    for r, c in pairs:
        a, b = reference_masks[..., r], candidate_masks[..., c]
        union = np.count_nonzero(a | b)
        ious.append(np.count_nonzero(a & b) / union if union else 1.0)
    return ious


def detection_agreement(reference_results, candidate_results, box_iou=0.9):
    """Agreement of two detectors over the same images.

    Args:
        reference_results, candidate_results: lists of detect() results, one per image,
            in the same order (masks bool [H, W, N] when present).
        box_iou: the smallest box IoU of a matched pair.
    Returns:
        dict: reference_count, candidate_count, matched (pairs), matched_fraction
        (matched / reference_count; 1.0 when the reference found nothing and neither did
        the candidate, 0.0 when only the candidate did), mask_iou_mean and mask_iou_min
        over matched pairs (None without masks or pairs).
    """
    if len(reference_results) != len(candidate_results):
        raise ValueError(f"{len(reference_results)} reference results but "
                         f"{len(candidate_results)} candidate results")
    reference_count = candidate_count = 0
    mask_ious, matched = [], 0
    for reference, candidate in zip(reference_results, candidate_results):
        pairs = match_detections(reference, candidate, box_iou)
        reference_count += len(reference["class_ids"])
        candidate_count += len(candidate["class_ids"])
        matched += len(pairs)
        if "masks" in reference and "masks" in candidate:
            mask_ious += _pair_mask_ious(reference["masks"], candidate["masks"], pairs)
    if reference_count:
        fraction = matched / reference_count
    else:
        fraction = 1.0 if candidate_count == 0 else 0.0
    return {
        "reference_count": reference_count,
        "candidate_count": candidate_count,
        "matched": matched,
        "matched_fraction": fraction,
        "mask_iou_mean": float(np.mean(mask_ious)) if mask_ious else None,
        "mask_iou_min": float(np.min(mask_ious)) if mask_ious else None,
    }

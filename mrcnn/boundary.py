"""Boundary F-score of instance masks: how well a predicted outline follows the true one.

Mask IoU is dominated by a mask's interior, so a mask whose outline is off by a pixel or
two all round still scores a high IoU on a large object. The boundary F-score (Martin et
al., used by the DAVIS benchmark) looks only at the outlines: a predicted outline pixel
counts as correct when a true outline pixel lies within `tolerance` pixels of it
(Euclidean distance), and the other way round for recall.

    from mrcnn.boundary import boundary_f_score
    f = boundary_f_score(pred_mask, gt_mask, tolerance=2)   # bool [H, W] each

All masks are bool [H, W] in the pixel frame of one image (row, column).
"""
import numpy as np
from scipy import ndimage

__all__ = ["boundary_pixels", "boundary_precision_recall", "boundary_f_score",
           "matched_boundary_f_scores"]

_FOUR_NEIGHBOURS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def boundary_pixels(mask):
    """The outline of a mask: bool [H, W], the mask's pixels with a 4-neighbour outside it.

    Pixels beyond the image border count as outside, so a mask touching the border has
    its outline along the border too.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"boundary_pixels: mask must be [H, W], got shape {mask.shape}")
    interior = ndimage.binary_erosion(mask, structure=_FOUR_NEIGHBOURS, border_value=0)
    return mask & ~interior


def _within(points, target, tolerance):
    """How many of the True pixels of `points` lie within `tolerance` px of a True pixel
    of `target` (Euclidean)."""
    if not target.any():
        return 0
    distance = ndimage.distance_transform_edt(~target)
    return int(np.count_nonzero(points & (distance <= tolerance)))


def boundary_precision_recall(pred_mask, gt_mask, tolerance=2):
    """(precision, recall) of the predicted outline against the true one.

    precision: share of predicted outline pixels within `tolerance` px of the true outline;
    recall: share of true outline pixels within `tolerance` px of the predicted outline.
    An empty outline has precision (or recall) 1 when the other is empty too, else 0.
    """
    pred_mask, gt_mask = np.asarray(pred_mask, bool), np.asarray(gt_mask, bool)
    if pred_mask.shape != gt_mask.shape:
        raise ValueError(f"boundary_precision_recall: pred mask {pred_mask.shape} and "
                         f"gt mask {gt_mask.shape} differ in shape")
    pred_edge, gt_edge = boundary_pixels(pred_mask), boundary_pixels(gt_mask)
    pred_count, gt_count = np.count_nonzero(pred_edge), np.count_nonzero(gt_edge)
    if pred_count == 0 and gt_count == 0:
        return 1.0, 1.0
    precision = _within(pred_edge, gt_edge, tolerance) / pred_count if pred_count else 0.0
    recall = _within(gt_edge, pred_edge, tolerance) / gt_count if gt_count else 0.0
    return float(precision), float(recall)


def boundary_f_score(pred_mask, gt_mask, tolerance=2):
    """Harmonic mean of boundary precision and recall (0 when both are 0)."""
    precision, recall = boundary_precision_recall(pred_mask, gt_mask, tolerance)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def matched_boundary_f_scores(pred_masks, gt_masks, pred_match, tolerance=2):
    """Boundary F-score of each matched (prediction, ground truth) pair of one image.

    Args:
        pred_masks: bool [H, W, P]; gt_masks: bool [H, W, G].
        pred_match: [P] index of the ground truth each prediction matched, or -1
            (e.g. the second value of utils.match_by_overlaps).
    Returns:
        float64 [M], one score per matched prediction, in prediction order.
    """
    pred_match = np.asarray(pred_match)
    scores = [boundary_f_score(pred_masks[..., i], gt_masks[..., int(j)], tolerance)
              for i, j in enumerate(pred_match) if j > -1]
    return np.asarray(scores, dtype=np.float64)

"""Matching and average precision of mrcnn.utils."""
import numpy as np
import pytest

from mrcnn import utils

SHAPE = (40, 40)


def _instances(boxes, shape=SHAPE):
    """Rectangle masks [H, W, N] and their boxes [N, 4] from (y1, x1, y2, x2)."""
    boxes = np.array(boxes, dtype=np.int32).reshape(-1, 4)
    masks = np.zeros(shape + (len(boxes),), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return boxes, masks


GT_BOXES = [(0, 0, 10, 10), (20, 20, 30, 30)]


def _ap(gt, gt_ids, pred, pred_ids, scores, **kwargs):
    gt_boxes, gt_masks = _instances(gt)
    pred_boxes, pred_masks = _instances(pred)
    return utils.compute_ap(gt_boxes, np.array(gt_ids), gt_masks,
                            pred_boxes, np.array(pred_ids), np.array(scores),
                            pred_masks, **kwargs)


def test_perfect_detections():
    ap, precisions, recalls, overlaps = _ap(GT_BOXES, [1, 2], GT_BOXES, [1, 2], [0.9, 0.8])
    assert ap == 1.0
    np.testing.assert_allclose(recalls, [0, 0.5, 1, 1])
    np.testing.assert_allclose(precisions, [1, 1, 1, 0])
    np.testing.assert_allclose(overlaps, np.eye(2))


def test_one_of_two_objects_missed():
    # precision 1 at recall 0.5, nothing beyond: AP = 0.5 * 1 + 0.5 * 0
    ap, precisions, recalls, _ = _ap(GT_BOXES, [1, 2], GT_BOXES[:1], [1], [0.9])
    assert ap == pytest.approx(0.5)
    np.testing.assert_allclose(recalls, [0, 0.5, 1])
    np.testing.assert_allclose(precisions, [1, 1, 0])


def test_duplicate_detection():
    # In score order: hit g0, duplicate of g0 (a false positive), hit g1.
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; envelope 1, 2/3, 2/3.
    # AP = 0.5 * 1 + 0.5 * 2/3.
    pred = [GT_BOXES[1], GT_BOXES[0], GT_BOXES[0]]
    ap, precisions, recalls, _ = _ap(GT_BOXES, [1, 1], pred, [1, 1, 1], [0.7, 0.9, 0.8])
    assert ap == pytest.approx(0.5 + 0.5 * 2 / 3)
    np.testing.assert_allclose(precisions, [1, 1, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(recalls, [0, 0.5, 0.5, 1, 1])


def test_wrong_class_detection():
    ap, *_ = _ap(GT_BOXES[:1], [1], GT_BOXES[:1], [2], [0.9])
    assert ap == 0.0
    # a wrong-class detection ranked above a right one is a false positive
    ap, precisions, _, _ = _ap(GT_BOXES[:1], [1], GT_BOXES[:1] * 2, [2, 1], [0.9, 0.8])
    assert ap == pytest.approx(0.5)


def test_match_skips_a_better_overlapping_gt_of_another_class():
    gt = [(0, 0, 10, 10), (0, 0, 10, 8)]        # class 1, class 2 (IoU 0.8)
    pred = [(0, 0, 10, 10)]                     # class 2: IoU 1 with gt 0
    gt_boxes, gt_masks = _instances(gt)
    pred_boxes, pred_masks = _instances(pred)
    gt_match, pred_match, overlaps = utils.compute_matches(
        gt_boxes, np.array([1, 2]), gt_masks,
        pred_boxes, np.array([2]), np.array([0.9]), pred_masks)
    np.testing.assert_allclose(overlaps, [[1.0, 0.8]])
    assert pred_match.tolist() == [1] and gt_match.tolist() == [-1, 0]
    # above the IoU threshold there is no match at all
    gt_match, pred_match, _ = utils.compute_matches(
        gt_boxes, np.array([1, 2]), gt_masks,
        pred_boxes, np.array([2]), np.array([0.9]), pred_masks, iou_threshold=0.85)
    assert pred_match.tolist() == [-1] and gt_match.tolist() == [-1, -1]


def test_zero_padding_rows_are_ignored():
    gt_boxes, gt_masks = _instances(GT_BOXES)
    pad_boxes = np.concatenate([gt_boxes, np.zeros((3, 4), np.int32)])
    pad_masks = np.concatenate([gt_masks, np.zeros(SHAPE + (3,), bool)], axis=-1)
    gt_match, pred_match, overlaps = utils.compute_matches(
        pad_boxes, np.array([1, 1, 0, 0, 0]), pad_masks,
        pad_boxes, np.array([1, 1, 0, 0, 0]), np.array([0.8, 0.9, 0, 0, 0]), pad_masks)
    assert overlaps.shape == (2, 2)
    # predictions in score order: the 0.9 one (gt 1) first
    assert pred_match.tolist() == [1, 0] and gt_match.tolist() == [1, 0]


def test_compute_ap_range_known_iou(capsys):
    # prediction 8 x 9 inside a 10 x 10 ground truth: IoU 72 / 100 = 0.72,
    # a hit at thresholds 0.50 ... 0.70 and a miss at 0.75 ... 0.95.
    gt_boxes, gt_masks = _instances([(0, 0, 10, 10)])
    pred_boxes, pred_masks = _instances([(1, 0, 9, 9)])
    args = (gt_boxes, np.array([1]), gt_masks,
            pred_boxes, np.array([1]), np.array([0.9]), pred_masks)
    assert utils.compute_ap(*args)[3][0, 0] == pytest.approx(0.72)
    assert utils.compute_ap_range(*args, verbose=0) == pytest.approx(0.5)
    assert capsys.readouterr().out == ""
    assert utils.compute_ap_range(*args, iou_thresholds=[0.7, 0.75, 0.8],
                                  verbose=1) == pytest.approx(1 / 3)
    printed = capsys.readouterr().out
    assert "AP @0.70:\t 1.000" in printed and "AP @0.70-0.80:\t 0.333" in printed


# ---------------------------------------------------- independent reference

def _matches_reference(gt_ids, gt_masks, pred_ids, scores, pred_masks, iou_threshold):
    """Greedy matching written as loops: score order, then IoU order."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    ious = np.zeros((len(order), gt_masks.shape[-1]))
    for a, i in enumerate(order):
        for j in range(gt_masks.shape[-1]):
            inter = np.logical_and(pred_masks[..., i], gt_masks[..., j]).sum()
            union = np.logical_or(pred_masks[..., i], gt_masks[..., j]).sum()
            ious[a, j] = inter / union if union else 0.0
    gt_match = [-1] * gt_masks.shape[-1]
    pred_match = [-1] * len(order)
    for a, i in enumerate(order):
        for j in sorted(range(len(gt_match)), key=lambda j: -ious[a, j]):
            if ious[a, j] < iou_threshold:
                break
            if gt_match[j] == -1 and gt_ids[j] == pred_ids[i]:
                gt_match[j], pred_match[a] = a, j
                break
    return gt_match, pred_match


def _ap_reference(pred_match, n_gt):
    """AP as the area under the precision envelope, summed point by point."""
    tp = 0
    points = []
    for k, m in enumerate(pred_match):
        tp += m > -1
        points.append((tp / n_gt, tp / (k + 1)))
    ap, previous_recall = 0.0, 0.0
    for recall, _ in points:
        if recall > previous_recall:
            best = max(p for r, p in points if r >= recall)
            ap += (recall - previous_recall) * best
            previous_recall = recall
    return ap


def _random_image_case(rng):
    n_gt, n_pred = rng.integers(1, 6), rng.integers(0, 8)
    def boxes(n):
        yx = rng.integers(0, 30, (n, 2))
        hw = rng.integers(4, 12, (n, 2))
        return np.concatenate([yx, np.minimum(yx + hw, 40)], axis=1)
    gt = boxes(n_gt)
    # predictions: jittered copies of ground truth plus some random boxes
    pred = gt[rng.integers(0, n_gt, n_pred)] + rng.integers(-2, 3, (n_pred, 4))
    pred = np.clip(pred, 0, 40)
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
    random_rows = rng.uniform(size=n_pred) < 0.3
    pred[random_rows] = boxes(int(random_rows.sum()))
    gt_ids = rng.integers(1, 3, n_gt)
    pred_ids = rng.integers(1, 3, n_pred)
    scores = rng.permutation(n_pred) / 10 + 0.05    # distinct scores
    return gt, gt_ids, pred, pred_ids, scores


@pytest.mark.parametrize("seed", range(20))
def test_matches_and_ap_against_loop_reference(seed):
    rng = np.random.default_rng(seed)
    gt, gt_ids, pred, pred_ids, scores = _random_image_case(rng)
    gt_boxes, gt_masks = _instances(gt)
    pred_boxes, pred_masks = _instances(pred)
    gt_match, pred_match, _ = utils.compute_matches(
        gt_boxes, gt_ids, gt_masks, pred_boxes, pred_ids, scores, pred_masks)
    ref_gt, ref_pred = _matches_reference(gt_ids, gt_masks, pred_ids, scores,
                                          pred_masks, 0.5)
    assert gt_match.tolist() == ref_gt
    assert pred_match.tolist() == ref_pred
    ap = utils.compute_ap(gt_boxes, gt_ids, gt_masks,
                          pred_boxes, pred_ids, scores, pred_masks)[0]
    assert ap == pytest.approx(_ap_reference(ref_pred, len(gt)))


def test_average_precision_from_hits_by_hand():
    # 3 GT; ranked hits T F T F -> precisions 1, 1/2, 2/3, 1/2; envelope at the hits:
    # 1 and 2/3 -> (1 + 2/3) / 3.
    ap, precisions, recalls = utils.average_precision_from_hits([True, False, True, False], 3)
    assert ap == pytest.approx(5 / 9)
    np.testing.assert_allclose(recalls, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1], rtol=1e-6)
    np.testing.assert_allclose(precisions, [1, 1, 2 / 3, 2 / 3, 0.5, 0], rtol=1e-6)
    assert utils.average_precision_from_hits([], 2)[0] == 0.0
    assert np.isnan(utils.average_precision_from_hits([False], 0)[0])


def _match_reference(overlaps, gt_ids, pred_ids, iou_threshold):
    """Greedy matching on an IoU matrix written as loops, predictions in row order."""
    gt_match = [-1] * len(gt_ids)
    pred_match = [-1] * len(pred_ids)
    for i in range(len(pred_ids)):
        for j in sorted(range(len(gt_ids)), key=lambda j: (-overlaps[i][j], j)):
            if overlaps[i][j] < iou_threshold:
                break
            if gt_match[j] == -1 and gt_ids[j] == pred_ids[i]:
                gt_match[j], pred_match[i] = i, j
                break
    return gt_match, pred_match


@pytest.mark.parametrize("seed", range(10))
def test_match_by_overlaps_against_loop_reference(seed):
    rng = np.random.default_rng(100 + seed)
    n_pred, n_gt = rng.integers(0, 8), rng.integers(0, 6)
    # IoUs on a coarse grid so that ties and exact threshold hits occur.
    overlaps = rng.integers(0, 11, (n_pred, n_gt)) / 10
    gt_ids, pred_ids = rng.integers(1, 3, n_gt), rng.integers(1, 3, n_pred)
    for threshold in (0.3, 0.5):
        gt_match, pred_match = utils.match_by_overlaps(overlaps, gt_ids, pred_ids, threshold)
        ref_gt, ref_pred = _match_reference(overlaps.tolist(), gt_ids, pred_ids, threshold)
        assert gt_match.tolist() == ref_gt
        assert pred_match.tolist() == ref_pred

"""mrcnn.agreement: matching one detector's detections against another's, by hand."""
import numpy as np
import pytest

from mrcnn.agreement import detection_agreement, match_detections


def _result(rois, class_ids, masks=None, shape=(20, 20)):
    rois = np.array(rois, dtype=np.int32).reshape(-1, 4)
    result = {"rois": rois, "class_ids": np.array(class_ids, dtype=np.int32),
              "scores": np.ones(len(class_ids), np.float32)}
    if masks is None:
        masks = np.zeros(shape + (len(rois),), bool)
        for i, (y1, x1, y2, x2) in enumerate(rois):
            masks[y1:y2, x1:x2, i] = True
    result["masks"] = masks
    return result


def test_pairs_need_the_same_class_and_the_box_iou():
    reference = _result([[0, 0, 10, 10], [0, 0, 10, 10], [10, 10, 20, 20]], [1, 2, 1])
    # candidate 0: the first box, class 2 -> pairs with reference 1 (class 2), not 0
    # candidate 1: [0, 0, 10, 9] against [0, 0, 10, 10]: IoU 90/100 = 0.9 exactly -> pairs
    # candidate 2: [10, 10, 20, 18]: IoU 80/100 = 0.8 < 0.9 -> no pair
    candidate = _result([[0, 0, 10, 10], [0, 0, 10, 9], [10, 10, 20, 18]], [2, 1, 1])
    pairs = match_detections(reference, candidate, box_iou=0.9)
    assert sorted(map(tuple, pairs)) == [(0, 1), (1, 0)]
    assert tuple(pairs[0]) == (1, 0)            # IoU 1.0 comes before IoU 0.9


def test_each_detection_pairs_once_greedily_by_iou():
    reference = _result([[0, 0, 10, 10]], [1])
    candidate = _result([[0, 0, 10, 9], [0, 0, 10, 10]], [1, 1])   # IoU 0.9 and 1.0
    assert match_detections(reference, candidate, box_iou=0.85).tolist() == [[0, 1]]


def test_agreement_counts_and_mask_ious():
    masks_a = np.zeros((20, 20, 2), bool)
    masks_a[0:10, 0:10, 0] = True
    masks_a[10:20, 10:20, 1] = True
    masks_b = masks_a.copy()
    masks_b[0:10, 0:5, 0] = False                         # 50 of 100 pixels: IoU 0.5
    reference = [_result([[0, 0, 10, 10], [10, 10, 20, 20]], [1, 3], masks_a),
                 _result([], [])]
    candidate = [_result([[0, 0, 10, 10], [10, 10, 20, 20], [0, 10, 5, 20]], [1, 3, 2],
                         masks_b),
                 _result([], [])]
    figures = detection_agreement(reference, candidate)
    assert figures["reference_count"] == 2 and figures["candidate_count"] == 3
    assert figures["matched"] == 2 and figures["matched_fraction"] == 1.0
    assert figures["mask_iou_mean"] == pytest.approx(0.75)   # (0.5 + 1.0) / 2
    assert figures["mask_iou_min"] == pytest.approx(0.5)


def test_empty_references():
    nothing = [_result([], [])]
    assert detection_agreement(nothing, nothing)["matched_fraction"] == 1.0
    assert detection_agreement(nothing, [_result([[0, 0, 5, 5]], [1])])[
        "matched_fraction"] == 0.0
    assert detection_agreement(nothing, nothing)["mask_iou_mean"] is None
    with pytest.raises(ValueError, match="1 reference results but 2 candidate"):
        detection_agreement(nothing, nothing * 2)

"""Dataset-level mAP (upstream's per-image AP and its mean) and the per-class table."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from mrcnn import utils
from mrcnn.dataset import Dataset
from mrcnn.evaluate import COCO_IOU_THRESHOLDS, evaluate_map, ground_truth, per_class_table

SIZE = 64


def rect_mask(y1, x1, y2, x2, size=SIZE):
    mask = np.zeros((size, size), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


class RectDataset(Dataset):
    """Images of rectangles; image k is filled with the value k so a fake model knows it."""

    def __init__(self, specs):
        super().__init__()
        self.add_class("rect", 1, "one")
        self.add_class("rect", 2, "two")
        for k, instances in enumerate(specs):
            self.add_image("rect", image_id=k, path=None, instances=instances)
        self.prepare()

    def load_image(self, image_id):
        return np.full((SIZE, SIZE, 3), image_id, dtype=np.uint8)

    def load_mask(self, image_id):
        instances = self.image_info[image_id]["instances"]
        masks = np.zeros((SIZE, SIZE, len(instances)), dtype=bool)
        for i, (_, box) in enumerate(instances):
            masks[..., i] = rect_mask(*box)
        class_ids = np.array([c for c, _ in instances], dtype=np.int32)
        return masks, class_ids


def make_result(detections):
    """detections: list of (class_id, score, box) -> a detect() result dict."""
    masks = np.zeros((SIZE, SIZE, len(detections)), dtype=bool)
    for i, (_, _, box) in enumerate(detections):
        masks[..., i] = rect_mask(*box)
    return {"rois": np.array([d[2] for d in detections], dtype=np.int32).reshape(-1, 4),
            "class_ids": np.array([d[0] for d in detections], dtype=np.int32),
            "scores": np.array([d[1] for d in detections], dtype=np.float32),
            "masks": masks}


class FakeModel:
    """detect() returns fixed results, found by the value the image is filled with."""

    def __init__(self, results, batch_size=2):
        self.results = results
        self.config = SimpleNamespace(BATCH_SIZE=batch_size)
        self.calls = []

    def detect(self, images, verbose=0):
        self.calls.append(len(images))
        return [self.results[int(image[0, 0, 0])] for image in images]


# Image 0: one GT found exactly. Image 1: a class-2 detection of mask IoU 0.6, a false
# class-1 detection, then an exact class-1 detection. Image 2: no GT, one detection.
SPECS = [
    [(1, (10, 10, 30, 30))],
    [(1, (0, 0, 20, 20)), (2, (30, 30, 50, 50))],
    [],
]
RESULTS = [
    make_result([(1, 0.9, (10, 10, 30, 30))]),
    make_result([(2, 0.95, (30, 30, 50, 42)),     # 240 / 400 = IoU 0.6
                 (1, 0.8, (40, 0, 60, 20)),       # no overlap: false positive
                 (1, 0.7, (0, 0, 20, 20))]),      # exact
    make_result([(1, 0.85, (5, 5, 15, 15))]),
]


@pytest.fixture
def hand_case():
    return RectDataset(SPECS), FakeModel(RESULTS, batch_size=2)


def test_map_equals_hand_worked_values(hand_case):
    dataset, model = hand_case
    result = evaluate_map(model, dataset, iou_thresholds=(0.5, 0.75))
    # Image 1 at 0.5: hits T, F, T of 2 GT -> precisions 1, 1/2, 2/3 -> envelope at the
    # hits 1 and 2/3 -> AP = (1 + 2/3) / 2 = 5/6. At 0.75 only the third is a hit:
    # AP = (1/3) / 2 = 1/6. Image 2 has no GT: NaN, left out of the mean.
    assert result["per_image"][0.5][:2] == pytest.approx([1.0, 5 / 6])
    assert result["per_image"][0.75][:2] == pytest.approx([1.0, 1 / 6])
    assert math.isnan(result["per_image"][0.5][2])
    assert result["mAP"][0.5] == pytest.approx(11 / 12)
    assert result["mAP"][0.75] == pytest.approx(7 / 12)
    assert result["mAP_range"] == pytest.approx((11 / 12 + 7 / 12) / 2)
    assert result["image_ids"] == [0, 1, 2]
    assert model.calls == [2, 1]


def test_image_with_neither_ground_truth_nor_detections_stays_out_of_the_mean():
    # utils.compute_ap gives 0 for such an image (as upstream); averaging that 0 in
    # would lower the mAP for an image that holds nothing to find.
    dataset = RectDataset([SPECS[0], []])
    model = FakeModel([RESULTS[0], make_result([])])
    result = evaluate_map(model, dataset)
    assert result["per_image"][0.5][0] == 1.0 and math.isnan(result["per_image"][0.5][1])
    assert result["mAP"][0.5] == 1.0


def test_per_image_ap_equals_utils_compute_ap(hand_case):
    dataset, model = hand_case
    result = evaluate_map(model, dataset, iou_thresholds=(0.5, 0.75))
    for image_id in (0, 1):
        gt_boxes, gt_class_ids, gt_masks = ground_truth(dataset, image_id)
        r = RESULTS[image_id]
        for threshold in (0.5, 0.75):
            ap, _, _, _ = utils.compute_ap(gt_boxes, gt_class_ids, gt_masks, r["rois"],
                                           r["class_ids"], r["scores"], r["masks"],
                                           iou_threshold=threshold)
            assert result["per_image"][threshold][image_id] == pytest.approx(ap, abs=1e-6)


def test_per_class_ap_pools_detections_over_images(hand_case):
    dataset, model = hand_case
    result = evaluate_map(model, dataset, iou_thresholds=(0.5, 0.75))
    # Class 1 (2 GT), ranked over the dataset: 0.9 T, 0.85 F, 0.8 F, 0.7 T
    # -> precisions 1, 1/2, 1/3, 1/2 -> envelope at the hits 1 and 1/2 -> AP 3/4.
    assert result["per_class"][0.5][1] == pytest.approx(0.75)
    assert result["per_class"][0.75][1] == pytest.approx(0.75)
    # Class 2 (1 GT): one detection of IoU 0.6.
    assert result["per_class"][0.5][2] == pytest.approx(1.0)
    assert result["per_class"][0.75][2] == pytest.approx(0.0)
    assert result["gt_count"] == {1: 2, 2: 1}
    assert result["detection_count"] == {1: 4, 2: 1}


def test_per_class_table_rows(hand_case):
    dataset, model = hand_case
    result = evaluate_map(model, dataset, iou_thresholds=(0.5, 0.75))
    rows = per_class_table(result, dataset.class_names)
    assert rows == [
        ["class", "instances", "detections", "AP@0.50", "AP@0.75", "AP@[0.50:0.75]"],
        ["one", 2, 4, "0.750", "0.750", "0.750"],
        ["two", 1, 1, "1.000", "0.000", "0.500"],
        ["mean", 3, 5, "0.875", "0.375", "0.625"],
    ]


def test_default_threshold_and_progress_bar(hand_case, capsys):
    dataset, model = hand_case
    result = evaluate_map(model, dataset, image_ids=[1, 0], batch_size=1, verbose=1)
    assert list(result["mAP"]) == [0.5]
    assert result["per_image"][0.5] == pytest.approx([5 / 6, 1.0])
    assert model.calls == [1, 1]
    assert "2/2" in capsys.readouterr().out


def test_crowd_instances_are_not_ground_truth():
    dataset = RectDataset([[(1, (10, 10, 30, 30)), (-2, (40, 40, 60, 60))]])
    boxes, class_ids, masks = ground_truth(dataset, 0)
    assert class_ids.tolist() == [1]
    assert boxes.tolist() == [[10, 10, 30, 30]]
    assert masks.shape == (SIZE, SIZE, 1)


def test_coco_thresholds():
    assert COCO_IOU_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)

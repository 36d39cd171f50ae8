"""COCO metrics through pycocotools: hand-worked cases and pycocotools run directly."""
import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.coco_eval import (METRIC_NAMES, box_to_xywh, coco_metrics, dataset_to_coco,
                             detections_to_coco, encode_mask, evaluate_coco_metrics)
from mrcnn.shapes import ShapesDataset

from test_evaluate import FakeModel, RectDataset, make_result

BOTH = ("bbox", "segm")


def _metrics(specs, results):
    dataset = RectDataset(specs)
    return evaluate_coco_metrics(FakeModel(results), dataset)


def test_one_perfect_detection_scores_one():
    # A 20x20 square: area 400 < 32^2, a "small" object.
    metrics = _metrics([[(1, (10, 10, 30, 30))]], [make_result([(1, 0.9, (10, 10, 30, 30))])])
    for iou_type in BOTH:
        m = metrics[iou_type]
        assert m["AP"] == pytest.approx(1.0)
        assert m["AP50"] == pytest.approx(1.0)
        assert m["AP75"] == pytest.approx(1.0)
        assert m["APs"] == pytest.approx(1.0)
        assert m["APm"] == -1 and m["APl"] == -1          # no GT of those sizes
        assert m["AR1"] == pytest.approx(1.0)
        assert m["AR100"] == pytest.approx(1.0)


def test_two_gt_one_found_is_recall_limited():
    # Precision 1 up to recall 0.5, nothing beyond: 101-point interpolation counts the
    # recall thresholds 0.00, 0.01, ..., 0.50 -> 51 of 101.
    specs = [[(1, (10, 10, 30, 30)), (1, (35, 35, 60, 60))]]
    metrics = _metrics(specs, [make_result([(1, 0.9, (10, 10, 30, 30))])])
    for iou_type in BOTH:
        assert metrics[iou_type]["AP"] == pytest.approx(51 / 101)
        assert metrics[iou_type]["AP50"] == pytest.approx(51 / 101)
        assert metrics[iou_type]["AR1"] == pytest.approx(0.5)
        assert metrics[iou_type]["AR100"] == pytest.approx(0.5)


def test_false_positive_between_two_hits():
    # Ranked T (0.9), F (0.8), T (0.7) of 2 GT: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    # Interpolated: 1 for recall <= 0.5 (51 thresholds), 2/3 above (50 thresholds).
    specs = [[(1, (10, 10, 30, 30)), (1, (35, 35, 60, 60))]]
    results = [make_result([(1, 0.9, (10, 10, 30, 30)), (1, 0.8, (40, 0, 60, 20)),
                            (1, 0.7, (35, 35, 60, 60))])]
    metrics = _metrics(specs, results)
    for iou_type in BOTH:
        assert metrics[iou_type]["AP"] == pytest.approx((51 + 50 * 2 / 3) / 101)
        assert metrics[iou_type]["AR1"] == pytest.approx(0.5)
        assert metrics[iou_type]["AR10"] == pytest.approx(1.0)


def test_detection_on_a_crowd_region_is_ignored():
    specs = [[(1, (10, 10, 30, 30)), (-1, (35, 0, 64, 64))]]
    results = [make_result([(1, 0.9, (10, 10, 30, 30)), (1, 0.95, (40, 10, 55, 40))])]
    metrics = _metrics(specs, results)
    for iou_type in BOTH:
        assert metrics[iou_type]["AP"] == pytest.approx(1.0)


def test_no_detections_give_zero():
    metrics = _metrics([[(1, (10, 10, 30, 30))]], [make_result([])])
    for iou_type in BOTH:
        assert metrics[iou_type]["AP"] == 0.0
        assert metrics[iou_type]["AR100"] == 0.0


def test_encoding_helpers():
    mask = np.zeros((6, 5), dtype=bool)
    mask[1:4, 2:5] = True
    rle = encode_mask(mask)
    assert rle["size"] == [6, 5]
    np.testing.assert_array_equal(mask_utils.decode(rle), mask.astype(np.uint8))
    assert list(mask_utils.toBbox(rle)) == box_to_xywh((1, 2, 4, 5)) == [2.0, 1.0, 3.0, 3.0]
    result = make_result([(2, 0.5, (1, 2, 4, 5))])
    coco = detections_to_coco(7, result, category_of=lambda c: int(c) * 10)
    assert coco[0]["image_id"] == 7 and coco[0]["category_id"] == 20
    assert coco[0]["bbox"] == [2.0, 1.0, 3.0, 3.0] and coco[0]["score"] == 0.5


def test_results_and_ground_truth_round_trip_through_json(tmp_path):
    # numpy ids, as a loop over dataset.image_ids and detect()'s class_ids gives them
    dataset = RectDataset([[(1, (10, 10, 30, 30)), (2, (35, 35, 60, 60))]])
    result = make_result([(1, 0.9, (10, 10, 30, 30)), (2, 0.8, (35, 35, 60, 60))])
    results = detections_to_coco(np.int64(0), result)
    text = json.dumps(results)
    coco_gt = dataset_to_coco(dataset)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(coco_gt.dataset))
    with contextlib.redirect_stdout(io.StringIO()):
        reloaded_gt = COCO(str(gt_path))
        loaded = reloaded_gt.loadRes(json.loads(text))
    assert isinstance(results[0]["segmentation"]["counts"], str)
    for i, detection in enumerate(loaded.loadAnns(sorted(loaded.getAnnIds()))):
        assert detection["image_id"] == 0 and detection["category_id"] == i + 1
        np.testing.assert_array_equal(mask_utils.decode(detection["segmentation"]),
                                      result["masks"][..., i])
    # 20x20 and 25x25 squares found exactly: AP 1 for boxes and masks
    for iou_type in BOTH:
        assert coco_metrics(reloaded_gt, json.loads(text), iou_type)["AP"] == pytest.approx(1.0)


# --- Against pycocotools run directly ----------------------------------------------------

def _shapes_case(seed=3):
    """Shapes ground truth and noisy detections: shifted copies, misses, false positives."""
    dataset = ShapesDataset()
    dataset.load_shapes(6, 96, 96, seed=seed)
    dataset.prepare()
    rng = np.random.RandomState(seed)
    results = []
    for image_id in dataset.image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        detections_masks, detection_ids = [], []
        for i in range(masks.shape[-1]):
            if rng.rand() < 0.2:
                continue                                     # a miss
            dy, dx = rng.randint(-3, 4, size=2)
            detections_masks.append(np.roll(masks[..., i], (dy, dx), axis=(0, 1)))
            label = class_ids[i] if rng.rand() < 0.85 else rng.randint(1, 4)
            detection_ids.append(label)
        for _ in range(rng.randint(0, 3)):                  # false positives
            y, x = rng.randint(0, 80, size=2)
            fp = np.zeros((96, 96), dtype=bool)
            fp[y:y + rng.randint(4, 16), x:x + rng.randint(4, 16)] = True
            detections_masks.append(fp)
            detection_ids.append(rng.randint(1, 4))
        stacked = (np.stack(detections_masks, axis=-1) if detections_masks
                   else np.zeros((96, 96, 0), dtype=bool))
        boxes = np.array([_box(stacked[..., i]) for i in range(stacked.shape[-1])],
                         dtype=np.int32).reshape(-1, 4)
        results.append({"rois": boxes, "class_ids": np.array(detection_ids, dtype=np.int32),
                        "scores": rng.rand(len(detection_ids)).astype(np.float32),
                        "masks": stacked})
    return dataset, results


def _box(mask):
    ys, xs = np.where(mask)
    return ys.min(), xs.min(), ys.max() + 1, xs.max() + 1


def _reference_stats(dataset, results, iou_type):
    """pycocotools alone: ground truth and detections written out here."""
    images, annotations, detections = [], [], []
    for image_id, result in zip(dataset.image_ids, results):
        masks, class_ids = dataset.load_mask(image_id)
        images.append({"id": int(image_id), "height": 96, "width": 96})
        for i in range(masks.shape[-1]):
            rle = mask_utils.encode(np.asfortranarray(masks[..., i].astype(np.uint8)))
            y1, x1, y2, x2 = _box(masks[..., i])
            annotations.append({"id": len(annotations) + 1, "image_id": int(image_id),
                                "category_id": int(class_ids[i]), "iscrowd": 0,
                                "segmentation": rle, "area": float(masks[..., i].sum()),
                                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]})
        for i in range(len(result["scores"])):
            detection = {"image_id": int(image_id), "category_id": int(result["class_ids"][i]),
                         "score": float(result["scores"][i])}
            if iou_type == "segm":
                detection["segmentation"] = mask_utils.encode(
                    np.asfortranarray(result["masks"][..., i].astype(np.uint8)))
            else:
                y1, x1, y2, x2 = result["rois"][i]
                detection["bbox"] = [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]
            detections.append(detection)
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": c} for c in (1, 2, 3)]}
    gt.createIndex()
    evaluator = COCOeval(gt, gt.loadRes(detections), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("iou_type", BOTH)
def test_metrics_equal_pycocotools_run_directly(iou_type):
    dataset, results = _shapes_case()
    model = FakeModel(results)
    # FakeModel finds a result by the image's first pixel: give each image its own value.
    dataset.load_image = lambda image_id: np.full((96, 96, 3), image_id, dtype=np.uint8)
    ours = evaluate_coco_metrics(model, dataset, iou_types=(iou_type,))[iou_type]
    reference = _reference_stats(dataset, results, iou_type)
    assert 0.1 < ours["AP"] < 0.95                            # a case that is not trivial
    np.testing.assert_allclose([ours[name] for name in METRIC_NAMES], reference, atol=1e-12)


def test_coco_metrics_on_given_ground_truth_and_image_subset():
    dataset = RectDataset([[(1, (10, 10, 30, 30))], [(2, (0, 0, 20, 20))]])
    coco_gt = dataset_to_coco(dataset)
    assert sorted(coco_gt.getImgIds()) == [0, 1]
    assert [c["name"] for c in coco_gt.loadCats(coco_gt.getCatIds())] == ["one", "two"]
    results = detections_to_coco(0, make_result([(1, 0.9, (10, 10, 30, 30))]))
    # Image 1's ground truth is not found: AP averages class 1 (1.0) and class 2 (0.0)...
    assert coco_metrics(coco_gt, results, "segm")["AP"] == pytest.approx(0.5)
    # ... unless only image 0 is evaluated (class 2 then has no GT and no detection).
    assert coco_metrics(coco_gt, results, "segm", image_ids=[0])["AP"] == pytest.approx(1.0)


def _without_masks(result):
    """A keypoint-only model's detect() dict: no "masks"."""
    return {k: v for k, v in result.items() if k != "masks"}


def test_detections_without_masks_have_no_segmentation_and_score_as_boxes():
    # Two GT squares of image 0: (10, 10)-(30, 30) and (35, 35)-(60, 60). Detections: the
    # first exactly (0.9) and the second shifted 5 px right, box IoU 20*25 / (2*625 -
    # 500) = 2/3 (0.8): a hit at IoU 0.50..0.65 (4 of the 10 thresholds), a miss above.
    dataset = RectDataset([[(1, (10, 10, 30, 30)), (1, (35, 35, 60, 60))]])
    result = _without_masks(make_result([(1, 0.9, (10, 10, 30, 30)),
                                         (1, 0.8, (35, 40, 60, 65))]))
    listed = detections_to_coco(0, result)
    assert listed == [
        {"image_id": 0, "category_id": 1, "bbox": [10.0, 10.0, 20.0, 20.0],
         "score": pytest.approx(0.9)},
        {"image_id": 0, "category_id": 1, "bbox": [40.0, 35.0, 25.0, 25.0],
         "score": pytest.approx(0.8)}]
    json.dumps(listed)
    coco_gt = dataset_to_coco(dataset)
    box = coco_metrics(coco_gt, listed, "bbox")
    # Recall 1 at IoU 0.50..0.65 (precision 1 throughout), 0.5 above: 101-point AP is
    # 1 at 4 thresholds and 51/101 at 6.
    assert box["AP"] == pytest.approx((4 + 6 * 51 / 101) / 10)
    assert box["AP50"] == pytest.approx(1.0) and box["AP75"] == pytest.approx(51 / 101)
    # The same numbers as the masked result's boxes (the masks are rectangles).
    masked = detections_to_coco(0, make_result([(1, 0.9, (10, 10, 30, 30)),
                                                (1, 0.8, (35, 40, 60, 65))]))
    assert coco_metrics(coco_gt, masked, "bbox") == box
    with pytest.raises(ValueError, match="segmentation"):
        coco_metrics(coco_gt, listed, "segm")


def test_evaluate_coco_metrics_of_a_keypoint_only_model_leaves_segm_out():
    from types import SimpleNamespace

    dataset = RectDataset([[(1, (10, 10, 30, 30))]])
    model = FakeModel([_without_masks(make_result([(1, 0.9, (10, 10, 30, 30))]))])
    model.config = SimpleNamespace(BATCH_SIZE=2, NUM_KEYPOINTS=2, KEYPOINT_WITH_MASKS=False)
    metrics = evaluate_coco_metrics(model, dataset)
    assert set(metrics) == {"bbox"}
    assert metrics["bbox"]["AP"] == pytest.approx(1.0)

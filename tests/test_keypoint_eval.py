"""OKS keypoint AP through pycocotools: a hand-worked OKS, the AP it gives, and datasets."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
from pycocotools.cocoeval import COCOeval

from mrcnn import coco_eval, keypoint_eval, keypoints
from mrcnn.keypoint_shapes import SIGMAS, KeypointShapesDataset

# One ground truth of area 100 with three keypoints, the third not labelled; sigmas
# 0.1, 0.2, 0.3. The detection is 5 px off on the first (dx 3, dy 4) and exact on the
# second; its third point is far away but ignored (v = 0).
GT = np.array([[10, 10, 2], [20, 10, 1], [0, 0, 0]], np.float64)
DT = np.array([[13, 14, 0.9], [20, 10, 0.8], [60, 60, 0.1]], np.float64)
AREA = 100.0
THREE_SIGMAS = (0.1, 0.2, 0.3)
# By hand: e_i = d_i² / (2 * area * (2 sigma_i)²): e_1 = 25 / (2 * 100 * 0.04) = 3.125,
# e_2 = 0, so OKS = (exp(-3.125) + 1) / 2.
HAND_OKS = (math.exp(-3.125) + 1) / 2  # 0.52197


def gt_coco(points=(GT,), areas=(AREA,), boxes=((10, 10, 11, 1),)):
    annotations = [{"id": i + 1, "image_id": 0, "category_id": 1, "iscrowd": 0,
                    "keypoints": [float(v) for v in np.ravel(p)],
                    "num_keypoints": int((np.asarray(p)[:, 2] > 0).sum()),
                    "area": float(a), "bbox": list(map(float, b))}
                   for i, (p, a, b) in enumerate(zip(points, areas, boxes))]
    return coco_eval.make_coco({
        "images": [{"id": 0, "height": 100, "width": 100}],
        "categories": [{"id": 1, "name": "thing", "keypoints": ["a", "b", "c"],
                        "skeleton": [[1, 2]]}],
        "annotations": annotations})


def dt_results(*detections):
    return [{"image_id": 0, "category_id": 1, "keypoints": [float(v) for v in np.ravel(p)],
             "score": s} for p, s in detections]


def test_hand_worked_oks_agrees_with_pycocotools():
    assert HAND_OKS == pytest.approx(0.521969, abs=1e-6)
    ours = keypoints.compute_oks(GT, AREA, DT, THREE_SIGMAS)
    assert ours == pytest.approx(HAND_OKS, abs=1e-12)
    _, evaluator = keypoint_eval.keypoint_metrics(gt_coco(), dt_results((DT, 0.9)),
                                                  sigmas=THREE_SIGMAS, return_eval=True)
    np.testing.assert_allclose(evaluator.ious[(0, 1)], [[HAND_OKS]], atol=1e-12)
    # pycocotools' computeOks itself on the same ground truth and detection.
    direct = COCOeval(gt_coco(), keypoint_eval.load_keypoint_results(
        gt_coco(), dt_results((DT, 0.9))), "keypoints")
    direct.params.kpt_oks_sigmas = np.array(THREE_SIGMAS)
    direct._prepare()
    np.testing.assert_allclose(direct.computeOks(0, 1), [[HAND_OKS]], atol=1e-12)


def test_oks_of_0_52_counts_at_threshold_0_5_only():
    # OKS 0.522 matches at the threshold 0.50 and at none of 0.55 .. 0.95:
    # AP50 = 1, AP75 = 0, AP (mean over ten thresholds) = 0.1. Area 100 < 32²: APm = -1.
    metrics = keypoint_eval.keypoint_metrics(gt_coco(), dt_results((DT, 0.9)),
                                             sigmas=THREE_SIGMAS)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP75"] == pytest.approx(0.0)
    assert metrics["AP"] == pytest.approx(0.1)
    assert metrics["APm"] == -1 and metrics["APl"] == -1
    assert set(metrics) == set(keypoint_eval.KEYPOINT_METRIC_NAMES)
    exact = keypoint_eval.keypoint_metrics(gt_coco(), dt_results((GT, 0.9)),
                                           sigmas=THREE_SIGMAS)
    assert exact["AP"] == pytest.approx(1.0)


def test_ground_truth_without_labelled_keypoints_is_ignored():
    # The second instance has no labelled keypoint: a detection on it is neither a hit
    # nor a false positive, so AP stays 1.
    none = np.zeros((3, 3))
    coco = gt_coco(points=(GT, none), areas=(AREA, AREA),
                   boxes=((10, 10, 11, 1), (50, 50, 10, 10)))
    far = np.array([[55, 55, 1], [56, 55, 1], [57, 55, 1]], np.float64)
    metrics = keypoint_eval.keypoint_metrics(coco, dt_results((GT, 0.9), (far, 0.95)),
                                             sigmas=THREE_SIGMAS)
    assert metrics["AP"] == pytest.approx(1.0)


def test_oks_matrix_matches_pycocotools_on_random_cases():
    rng = np.random.default_rng(0)
    gts = rng.uniform(0, 50, (4, 5, 3))
    gts[..., 2] = rng.integers(0, 3, (4, 5))
    gts[0, :, 2] = 2
    dts = gts[rng.integers(0, 4, 6)] + rng.normal(0, 2, (6, 5, 3))
    areas = rng.uniform(50, 400, 4)
    boxes = [(float(g[:, 0].min()), float(g[:, 1].min()), 20.0, 20.0) for g in gts]
    sigmas = rng.uniform(0.05, 0.1, 5)
    coco = coco_eval.make_coco({
        "images": [{"id": 0, "height": 100, "width": 100}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [{"id": j + 1, "image_id": 0, "category_id": 1, "iscrowd": 0,
                         "keypoints": gts[j].ravel().tolist(),
                         "num_keypoints": int((gts[j, :, 2] > 0).sum()),
                         "area": float(areas[j]), "bbox": list(boxes[j])} for j in range(4)]})
    scores = np.linspace(0.9, 0.4, 6)  # pycocotools orders detections by score
    evaluator = COCOeval(coco, keypoint_eval.load_keypoint_results(
        coco, dt_results(*zip(dts, scores))), "keypoints")
    evaluator.params.kpt_oks_sigmas = sigmas
    evaluator._prepare()
    reference = evaluator.computeOks(0, 1)
    ours = keypoints.compute_oks_matrix(gts, areas, dts, sigmas, boxes)
    np.testing.assert_allclose(ours, reference, rtol=1e-12)


def test_sigmas_default_to_coco_person_for_17_keypoints_only():
    np.testing.assert_allclose(keypoints.keypoint_sigmas(17), np.array(
        [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89,
         .89]) / 10)
    with pytest.raises(ValueError, match="give sigmas for your 3 keypoints"):
        keypoints.keypoint_sigmas(3)
    with pytest.raises(ValueError, match="sigmas must be 3 positive numbers"):
        keypoints.keypoint_sigmas(3, (0.1, 0.1))
    with pytest.raises(ValueError, match="give sigmas for your 3 keypoints"):
        keypoint_eval.keypoint_metrics(gt_coco(), dt_results((DT, 0.9)))


class QueueModel:
    """detect() hands out the given results in order (detect_dataset walks images in order)."""

    def __init__(self, results):
        self.results = list(results)
        self.config = SimpleNamespace(BATCH_SIZE=2)

    def detect(self, images, verbose=0):
        out, self.results = self.results[:len(images)], self.results[len(images):]
        return out


def perfect_results(dataset, swap=False):
    results = []
    for image_id in dataset.image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        points = dataset.load_keypoints(image_id).copy()
        if swap:
            points = points[:, [0, 2, 1]]
        points[..., 2] = 1.0  # scores
        results.append({"rois": np.zeros((len(class_ids), 4), np.int32),
                        "class_ids": class_ids, "scores": np.full(len(class_ids), 0.9),
                        "masks": masks, "keypoints": points.astype(np.float32)})
    return results


@pytest.fixture(scope="module")
def triangles():
    dataset = KeypointShapesDataset()
    dataset.load_triangles(6, 64, 64, seed=1)
    dataset.prepare()
    return dataset


def test_dataset_evaluation_exact_keypoints_score_one_and_swapped_sides_do_not(triangles):
    perfect = keypoint_eval.evaluate_keypoint_metrics(
        QueueModel(perfect_results(triangles)), triangles, sigmas=SIGMAS)
    assert perfect["AP"] == pytest.approx(1.0) and perfect["AR"] == pytest.approx(1.0)
    # Left and right corners exchanged: two of three points a base width off, so OKS
    # stays far below 0.5 for every triangle (bases are 16..32 px wide).
    swapped = keypoint_eval.evaluate_keypoint_metrics(
        QueueModel(perfect_results(triangles, swap=True)), triangles, sigmas=SIGMAS)
    assert swapped["AP50"] == pytest.approx(0.0)


def test_evaluate_coco_metrics_adds_keypoints(triangles):
    metrics = coco_eval.evaluate_coco_metrics(
        QueueModel(perfect_results(triangles)), triangles,
        iou_types=("segm", "keypoints"), sigmas=SIGMAS)
    assert metrics["segm"]["AP"] == pytest.approx(1.0)
    assert metrics["keypoints"]["AP"] == pytest.approx(1.0)


def test_ground_truth_dict_layout(triangles):
    coco = keypoint_eval.dataset_to_coco_keypoints(
        triangles, [0], keypoint_names=("apex", "left_corner", "right_corner"),
        skeleton=((0, 1), (1, 2), (2, 0)))
    category = coco.dataset["categories"][0]
    assert category["keypoints"] == ["apex", "left_corner", "right_corner"]
    assert category["skeleton"] == [[1, 2], [2, 3], [3, 1]]
    annotation = coco.dataset["annotations"][0]
    points = triangles.load_keypoints(0)[0]
    assert annotation["keypoints"] == [float(v) for v in points.ravel()]
    assert annotation["num_keypoints"] == int((points[:, 2] > 0).sum())
    masks, _ = triangles.load_mask(0)
    assert annotation["area"] == float(masks[..., 0].sum())
    with pytest.raises(KeyError, match="no 'keypoints'"):
        keypoint_eval.keypoints_to_coco(0, {"class_ids": [1], "scores": [0.5]})

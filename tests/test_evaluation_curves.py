"""Confusion matrix, precision-recall and F1 curves on hand-built detections.

Image A (classes: 0 background, 1 cat, 2 dog), IoU threshold 0.5:
    ground truth g0 cat, g1 dog, g2 cat
    p0 cat 0.9  IoU g0 0.8                 -> true positive (cat, cat)
    p1 cat 0.8  IoU g0 0.6, g1 0.7         -> g0 taken; confuses the dog g1 for a cat
    p2 dog 0.6  no overlap                 -> false positive
    p3 cat 0.3  IoU g2 0.9                 -> true positive, below a 0.5 score threshold
Image B: no ground truth, p0 dog 0.7 -> false positive.
Image C: one cat, no prediction -> missed.
"""
import os

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mrcnn import evaluation_curves as curves  # noqa: E402
from mrcnn import visualize_evaluation  # noqa: E402
from mrcnn.evaluate import evaluate_map  # noqa: E402

NAMES = ["BG", "cat", "dog"]


def image_a():
    overlaps = [[0.8, 0.0, 0.0],
                [0.6, 0.7, 0.0],
                [0.0, 0.0, 0.0],
                [0.0, 0.0, 0.9]]
    # given out of score order on purpose
    order = [2, 0, 3, 1]
    classes, scores = np.array([1, 1, 2, 1]), np.array([0.9, 0.8, 0.6, 0.3])
    return curves.image_record([1, 2, 1], classes[order], scores[order],
                               np.array(overlaps)[order], image_id="A")


def image_b():
    return curves.image_record([], [2], [0.7], np.zeros([1, 0]), image_id="B")


def image_c():
    return curves.image_record([1], [], [], np.zeros([0, 1]), image_id="C")


def test_records_sort_predictions_by_score():
    record = image_a()
    assert record["pred_scores"].tolist() == [0.9, 0.8, 0.6, 0.3]
    assert record["pred_class_ids"].tolist() == [1, 1, 2, 1]
    assert record["overlaps"][1].tolist() == [0.6, 0.7, 0.0]


def test_confusion_matrix_by_hand():
    matrix = curves.confusion_matrix([image_a()], 3, iou_threshold=0.5, score_threshold=0.5)
    # rows: true (0 = false positive), columns: predicted (0 = missed)
    assert matrix.tolist() == [[0, 0, 1],     # p2: a dog where there is none
                               [1, 1, 0],     # g0 found; g2 missed (p3 below 0.5)
                               [0, 1, 0]]     # the dog g1 taken for a cat by p1
    lower = curves.confusion_matrix([image_a()], 3, iou_threshold=0.5, score_threshold=0.2)
    assert lower.tolist() == [[0, 0, 1], [0, 2, 0], [0, 1, 0]]
    strict = curves.confusion_matrix([image_a()], 3, iou_threshold=0.75, score_threshold=0.2)
    # p1 (IoU 0.7) now matches nothing: a cat false positive, and the dog is missed
    assert strict.tolist() == [[0, 1, 1], [0, 2, 0], [1, 0, 0]]
    everything = curves.confusion_matrix([image_a(), image_b(), image_c()], 3)
    assert everything.tolist() == [[0, 0, 2], [2, 1, 0], [0, 1, 0]]
    # each ground truth is counted once in its row
    assert everything[1:].sum() == 3 + 0 + 1


def test_confusion_matrix_rejects_unknown_class_ids():
    record = curves.image_record([3], [1], [0.9], [[0.9]], image_id=7)
    with pytest.raises(ValueError, match="image 7"):
        curves.confusion_matrix([record], 3)


def test_precision_recall_curves_by_hand():
    result = curves.precision_recall_curves([image_a(), image_b(), image_c()])
    cat, dog = result[1], result[2]
    # cats: p0 hit, p1 miss, p3 hit; 3 cats in the ground truth (2 in A, 1 in C)
    assert cat["precision"] == pytest.approx([1.0, 0.5, 2 / 3])
    assert cat["recall"] == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    # all-point AP: 1/3 * 1 + 1/3 * 2/3
    assert cat["ap"] == pytest.approx(1 / 3 + 2 / 9)
    # dogs: p2 (A, 0.6) and B's 0.7 both miss
    assert dog["scores"].tolist() == [0.7, 0.6]
    assert dog["precision"].tolist() == [0.0, 0.0] and dog["ap"] == 0.0
    only_a = curves.precision_recall_curves([image_a()])
    assert only_a[1]["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_f1_by_score_threshold_by_hand():
    result = curves.f1_by_score_threshold([image_a()])
    # kept (score, hit): 0.9 T, 0.8 F, 0.6 F, 0.3 T; 3 ground truths
    assert result["thresholds"].tolist() == [0.3, 0.6, 0.8, 0.9]
    assert result["precision"] == pytest.approx([0.5, 1 / 3, 0.5, 1.0])
    assert result["recall"] == pytest.approx([2 / 3, 1 / 3, 1 / 3, 1 / 3])
    assert result["f1"] == pytest.approx([4 / 7, 1 / 3, 0.4, 0.5])
    assert result["best_threshold"] == 0.3 and result["best_f1"] == pytest.approx(4 / 7)
    cats = curves.f1_by_score_threshold([image_a()], class_id=1)
    # cats only: 0.9 T, 0.8 F, 0.3 T; 2 cats
    assert cats["f1"] == pytest.approx([0.8, 0.5, 2 / 3])
    assert cats["best_threshold"] == 0.3
    grid = curves.f1_by_score_threshold([image_a()], thresholds=[0.85, 0.95])
    assert grid["precision"].tolist() == [1.0, 1.0] and grid["f1"] == pytest.approx([0.5, 0])
    empty = curves.f1_by_score_threshold([])
    assert empty["thresholds"].size == 0 and np.isnan(empty["best_f1"])


class _Dataset:
    """Two 8x8 images with square instances."""

    image_ids = [0, 1]
    num_classes = 3

    def __init__(self):
        self.masks = {0: (self._squares([(0, 0, 4, 4), (4, 4, 8, 8)]), np.array([1, 2])),
                      1: (self._squares([(0, 4, 4, 8)]), np.array([1]))}

    @staticmethod
    def _squares(boxes):
        masks = np.zeros([8, 8, len(boxes)], bool)
        for i, (y1, x1, y2, x2) in enumerate(boxes):
            masks[y1:y2, x1:x2, i] = True
        return masks

    def load_image(self, image_id):
        return np.full([8, 8, 3], image_id, np.uint8)

    def load_mask(self, image_id):
        return self.masks[image_id]


class _Model:
    """Detections per image: image 0 finds the cat exactly and calls half of the dog a
    cat; image 1 finds its cat shifted by one column (IoU 12/20)."""

    class config:
        BATCH_SIZE = 2

    def __init__(self, dataset):
        self.dataset = dataset

    def detect(self, images, verbose=0):
        results = []
        for image in images:
            image_id = int(image[0, 0, 0])
            gt = self.dataset.masks[image_id][0]
            if image_id == 0:
                half = np.zeros([8, 8], bool)
                half[4:8, 4:6] = True
                masks = np.stack([half, gt[..., 0]], -1)
                results.append({"class_ids": np.array([1, 1]), "scores": np.array([0.6, 0.9]),
                                "masks": masks, "rois": np.zeros([2, 4])})
            else:
                shifted = np.roll(gt[..., 0], -1, axis=1)
                results.append({"class_ids": np.array([1]), "scores": np.array([0.8]),
                                "masks": shifted[..., None], "rois": np.zeros([1, 4])})
        return results


def test_collect_records_uses_mask_iou_and_agrees_with_evaluate_map():
    dataset = _Dataset()
    model = _Model(dataset)
    records = curves.collect_records(model, dataset)
    assert [r["image_id"] for r in records] == [0, 1]
    assert records[0]["pred_scores"].tolist() == [0.9, 0.6]
    assert records[0]["overlaps"] == pytest.approx(np.array([[1.0, 0.0], [0.0, 0.5]]))
    assert records[1]["overlaps"] == pytest.approx(np.array([[12 / 20]]))
    matrix = curves.confusion_matrix(records, 3, iou_threshold=0.5, score_threshold=0.5)
    assert matrix.tolist() == [[0, 0, 0], [0, 2, 0], [0, 1, 0]]
    pr = curves.precision_recall_curves(records, iou_threshold=0.5)
    reference = evaluate_map(model, dataset, iou_thresholds=(0.5,))["per_class"][0.5]
    assert {c: v["ap"] for c, v in pr.items()} == pytest.approx(reference, nan_ok=True)


def test_pictures_are_written_headless(tmp_path):
    records = [image_a(), image_b(), image_c()]
    matrix_path = str(tmp_path / "confusion.png")
    ax = visualize_evaluation.plot_confusion_matrix(
        curves.confusion_matrix(records, 3), NAMES, save_path=matrix_path)
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["0", "2", "2", "1", "0", "0", "1", "0"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["missed", "cat", "dog"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["false positive", "cat", "dog"]
    normalised = visualize_evaluation.plot_confusion_matrix(
        curves.confusion_matrix(records, 3), NAMES, normalize=True)
    assert "0.67" in [t.get_text() for t in normalised.texts]     # 2 of 3 cats missed
    pr_path = str(tmp_path / "pr.png")
    ax = visualize_evaluation.plot_precision_recall_curves(
        curves.precision_recall_curves(records), NAMES, save_path=pr_path)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["cat (AP 0.556)", "dog (AP 0.000)"]
    f1_path = str(tmp_path / "f1.png")
    ax = visualize_evaluation.plot_f1_by_threshold(curves.f1_by_score_threshold([image_a()]),
                                                   save_path=f1_path)
    marker = [line for line in ax.get_lines() if line.get_marker() == "o"][0]
    assert marker.get_xdata()[0] == 0.3 and marker.get_ydata()[0] == pytest.approx(4 / 7)
    assert "best F1 0.571 at score 0.30" in [t.get_text() for t in ax.get_legend().get_texts()]
    for path in (matrix_path, pr_path, f1_path):
        assert os.path.getsize(path) > 1000


def test_reachable_from_evaluate_and_visualize():
    from mrcnn import evaluate, visualize

    assert evaluate.confusion_matrix is curves.confusion_matrix
    assert evaluate.f1_by_score_threshold is curves.f1_by_score_threshold
    assert visualize.plot_f1_by_threshold is visualize_evaluation.plot_f1_by_threshold
    with pytest.raises(AttributeError, match="no_such_picture"):
        visualize.no_such_picture

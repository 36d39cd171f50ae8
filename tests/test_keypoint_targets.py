"""Keypoint targets: the heatmap grid of an ROI per ROI_ALIGN_MODE, the cell of each
keypoint against a numpy reference, clipping to the ROI, ignored keypoints, and the
ROI sampler's match of positive ROIs to their ground-truth rows."""
import math

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.image_meta import compose_image_meta
from mrcnn.nn import box_ops
from mrcnn.nn.keypoint_targets import (KeypointTargetLayer, encode_keypoints, heatmap_boxes,
                                       keypoint_targets)
from mrcnn.nn.targets import detection_targets

H, W = 64, 80


def norm(pixel_box):
    """Pixel box (y2, x2 exclusive) -> the graph's normalised box of an H x W image."""
    return np.asarray(box_ops.norm_boxes(tf.constant([pixel_box], tf.float32),
                                         tf.constant([H, W])))[0]


def reference_grid(pixel_box, mode, pool):
    """numpy: the continuous box the heatmap grid spans (written out from the docs)."""
    y1, x1, y2, x2 = (float(v) for v in pixel_box)
    if mode == "aligned":
        return np.array([y1, x1, y2, x2])
    # crop_and_resize samples from the first to the last pixel centre of the box.
    first = np.array([y1 + 0.5, x1 + 0.5])
    last = np.array([y2 - 0.5, x2 - 0.5])
    half = (last - first) / (pool - 1) / 2
    return np.concatenate([first - half, last + half])


def reference_encode(keypoints, grid, mh, mw):
    """numpy, one keypoint at a time: (index, weight) as the module doc states."""
    index = np.zeros(len(keypoints), np.int64)
    weight = np.zeros(len(keypoints), np.float32)
    y1, x1, y2, x2 = grid
    for k, (x, y, v) in enumerate(keypoints):
        column = math.floor((x + 0.5 - x1) / (x2 - x1) * mw)
        row = math.floor((y + 0.5 - y1) / (y2 - y1) * mh)
        if v > 0 and 0 <= column < mw and 0 <= row < mh:
            index[k], weight[k] = row * mw + column, 1.0
    return index, weight


def test_aligned_grid_is_the_roi_and_a_keypoint_falls_in_its_cell_by_hand():
    # ROI rows 10..29, columns 20..59 (y2, x2 exclusive): [10, 30) x [20, 60) continuous.
    grid = heatmap_boxes(norm([10, 20, 30, 60]), [H, W], "aligned")
    np.testing.assert_allclose(np.asarray(grid), [10, 20, 30, 60], atol=1e-4)
    # x = 25: (25.5 - 20) / 40 * 8 = 1.1 -> column 1; y = 19: (19.5 - 10) / 20 * 8 = 3.8
    # -> row 3; flat 3 * 8 + 1 = 25.
    index, weight = encode_keypoints(tf.constant([[[25.0, 19.0, 2.0]]]), grid[None], (8, 8))
    assert int(index[0, 0]) == 25 and float(weight[0, 0]) == 1.0


def test_upstream_grid_extends_half_a_pooled_bin_beyond_the_sample_centres_by_hand():
    # Columns 20..59: samples at 20.5 .. 59.5 (continuous), 4 bins -> step 39 / 3 = 13,
    # so the grid spans [20.5 - 6.5, 59.5 + 6.5) = [14, 66); rows 10..29: step 19 / 3.
    grid = np.asarray(heatmap_boxes(norm([10, 20, 30, 60]), [H, W], "upstream", pool_size=4))
    np.testing.assert_allclose(grid, [10.5 - 19 / 6, 14.0, 29.5 + 19 / 6, 66.0], atol=1e-4)
    # A single pooled sample (P = 1) spans the sample centres only.
    single = np.asarray(heatmap_boxes(norm([10, 20, 30, 60]), [H, W], "upstream", 1))
    np.testing.assert_allclose(single, [10.5, 20.5, 29.5, 59.5], atol=1e-4)


@pytest.mark.parametrize("mode", ["aligned", "upstream"])
def test_encoding_matches_the_numpy_reference_with_clipping_and_ignored_keypoints(mode):
    rng = np.random.default_rng(3)
    pool, mh, mw = 4, 16, 12
    boxes, keypoints = [], []
    for _ in range(40):
        y1, x1 = rng.integers(0, H - 8), rng.integers(0, W - 8)
        boxes.append([y1, x1, rng.integers(y1 + 4, H + 1), rng.integers(x1 + 4, W + 1)])
        # Keypoints over the whole image: many fall outside the ROI; v in {0, 1, 2}.
        points = np.stack([rng.uniform(-2, W + 2, 7), rng.uniform(-2, H + 2, 7),
                           rng.integers(0, 3, 7)], axis=1)
        keypoints.append(points)
    boxes, keypoints = np.array(boxes), np.array(keypoints, np.float32)
    normalised = np.stack([norm(b) for b in boxes])
    grids = heatmap_boxes(normalised, [H, W], mode, pool)
    index, weight = encode_keypoints(keypoints, grids, (mh, mw))
    index, weight = np.asarray(index), np.asarray(weight)
    ignored = {"outside": 0, "unlabelled": 0}
    for i, box in enumerate(boxes):
        grid = reference_grid(box, mode, pool)
        np.testing.assert_allclose(np.asarray(grids[i]), grid, atol=1e-3)
        expected_index, expected_weight = reference_encode(keypoints[i], grid, mh, mw)
        np.testing.assert_array_equal(weight[i], expected_weight)
        np.testing.assert_array_equal(index[i], expected_index)
        ignored["unlabelled"] += int(np.sum(keypoints[i][:, 2] == 0))
        ignored["outside"] += int(np.sum((keypoints[i][:, 2] > 0) & (expected_weight == 0)))
    # The random case exercises every branch: targets, outside the ROI, unlabelled.
    assert weight.sum() > 20 and ignored["outside"] > 20 and ignored["unlabelled"] > 20


def test_edges_of_the_roi_half_open_and_degenerate_rois_ignored():
    grid = tf.constant([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 5.0, 9.0]])
    # Pixel 0 (continuous 0.5) is in, pixel 9 (9.5) is the last cell, x = 9.5 (10.0) is
    # out; the second ROI has no height.
    points = tf.constant([[[0.0, 0.0, 2], [9.0, 9.0, 1], [9.5, 3.0, 2], [-0.5, 3.0, 2]],
                          [[6.0, 5.0, 2], [6.0, 5.0, 2], [6.0, 5.0, 2], [6.0, 5.0, 2]]])
    index, weight = encode_keypoints(points, grid, (10, 10))
    np.testing.assert_array_equal(np.asarray(weight), [[1, 1, 0, 1], [0, 0, 0, 0]])
    # x = -0.5 sits at continuous 0.0, the grid's first edge, inside [0, 10).
    np.testing.assert_array_equal(np.asarray(index)[0], [0, 99, 0, 30])


def test_targets_follow_the_matched_gt_row_and_ignore_negatives():
    keypoints = np.zeros((1, 3, 2, 3), np.float32)
    keypoints[0, 0] = [[12, 12, 2], [30, 30, 2]]          # only its first point is inside
    keypoints[0, 2] = [[41, 41, 1], [50, 45, 0]]          # second point unlabelled
    rois = np.stack([norm([8, 8, 24, 24]), norm([40, 40, 56, 56]), norm([40, 40, 56, 56])])
    gt_index = np.array([[0, 2, -1]], np.int32)            # third ROI: negative
    index, weight = keypoint_targets(rois[None], gt_index, keypoints,
                                     np.array([[H, W]], np.float32), (8, 8), "aligned")
    np.testing.assert_array_equal(np.asarray(weight), [[[1, 0], [1, 0], [0, 0]]])
    # (12.5 - 8) / 16 * 8 = 2.25 -> cell (2, 2) = 18; (41.5 - 40) / 16 * 8 = 0.75 -> 0.
    np.testing.assert_array_equal(np.asarray(index), [[[18, 0], [0, 0], [0, 0]]])


def test_target_layer_reads_the_molded_shape_from_image_meta():
    meta = compose_image_meta(0, (H, W, 3), (H, W, 3), (0, 0, H, W), 1.0, np.ones(3))
    keypoints = np.zeros((1, 1, 1, 3), np.float32)
    keypoints[0, 0, 0] = [25, 19, 2]
    layer = KeypointTargetLayer((8, 8), roi_align_mode="aligned", pool_size=2)
    index, weight = layer([norm([10, 20, 30, 60])[None, None], np.zeros((1, 1), np.int32),
                           keypoints, meta[None].astype(np.float32)])
    assert int(index[0, 0, 0]) == 25 and float(weight[0, 0, 0]) == 1.0
    clone = KeypointTargetLayer.from_config(layer.get_config())
    assert clone.heatmap_shape == (8, 8) and clone.roi_align_mode == "aligned"


def test_roi_sampler_returns_the_gt_row_of_each_positive_roi():
    # GT rows: 0 instance, 1 crowd, 2 padding, 3 instance. The proposals are the two
    # instance boxes and one background box.
    gt_boxes = np.array([norm([4, 4, 20, 20]), norm([30, 30, 60, 70]), [0, 0, 0, 0],
                         norm([40, 4, 60, 24])], np.float32)
    gt_class_ids = np.array([1, -1, 0, 2], np.int32)
    proposals = np.array([norm([40, 4, 60, 24]), norm([4, 4, 20, 20]), norm([2, 50, 12, 76]),
                          [0, 0, 0, 0]], np.float32)
    masks = np.ones((8, 8, 4), bool)
    rois, class_ids, _, _, gt_index = detection_targets(
        proposals, gt_class_ids, gt_boxes, masks, train_rois_per_image=4,
        roi_positive_ratio=0.5, bbox_std_dev=[0.1, 0.1, 0.2, 0.2], mask_shape=(4, 4),
        use_mini_mask=True, fill_negatives=True, seed=1, return_gt_index=True)
    rois, class_ids, gt_index = np.asarray(rois), np.asarray(class_ids), np.asarray(gt_index)
    for row in range(4):
        if class_ids[row] > 0:
            expected = 0 if np.allclose(rois[row], gt_boxes[0]) else 3
            assert gt_index[row] == expected and class_ids[row] == gt_class_ids[expected]
        else:
            assert gt_index[row] == -1
    assert sorted(gt_index.tolist()) == [-1, -1, 0, 3]    # 2 positives, 1 negative, 1 pad
    # Without the flag the sampler keeps its four outputs.
    assert len(detection_targets(
        proposals, gt_class_ids, gt_boxes, masks, train_rois_per_image=4,
        roi_positive_ratio=0.5, bbox_std_dev=[0.1, 0.1, 0.2, 0.2], mask_shape=(4, 4),
        use_mini_mask=True)) == 4

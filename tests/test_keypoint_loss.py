"""The keypoint loss by hand (softmax over the heatmap cells, normalised by the batch's
labelled keypoints, 0 without any), its place among the training losses, and decoding a
hand-built heatmap to original-image pixels through a resized and padded image."""
import math

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import inference, keypoint_inference, training, utils
from mrcnn.config import Config
from mrcnn.nn import box_ops
from mrcnn.nn.keypoint_decoding import decode_heatmaps
from mrcnn.nn.keypoint_loss import mrcnn_keypoint_loss
from mrcnn.nn.keypoint_targets import heatmap_boxes

from keypoint_helpers import TinyKeypointConfig


def value(tensor):
    return float(np.asarray(tensor))


def test_uniform_heatmaps_cost_log_of_the_cell_count():
    logits = np.zeros((1, 2, 4, 5, 3), np.float32)
    targets = np.array([[[0, 7, 19], [3, 3, 3]]], np.int32)
    weights = np.ones((1, 2, 3), np.float32)
    assert value(mrcnn_keypoint_loss(targets, weights, logits)) == pytest.approx(
        math.log(20), rel=1e-6)


def test_loss_by_hand_is_the_mean_over_labelled_keypoints_of_the_batch():
    # 2 images x 2 ROIs, K = 2, 2 x 2 heatmaps (4 cells, flat index row * 2 + column).
    logits = np.zeros((2, 2, 2, 2, 2), np.float32)
    logits[0, 0, 0, 1, 0] = math.log(3.0)   # cell 1 of keypoint 0: p = 3 / (3 + 3) = 1/2
    logits[0, 0, 1, 1, 1] = math.log(7.0)   # cell 3 of keypoint 1: p = 7 / 10
    logits[1, 1, 1, 0, 0] = 5.0             # cell 2 of keypoint 0 (weight 0: ignored)
    targets = np.array([[[1, 3], [0, 2]], [[0, 0], [2, 1]]], np.int32)
    weights = np.array([[[1, 1], [0, 1]], [[0, 0], [0, 1]]], np.float32)
    # Targets: -log(1/2), -log(7/10), -log(1/4) (uniform ROI), -log(1/4).
    expected = (math.log(2) - math.log(0.7) + 2 * math.log(4)) / 4
    assert value(mrcnn_keypoint_loss(targets, weights, logits)) == pytest.approx(
        expected, rel=1e-6)
    # Per labelled keypoint, not per ROI: ROI (0, 0) with two targets counts twice.
    per_roi = ((math.log(2) - math.log(0.7)) / 2 + math.log(4) + math.log(4)) / 3
    assert abs(expected - per_roi) > 0.05


def test_no_labelled_keypoint_gives_zero_and_zero_gradients():
    logits = tf.Variable(np.full((1, 3, 4, 4, 2), 1e30, np.float32))
    targets = tf.constant(np.full((1, 3, 2), 5, np.int32))
    weights = tf.zeros((1, 3, 2))
    with tf.GradientTape() as tape:
        loss = mrcnn_keypoint_loss(targets, weights, logits)
    gradient = tape.gradient(loss, logits)
    assert value(loss) == 0.0
    assert np.all(np.asarray(gradient) == 0.0)


def test_keypoint_models_train_five_or_four_losses_plus_the_keypoint_loss():
    config = TinyKeypointConfig()
    assert training.loss_names(config)[-1] == "mrcnn_keypoint_loss"
    assert "mrcnn_mask_loss" in training.loss_names(config)
    assert training.loss_names(Config()) == training.LOSS_NAMES

    class KeypointOnly(TinyKeypointConfig):
        KEYPOINT_WITH_MASKS = False
        KEYPOINT_LOSS_WEIGHT = 2.5
    only = KeypointOnly()
    assert "mrcnn_mask_loss" not in training.loss_names(only)
    assert training.loss_weight(only, "mrcnn_keypoint_loss") == 2.5
    assert training.loss_weight(only, "mrcnn_class_loss") == 1.0


def test_compute_losses_and_counts_score_the_keypoint_heatmaps():
    outputs = {"target_keypoints": tf.constant([[[1, 3]]]),
               "target_keypoint_weights": tf.constant([[[1.0, 0.0]]]),
               "mrcnn_keypoint_logits": tf.zeros((1, 1, 2, 2, 2))}
    rpn = {"input_rpn_match": tf.zeros((1, 4, 1), tf.int32),
           "input_rpn_bbox": tf.zeros((1, 2, 4)),
           "input_image_meta": tf.ones((1, 14))}
    heads = {"rpn_class_logits": tf.zeros((1, 4, 2)), "rpn_bbox": tf.zeros((1, 4, 4)),
             "target_class_ids": tf.zeros((1, 1), tf.int32),
             "mrcnn_class_logits": tf.zeros((1, 1, 2)), "target_bbox": tf.zeros((1, 1, 4)),
             "mrcnn_bbox": tf.zeros((1, 1, 2, 4))}
    losses = training.compute_losses(rpn, {**heads, **outputs})
    counts = training.loss_counts(rpn, {**heads, **outputs})
    assert "mrcnn_mask_loss" not in losses          # no mask head in these outputs
    assert value(losses["mrcnn_keypoint_loss"]) == pytest.approx(math.log(4), rel=1e-6)
    assert value(counts["mrcnn_keypoint_loss"]) == 1.0


def test_heatmap_peak_decodes_to_its_cell_centre_in_the_molded_image():
    # ROI columns 16..47, rows 8..23 of a 64 x 64 image (aligned: the grid is the ROI),
    # 4 x 8 heatmap: cells of 4 x 4 pixels. Peak of keypoint 1 at row 2, column 5.
    logits = np.zeros((1, 1, 4, 8, 2), np.float32)
    logits[0, 0, 2, 5, 1] = 10.0
    logits[0, 0, 0, 0, 0] = 1.0
    roi = box_ops.norm_boxes(tf.constant([[8.0, 16.0, 24.0, 48.0]]), tf.constant([64, 64]))
    grid = heatmap_boxes(roi[None], tf.constant([[[64.0, 64.0]]]), "aligned")
    decoded = np.asarray(decode_heatmaps(logits, grid))[0, 0]
    # x = 16 + (5 + 0.5) * 4 - 0.5 = 37.5, y = 8 + (2 + 0.5) * 4 - 0.5 = 17.5.
    np.testing.assert_allclose(decoded[1, :2], [37.5, 17.5], atol=1e-4)
    assert decoded[1, 2] == pytest.approx(math.exp(10) / (math.exp(10) + 31), rel=1e-5)
    np.testing.assert_allclose(decoded[0, :2], [16 + 2 - 0.5, 8 + 2 - 0.5], atol=1e-4)
    assert decoded[0, 2] == pytest.approx(math.e / (math.e + 31), rel=1e-5)


def test_decoding_on_a_resized_and_padded_image_lands_on_the_original_pixel():
    # A 40 x 80 image in square mode to 64: scale 0.8, 32 x 64 window at rows 16..47.
    image = np.zeros((40, 80, 3), np.uint8)
    _, window, scale, _, _ = utils.resize_image(image, min_dim=64, max_dim=64, mode="square")
    assert tuple(window) == (16, 0, 48, 64) and scale == pytest.approx(0.8)
    # An ROI of the molded image: rows 24..39, columns 8..39 (original rows 10..29,
    # columns 10..49); an 8 x 16 heatmap with its peak at row 3, column 12.
    roi = box_ops.norm_boxes(tf.constant([[24.0, 8.0, 40.0, 40.0]]), tf.constant([64, 64]))
    logits = np.zeros((1, 1, 8, 16, 1), np.float32)
    logits[0, 0, 3, 12, 0] = 8.0
    grid = heatmap_boxes(roi[None], tf.constant([[[64.0, 64.0]]]), "aligned")
    molded = np.asarray(decode_heatmaps(logits, grid))[0]          # [1, K, 3]
    # Molded: x = 8 + 12.5 * 2 - 0.5 = 32.5, y = 24 + 3.5 * 2 - 0.5 = 30.5.
    np.testing.assert_allclose(molded[0, :, :2], [[32.5, 30.5]], atol=1e-4)
    detections = np.zeros((3, 6), np.float32)
    detections[0] = list(np.asarray(roi)[0]) + [1, 0.9]
    keypoints = np.concatenate([molded, np.zeros((2, 1, 3), np.float32)])
    result = keypoint_inference.unmold_keypoints(detections, keypoints, image.shape,
                                                 (64, 64, 3), window)
    # Original: x = (32.5 + 0.5) / 0.8 - 0.5 = 40.75, y = (30.5 - 16 + 0.5) / 0.8 - 0.5
    # = 18.25: the cell centre, in the frame where the ROI spans columns 10..49.
    assert result.shape == (1, 1, 3) and result.dtype == np.float32
    np.testing.assert_allclose(result[0, 0, :2], [40.75, 18.25], atol=1e-4)
    assert result[0, 0, 2] == pytest.approx(molded[0, 0, 2])


def test_unmolded_keypoints_follow_the_kept_detections_and_stay_on_the_image():
    # Second detection has zero area in the original image: dropped, as by
    # inference.unmold_detections; keypoints past the image edge are clipped.
    # (Rows 9..8 of the original after rounding: y1 = round(0.3 * 31), y2 = round(0.25 *
    # 31) + 1.)
    detections = np.array([[0.1, 0.1, 0.5, 0.5, 1, 0.9], [0.3, 0.3, 0.25, 0.5, 2, 0.8],
                           [0.0, 0.0, 1.0, 1.0, 1, 0.7], [0, 0, 0, 0, 0, 0]], np.float32)
    keypoints = np.zeros((4, 1, 3), np.float32)
    keypoints[:, 0] = [[5, 6, 0.1], [7, 7, 0.2], [70, -3, 0.3], [0, 0, 0]]
    result = keypoint_inference.unmold_keypoints(detections, keypoints, (32, 32, 3),
                                                 (64, 64, 3), (0, 0, 64, 64))
    np.testing.assert_allclose(result[:, 0, 2], [0.1, 0.3], atol=1e-6)
    _, _, scores, _ = inference.unmold_detections(detections, np.zeros((4, 2, 2)),
                                                  (32, 32, 3), (64, 64, 3), (0, 0, 64, 64))
    np.testing.assert_allclose(scores, [0.9, 0.7], atol=1e-6)
    # (5 + 0.5) / 2 - 0.5 = 2.25, (6 + 0.5) / 2 - 0.5 = 2.75; (70.5) / 2 - 0.5 -> 31.
    np.testing.assert_allclose(result[:, 0, :2], [[2.25, 2.75], [31.0, 0.0]], atol=1e-5)

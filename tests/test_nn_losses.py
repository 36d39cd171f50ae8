"""The five losses against hand-worked cases and numpy references that follow upstream's
gather-then-average."""
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.nn import losses

RNG_SEED = 1234


# --- numpy references --------------------------------------------------------------------
def np_smooth_l1(a, b):
    d = np.abs(a - b)
    return np.where(d < 1, 0.5 * d ** 2, d - 0.5)


def np_softmax_ce(logits, label):
    logits = logits.astype(np.float64)
    return np.log(np.sum(np.exp(logits - logits.max()))) + logits.max() - logits[label]


def np_rpn_class(match, logits):
    values = [np_softmax_ce(logits[b, a], int(match[b, a, 0] == 1))
              for b in range(match.shape[0]) for a in range(match.shape[1])
              if match[b, a, 0] != 0]
    return np.mean(values) if values else 0.0


def np_rpn_bbox(target, match, pred):
    rows = []
    for b in range(match.shape[0]):
        positives = np.where(match[b, :, 0] == 1)[0]
        rows.append(np_smooth_l1(target[b, :len(positives)], pred[b, positives]))
    rows = np.concatenate(rows)
    return rows.mean() if rows.size else 0.0


def np_mrcnn_class(target_ids, logits, active):
    total, count = 0.0, 0.0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            weight = active[b, np.argmax(logits[b, t])]
            total += weight * np_softmax_ce(logits[b, t], target_ids[b, t])
            count += weight
    return total / count if count else 0.0


def np_mrcnn_bbox(target, ids, pred):
    rows = [np_smooth_l1(target[b, t], pred[b, t, ids[b, t]])
            for b in range(ids.shape[0]) for t in range(ids.shape[1]) if ids[b, t] > 0]
    return np.mean(rows) if rows else 0.0


def np_mrcnn_mask(target, ids, pred):
    values = []
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            if ids[b, t] > 0:
                # Clip bounds as float32 represents them (1 - 1e-7 rounds to 1 - 1.19e-7).
                p = np.clip(pred[b, t, :, :, ids[b, t]].astype(np.float32),
                            np.float32(1e-7), np.float32(1 - 1e-7)).astype(np.float64)
                y = target[b, t]
                values.append(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return np.mean(values) if values else 0.0


# --- random cases: batch 2, image 1 without positives -------------------------------------
def rpn_case():
    rng = np.random.default_rng(RNG_SEED)
    anchors, rows = 30, 8
    match = np.zeros((2, anchors, 1), np.int32)
    match[0, rng.choice(anchors, 5, replace=False), 0] = 1
    negatives = np.where(match[0, :, 0] == 0)[0]
    match[0, rng.choice(negatives, 7, replace=False), 0] = -1
    match[1, rng.choice(anchors, 4, replace=False), 0] = -1      # image 1: no positives
    target = np.zeros((2, rows, 4), np.float32)
    target[0, :5] = rng.normal(size=(5, 4)) * 2
    logits = rng.normal(size=(2, anchors, 2)).astype(np.float32) * 3
    pred = rng.normal(size=(2, anchors, 4)).astype(np.float32) * 2
    return match, logits, target, pred


def head_case():
    rng = np.random.default_rng(RNG_SEED + 1)
    rois, classes, size = 6, 4, 5
    ids = np.zeros((2, rois), np.int32)
    ids[0, :3] = [2, 1, 3]                                        # image 1: no positives
    target_bbox = np.zeros((2, rois, 4), np.float32)
    target_bbox[0, :3] = rng.normal(size=(3, 4)) * 2
    pred_bbox = (rng.normal(size=(2, rois, classes, 4)) * 2).astype(np.float32)
    logits = (rng.normal(size=(2, rois, classes)) * 2).astype(np.float32)
    active = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], np.float32)
    target_masks = np.zeros((2, rois, size, size), np.float32)
    target_masks[0, :3] = rng.random((3, size, size)) > 0.5
    pred_masks = rng.random((2, rois, size, size, classes)).astype(np.float32)
    pred_masks[0, 0, 0, 0, 2] = 1.0                               # exercises the clipping
    return ids, target_bbox, pred_bbox, logits, active, target_masks, pred_masks


def value(tensor):
    assert tensor.dtype == tf.float32 and tensor.shape == ()
    result = float(tensor.numpy())
    assert np.isfinite(result)
    return result


# --- smooth L1 -----------------------------------------------------------------------------
def test_smooth_l1_by_hand():
    result = losses.smooth_l1(tf.constant([0.0, 0.0, 0.0, 1.0]), tf.constant([0.5, -2.0, 1.0, 1.0]))
    np.testing.assert_allclose(result.numpy(), [0.125, 1.5, 0.5, 0.0])


# --- matches with numpy ------------------------------------------------------------------
def test_rpn_class_loss_matches_numpy():
    match, logits, _, _ = rpn_case()
    assert value(losses.rpn_class_loss(match, logits)) == pytest.approx(
        np_rpn_class(match, logits), rel=1e-5)


def test_rpn_bbox_loss_matches_numpy():
    match, _, target, pred = rpn_case()
    assert value(losses.rpn_bbox_loss(target, match, pred)) == pytest.approx(
        np_rpn_bbox(target, match, pred), rel=1e-5)


def test_rpn_bbox_loss_pairs_positives_in_anchor_order_per_image():
    # Image 0: positives at anchors 3 and 1 -> target rows 0, 1 go to anchors 1, 3.
    # Image 1: one positive at anchor 0 -> target row 0.
    match = np.zeros((2, 4, 1), np.int32)
    match[0, [1, 3], 0] = 1
    match[1, 0, 0] = 1
    target = np.zeros((2, 3, 4), np.float32)
    target[0, 0] = [1, 0, 0, 0]
    target[0, 1] = [0, 3, 0, 0]
    target[1, 0] = [0, 0, 0.5, 0]
    pred = np.zeros((2, 4, 4), np.float32)
    pred[0, 1] = [1, 0, 0, 0]          # exact
    pred[0, 3] = [0, 1, 0, 0]          # |d| = 2 -> 1.5
    # 3 positive rows x 4 = 12 elements: 1.5 + 0.5 * 0.25 = 1.625
    assert value(losses.rpn_bbox_loss(target, match, pred)) == pytest.approx(1.625 / 12)


def test_rpn_bbox_loss_ignores_positives_beyond_the_target_rows():
    match = np.ones((1, 3, 1), np.int32)
    target = np.zeros((1, 2, 4), np.float32)
    pred = np.zeros((1, 3, 4), np.float32)
    pred[0, 0, 0] = 0.5                # 0.125
    pred[0, 2] = 100.0                 # third positive: no target row, not scored
    assert value(losses.rpn_bbox_loss(target, match, pred)) == pytest.approx(0.125 / 8)


# --- hand-worked head losses ----------------------------------------------------------------
LN2, LN3, LN5 = np.log(2.0), np.log(3.0), np.log(5.0)


def test_mrcnn_class_loss_by_hand_skips_predictions_of_classes_the_image_lacks():
    # Image 0 has all 3 classes, image 1 lacks class 2. Softmax of [ln 2, 0, 0] is
    # [2, 1, 1] / 4, of [0, ln 3, 0] is [1, 3, 1] / 5.
    logits = np.log(np.array([[[2, 1, 1],        # argmax 0, target 0: -ln(2/4) = ln 2
                               [1, 1, 2]],       # argmax 2, target 1: -ln(1/4) = 2 ln 2
                              [[1, 1, 2],        # argmax 2, inactive in image 1: left out
                               [1, 3, 1]]],      # argmax 1, target 1: -ln(3/5)
                             np.float32))
    target_ids = np.array([[0, 1], [1, 1]], np.int32)
    active = np.array([[1, 1, 1], [1, 1, 0]], np.float32)
    expected = (LN2 + 2 * LN2 + (LN5 - LN3)) / 3
    assert value(losses.mrcnn_class_loss(target_ids, logits, active)) == pytest.approx(
        expected, rel=1e-6)
    # With class 2 active in image 1 too, its third ROI counts: -ln(1/4) more.
    everything = np.ones_like(active)
    assert value(losses.mrcnn_class_loss(target_ids, logits, everything)) == pytest.approx(
        (LN2 + 2 * LN2 + 2 * LN2 + (LN5 - LN3)) / 4, rel=1e-6)


def test_mrcnn_bbox_loss_by_hand_scores_the_true_class_of_positive_rois():
    target_ids = np.array([[2, 0, 1]], np.int32)             # ROI 1 is a negative
    target = np.array([[[1, 0, 0, 0], [5, 5, 5, 5], [0, 0, 0, 0]]], np.float32)
    pred = np.full((1, 3, 3, 4), 100.0, np.float32)          # other classes: far off
    pred[0, 0, 2] = [1, 0.5, 0, 3]                           # |d| = 0, .5, 0, 3
    pred[0, 2, 1] = [0.2, 0, 0, 0]                           # |d| = .2
    # smooth-L1: 0.125 (0.5 d^2) + 2.5 (|d| - 0.5) + 0.02, over 2 ROIs x 4 coordinates.
    expected = (0.125 + 2.5 + 0.02) / 8
    assert value(losses.mrcnn_bbox_loss(target, target_ids, pred)) == pytest.approx(
        expected, rel=1e-6)


def test_mrcnn_mask_loss_by_hand_scores_the_true_class_mask_of_positive_rois():
    target_ids = np.array([[1, 0, 2]], np.int32)             # ROI 1 is a negative
    target = np.zeros((1, 3, 2, 2), np.float32)
    target[0, 0] = [[1, 0], [1, 0]]
    pred = np.full((1, 3, 2, 2, 3), 0.001, np.float32)       # other classes: far off
    pred[0, 0, :, :, 1] = [[0.5, 0.75], [0.25, 0.5]]
    pred[0, 2, :, :, 2] = 0.5
    # ROI 0: -ln .5, -ln(1 - .75), -ln .25, -ln(1 - .5) = 2 ln 2 + 2 ln 4 = 6 ln 2;
    # ROI 2 (target all 0): 4 x -ln(1 - .5) = 4 ln 2; mean over 2 x 4 pixels.
    expected = (6 * LN2 + 4 * LN2) / 8
    assert value(losses.mrcnn_mask_loss(target, target_ids, pred)) == pytest.approx(
        expected, rel=1e-6)


def test_mrcnn_class_loss_matches_numpy_with_each_images_active_classes():
    ids, _, _, logits, active, _, _ = head_case()
    expected = np_mrcnn_class(ids, logits, active)
    assert value(losses.mrcnn_class_loss(ids, logits, active)) == pytest.approx(expected, rel=1e-5)
    # Image 1 predicts some classes it lacks: upstream's image-0 rule would count them.
    predicted = np.argmax(logits[1], axis=1)
    assert np.any(active[1, predicted] == 0)
    image0_rule = np_mrcnn_class(ids, logits, np.stack([active[0], active[0]]))
    assert expected != pytest.approx(image0_rule, rel=1e-3)


def test_mrcnn_bbox_loss_matches_numpy():
    ids, target_bbox, pred_bbox, _, _, _, _ = head_case()
    assert value(losses.mrcnn_bbox_loss(target_bbox, ids, pred_bbox)) == pytest.approx(
        np_mrcnn_bbox(target_bbox, ids, pred_bbox), rel=1e-5)


def test_mrcnn_mask_loss_matches_numpy():
    ids, _, _, _, _, target_masks, pred_masks = head_case()
    assert value(losses.mrcnn_mask_loss(target_masks, ids, pred_masks)) == pytest.approx(
        np_mrcnn_mask(target_masks, ids, pred_masks), rel=1e-5)


def test_losses_compute_in_float32_from_float16_predictions():
    match, logits, target, pred = rpn_case()
    ids, target_bbox, pred_bbox, class_logits, active, target_masks, pred_masks = head_case()
    half = lambda x: x.astype(np.float16)                                  # noqa: E731
    up = lambda x: half(x).astype(np.float32)                              # noqa: E731
    pairs = [
        (losses.rpn_class_loss(match, half(logits)), np_rpn_class(match, up(logits))),
        (losses.rpn_bbox_loss(target, match, half(pred)), np_rpn_bbox(target, match, up(pred))),
        (losses.mrcnn_class_loss(ids, half(class_logits), active),
         np_mrcnn_class(ids, up(class_logits), active)),
        (losses.mrcnn_bbox_loss(target_bbox, ids, half(pred_bbox)),
         np_mrcnn_bbox(target_bbox, ids, up(pred_bbox))),
        (losses.mrcnn_mask_loss(target_masks, ids, half(pred_masks)),
         np_mrcnn_mask(target_masks, ids, up(pred_masks))),
    ]
    for loss, expected in pairs:
        assert value(loss) == pytest.approx(expected, rel=1e-5)


# --- nothing to score -----------------------------------------------------------------------
def test_every_loss_is_zero_with_nothing_to_score():
    match, logits, target, pred = rpn_case()
    ids, target_bbox, pred_bbox, class_logits, active, target_masks, pred_masks = head_case()
    no_match = np.zeros_like(match)
    no_ids = np.zeros_like(ids)
    assert value(losses.rpn_class_loss(no_match, logits)) == 0.0
    assert value(losses.rpn_bbox_loss(target, no_match, pred)) == 0.0
    only_negatives = np.where(match == 1, -1, match)
    assert value(losses.rpn_bbox_loss(target, only_negatives, pred)) == 0.0
    assert value(losses.mrcnn_class_loss(ids, class_logits, np.zeros_like(active))) == 0.0
    assert value(losses.mrcnn_bbox_loss(target_bbox, no_ids, pred_bbox)) == 0.0
    assert value(losses.mrcnn_mask_loss(target_masks, no_ids, pred_masks)) == 0.0


def test_gradients_are_finite_and_zero_with_nothing_to_score():
    match, logits, target, pred = rpn_case()
    ids, target_bbox, pred_bbox, class_logits, active, target_masks, pred_masks = head_case()
    variables = [tf.Variable(x) for x in (logits, pred, class_logits, pred_bbox, pred_masks)]
    with tf.GradientTape() as tape:
        total = (losses.rpn_class_loss(np.zeros_like(match), variables[0])
                 + losses.rpn_bbox_loss(target, np.zeros_like(match), variables[1])
                 + losses.mrcnn_class_loss(ids, variables[2], np.zeros_like(active))
                 + losses.mrcnn_bbox_loss(target_bbox, np.zeros_like(ids), variables[3])
                 + losses.mrcnn_mask_loss(target_masks, np.zeros_like(ids), variables[4]))
    for gradient in tape.gradient(total, variables):
        np.testing.assert_array_equal(gradient.numpy(), 0.0)


def test_losses_trace_once_in_a_tf_function_with_unknown_batch():
    match, logits, target, pred = rpn_case()

    @tf.function(input_signature=[tf.TensorSpec([None, None, 1], tf.int32),
                                  tf.TensorSpec([None, None, 2], tf.float32),
                                  tf.TensorSpec([None, None, 4], tf.float32),
                                  tf.TensorSpec([None, None, 4], tf.float32)])
    def rpn_losses(m, lg, t, p):
        return losses.rpn_class_loss(m, lg), losses.rpn_bbox_loss(t, m, p)

    class_loss, bbox_loss = rpn_losses(match, logits, target, pred)
    assert value(class_loss) == pytest.approx(np_rpn_class(match, logits), rel=1e-5)
    assert value(bbox_loss) == pytest.approx(np_rpn_bbox(target, match, pred), rel=1e-5)

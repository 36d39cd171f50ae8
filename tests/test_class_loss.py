"""The classifier loss with per-class weights and a focal term (mrcnn/nn/class_loss.py).

Hand-built ROIs whose logits are log-probabilities, so each cross-entropy is a multiple
of ln 2 and every expected value below is worked out by hand.
"""
import math

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import training
from mrcnn.config import Config, ConfigError
from mrcnn.nn import losses
from mrcnn.nn.class_loss import classifier_loss

LN2 = math.log(2.0)

# Three ROIs of one image, 3 classes (background, 1, 2):
#   ROI 0: true 0, p = [.5, .25, .25]  -> CE ln 2, argmax 0, focal (1-.5)^2 = .25
#   ROI 1: true 2, p = [.5, .25, .25]  -> CE ln 4, argmax 0, focal (1-.25)^2 = .5625
#   ROI 2: true 1, p = [.25, .5, .25]  -> CE ln 2, argmax 1, focal .25
PROBABILITIES = np.array([[[.5, .25, .25], [.5, .25, .25], [.25, .5, .25]]])
LOGITS = tf.constant(np.log(PROBABILITIES), tf.float32)
TARGETS = tf.constant([[0, 2, 1]], tf.int32)
ALL_ACTIVE = tf.constant([[1., 1., 1.]])
WEIGHTS = [1.0, 2.0, 4.0]                # background, class 1, class 2


def _value(tensor):
    return float(tensor.numpy())


def test_unweighted_cross_entropy_is_the_plain_mean():
    # (ln2 + 2 ln2 + ln2) / 3
    loss = classifier_loss(TARGETS, LOGITS, ALL_ACTIVE)
    assert _value(loss) == pytest.approx(4 * LN2 / 3, rel=1e-6)


def test_class_weights_give_the_weighted_mean():
    # weights by true class: ROI0 1, ROI1 4, ROI2 2 -> (1 ln2 + 4 * 2 ln2 + 2 ln2) / 7
    loss = classifier_loss(TARGETS, LOGITS, ALL_ACTIVE, class_weights=WEIGHTS)
    assert _value(loss) == pytest.approx(11 * LN2 / 7, rel=1e-6)
    # scaling every weight changes nothing
    scaled = classifier_loss(TARGETS, LOGITS, ALL_ACTIVE, class_weights=[10, 20, 40])
    assert _value(scaled) == pytest.approx(11 * LN2 / 7, rel=1e-6)


def test_inactive_predictions_are_left_out_before_weighting():
    # class 1 not active: ROI 2 (argmax 1) drops out -> (1 ln2 + 4 * 2 ln2) / 5
    active = tf.constant([[1., 0., 1.]])
    loss = classifier_loss(TARGETS, LOGITS, active, class_weights=WEIGHTS)
    assert _value(loss) == pytest.approx(9 * LN2 / 5, rel=1e-6)


def test_focal_loss_by_hand():
    # unweighted: (.25 ln2 + .5625 * 2 ln2 + .25 ln2) / 3 = 1.625 ln2 / 3
    focal = classifier_loss(TARGETS, LOGITS, ALL_ACTIVE, loss="focal", focal_gamma=2.0)
    assert _value(focal) == pytest.approx(1.625 * LN2 / 3, rel=1e-5)
    # weighted: (1 * .25 + 4 * 1.125 + 2 * .25) ln2 / 7 = .75 ln2
    weighted = classifier_loss(TARGETS, LOGITS, ALL_ACTIVE, class_weights=WEIGHTS,
                               loss="focal", focal_gamma=2.0)
    assert _value(weighted) == pytest.approx(0.75 * LN2, rel=1e-5)


def _random_case(seed, rois=40, classes=5, images=2):
    rng = np.random.default_rng(seed)
    logits = tf.constant(rng.normal(0, 3, (images, rois, classes)), tf.float32)
    targets = tf.constant(rng.integers(0, classes, (images, rois)), tf.int32)
    active = tf.constant(rng.integers(0, 2, (images, classes)), tf.float32)
    return targets, logits, active


def test_defaults_and_all_ones_are_bit_identical_to_upstreams_loss():
    for seed in range(3):
        targets, logits, active = _random_case(seed)
        reference = losses.mrcnn_class_loss(targets, logits, active).numpy()
        assert classifier_loss(targets, logits, active).numpy() == reference
        ones = classifier_loss(targets, logits, active, class_weights=[1.0] * 5)
        assert ones.numpy() == reference
        gamma_zero = classifier_loss(targets, logits, active, loss="focal", focal_gamma=0.0)
        assert gamma_zero.numpy() == reference


def test_matches_a_numpy_reference_on_random_rois():
    targets, logits, active = _random_case(7)
    weights = np.array([0.5, 1.0, 3.0, 0.0, 2.0])
    gamma = 1.5
    x = logits.numpy().astype(np.float64)
    log_p = x - x.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    t = targets.numpy()
    log_pt = np.take_along_axis(log_p, t[..., None], -1)[..., 0]
    focal = -(1 - np.exp(log_pt)) ** gamma * log_pt
    is_active = np.take_along_axis(active.numpy(), x.argmax(-1), 1)
    w = is_active * weights[t]
    expected = (focal * w).sum() / w.sum()
    loss = classifier_loss(targets, logits, active, class_weights=weights, loss="focal",
                           focal_gamma=gamma)
    assert _value(loss) == pytest.approx(expected, rel=1e-5)


def _loss_and_gradient(targets, logits, active, **kwargs):
    logits = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = classifier_loss(targets, logits, active, **kwargs)
    return loss.numpy(), tape.gradient(loss, logits).numpy()


@pytest.mark.parametrize("kind", ["cross_entropy", "focal"])
def test_zero_weight_classes_and_empty_batches_give_zero_not_nan(kind):
    # every ROI is background and background weighs 0
    loss, gradient = _loss_and_gradient(tf.zeros([1, 3], tf.int32), LOGITS, ALL_ACTIVE,
                                        class_weights=[0.0, 1.0, 1.0], loss=kind)
    assert loss == 0.0 and np.all(gradient == 0.0)
    for shape in ([1, 0, 3], [0, 5, 3]):
        loss, gradient = _loss_and_gradient(
            tf.zeros(shape[:2], tf.int32), tf.zeros(shape), tf.ones([shape[0], 3]),
            class_weights=[1.0, 2.0, 3.0], loss=kind)
        assert loss == 0.0 and gradient.shape == tuple(shape)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_gradient_stays_finite_for_a_certain_prediction(gamma):
    # p_true = 1 in float32: (1 - p)^gamma has an infinite slope at 0 for gamma < 1
    logits = tf.constant([[[100.0, 0.0, 0.0], [0.0, 3.0, 0.0]]])
    targets = tf.constant([[0, 1]], tf.int32)
    loss, gradient = _loss_and_gradient(targets, logits, tf.ones([1, 3]), loss="focal",
                                        focal_gamma=gamma)
    assert np.isfinite(loss) and np.all(np.isfinite(gradient))
    assert np.all(gradient[0, 0] == 0.0)      # the certain ROI contributes nothing


class _Classes3(Config):
    NAME = "three"
    NUM_CLASSES = 3


def _fake_batch():
    """Inputs and outputs of the training graph for compute_losses: one image with the
    three hand-built ROIs, everything else small and zero."""
    inputs = {"input_rpn_match": tf.constant([[[1], [-1]]], tf.int32),
              "input_rpn_bbox": tf.zeros([1, 1, 4]),
              "input_image_meta": tf.concat([tf.zeros([1, 12]), ALL_ACTIVE], 1)}
    outputs = {"rpn_class_logits": tf.zeros([1, 2, 2]), "rpn_bbox": tf.zeros([1, 2, 4]),
               "target_class_ids": TARGETS, "mrcnn_class_logits": LOGITS,
               "target_bbox": tf.zeros([1, 3, 4]), "mrcnn_bbox": tf.zeros([1, 3, 3, 4]),
               "target_mask": tf.zeros([1, 3, 4, 4]), "mask_class_ids": TARGETS,
               "mrcnn_mask": tf.fill([1, 3, 4, 4, 3], 0.5)}
    return inputs, outputs


def test_training_losses_and_replica_counts_follow_the_config():
    inputs, outputs = _fake_batch()
    default = training.compute_losses(inputs, outputs)["mrcnn_class_loss"]
    from_config = training.compute_losses(inputs, outputs, _Classes3())["mrcnn_class_loss"]
    assert from_config.numpy() == default.numpy()
    config = _Classes3()
    config.CLASS_LOSS_WEIGHTS = WEIGHTS
    weighted = training.compute_losses(inputs, outputs, config)["mrcnn_class_loss"]
    assert _value(weighted) == pytest.approx(11 * LN2 / 7, rel=1e-6)
    # the replica weighting counts the classifier's ROIs by their weights: 1 + 4 + 2
    assert _value(training.loss_counts(inputs, outputs, config)["mrcnn_class_loss"]) == 7.0
    assert _value(training.loss_counts(inputs, outputs)["mrcnn_class_loss"]) == 3.0


@pytest.mark.parametrize("name, value", [
    ("CLASS_LOSS_WEIGHTS", [1.0, 2.0]),            # 2 weights for 3 classes
    ("CLASS_LOSS_WEIGHTS", [1.0, -1.0, 1.0]),
    ("CLASS_LOSS_WEIGHTS", [0.0, 0.0, 0.0]),
    ("CLASS_LOSS_WEIGHTS", [1.0, float("nan"), 1.0]),
    ("CLASS_LOSS_WEIGHTS", ["a", "b", "c"]),
    ("CLASS_LOSS", "focal_loss"),
    ("FOCAL_GAMMA", -0.5),
    ("FOCAL_GAMMA", float("inf")),
])
def test_config_rejects_bad_settings_naming_the_attribute(name, value):
    config = _Classes3()
    setattr(config, name, value)
    with pytest.raises(ConfigError, match=name):
        config.validate()


def test_config_accepts_weights_with_zero_classes_and_focal():
    config = _Classes3()
    config.CLASS_LOSS_WEIGHTS = np.array([0.0, 1.0, 5.0])
    config.CLASS_LOSS = "focal"
    config.FOCAL_GAMMA = 0
    config.validate()
    assert config.to_dict()["CLASS_LOSS_WEIGHTS"] == [0.0, 1.0, 5.0]

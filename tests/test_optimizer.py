"""The optimiser against hand computations: LOSS_WEIGHTS, weight decay (which weights, the
size normalisation, BatchNorm excluded), per-tensor and global clipping, momentum, and the
learning rate inside the train step.

`hand_model` is a training graph without a network: each prediction is one small weight
tensor, so every loss, gradient and update below is worked out by hand.
"""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import mrcnn.model as modellib
from mrcnn import training
from mrcnn.config import Config

from conftest import TinyConfig

LN2 = math.log(2.0)


class Prediction(keras.layers.Layer):
    """A weight tensor `value` [...], repeated over the batch of its input; optionally
    through a sigmoid. Output [B, ...]."""

    def __init__(self, value, sigmoid=False, **kwargs):
        super().__init__(**kwargs)
        self.initial = np.asarray(value, np.float32)
        self.sigmoid = sigmoid

    def build(self, input_shape):
        self.value = self.add_weight(shape=self.initial.shape, name="value",
                                     initializer=keras.initializers.Constant(self.initial))

    def call(self, anchor):
        batch = tf.shape(anchor)[0]
        value = tf.tile(self.value[None], tf.concat([[batch], tf.ones_like(
            tf.shape(self.value))], 0))
        return tf.sigmoid(value) if self.sigmoid else value


class HandConfig(Config):
    NAME = "hand"
    NUM_CLASSES = 2
    LEARNING_MOMENTUM = 0.0
    WEIGHT_DECAY = 0.1
    LOSS_WEIGHTS = {"rpn_class_loss": 2.0, "rpn_bbox_loss": 1.0, "mrcnn_class_loss": 0.5,
                    "mrcnn_bbox_loss": 1.0, "mrcnn_mask_loss": 0.0}
    GRADIENT_CLIP_NORM = None


# One anchor (positive), one ROI of class 1, 1x1 masks, NUM_CLASSES = 2.
INITIAL = {
    "rpn_class_logits": [[0.0, 0.0]],                    # CE(label 1) = ln 2
    "rpn_bbox": [[0.5, 0.0, 0.0, 0.0]],                 # smooth-L1 0.125 over 4 -> 0.03125
    "mrcnn_class_logits": [[0.0, 0.0]],                  # CE(label 1) = ln 2
    "mrcnn_bbox": [[[0.0, 0.0, 0.0, 0.0],                # class 0 (not scored)
                    [2.0, 0.0, 0.0, 0.0]]],              # class 1: 1.5 over 4 -> 0.375
    "mrcnn_mask": [[[[0.0, 0.0]]]],                      # sigmoid 0.5, target 1: ln 2
}


def hand_model(config):
    """A TrainingModel whose predictions are the INITIAL weights (see Prediction), plus a
    BatchNormalization layer on an extra output: its gamma and beta are trainable
    variables of the model that no loss depends on."""
    inputs = {
        "input_rpn_match": keras.Input((1, 1), dtype="int32", name="input_rpn_match"),
        "input_rpn_bbox": keras.Input((1, 4), name="input_rpn_bbox"),
        "input_image_meta": keras.Input((12 + config.NUM_CLASSES,), name="input_image_meta"),
        "target_class_ids": keras.Input((1,), dtype="int32", name="target_class_ids"),
        "target_bbox": keras.Input((1, 4), name="target_bbox"),
        "target_mask": keras.Input((1, 1, 1), name="target_mask"),
    }
    anchor = inputs["input_rpn_bbox"]
    outputs = {name: Prediction(value, sigmoid=(name == "mrcnn_mask"), name=name)(anchor)
               for name, value in INITIAL.items()}
    outputs["target_class_ids"] = keras.layers.Identity()(inputs["target_class_ids"])
    outputs["mask_class_ids"] = keras.layers.Identity()(inputs["target_class_ids"])
    outputs["target_bbox"] = keras.layers.Identity()(inputs["target_bbox"])
    outputs["target_mask"] = keras.layers.Identity()(inputs["target_mask"])
    outputs["bn_probe"] = keras.layers.BatchNormalization(name="bn_probe")(anchor)
    return training.TrainingModel(inputs=inputs, outputs=outputs, config=config)


def hand_batch():
    meta = np.zeros((1, 14), np.float32)
    meta[0, 12:] = 1.0                                   # both classes active
    return {"input_rpn_match": np.ones((1, 1, 1), np.int32),
            "input_rpn_bbox": np.zeros((1, 1, 4), np.float32),
            "input_image_meta": meta,
            "target_class_ids": np.ones((1, 1), np.int32),
            "target_bbox": np.zeros((1, 1, 4), np.float32),
            "target_mask": np.ones((1, 1, 1, 1), np.float32)}


def weights_of(model):
    return {name: model.get_layer(name).value.numpy() for name in INITIAL}


# Gradients of the weighted losses plus decay at INITIAL, by hand:
#   rpn_class_logits: 2 * (softmax - onehot) = 2 * [0.5, -0.5]; decay 0 (weights 0)
#   rpn_bbox: 1 * 0.5 / 4 (smooth-L1 gradient d over 4 elements) + 0.1 * 2 * 0.5 / 4
#   mrcnn_class_logits: 0.5 * [0.5, -0.5]
#   mrcnn_bbox, class 1, x: 1 * 1 / 4 (|d| = 2 > 1: sign) + 0.1 * 2 * 2 / 8
#   mrcnn_mask: weight 0 for the loss, decay 0
GRADIENTS = {
    "rpn_class_logits": np.array([[1.0, -1.0]]),
    "rpn_bbox": np.array([[0.125 + 0.025, 0.0, 0.0, 0.0]]),
    "mrcnn_class_logits": np.array([[0.25, -0.25]]),
    "mrcnn_bbox": np.array([[[0.0, 0.0, 0.0, 0.0], [0.25 + 0.05, 0.0, 0.0, 0.0]]]),
    "mrcnn_mask": np.zeros((1, 1, 1, 2)),
}
GLOBAL_NORM = math.sqrt(1.0 + 1.0 + 0.15 ** 2 + 0.25 ** 2 + 0.25 ** 2 + 0.3 ** 2)


def run_one_step(config, learning_rate=0.1):
    model = hand_model(config)
    training.compile_model(model, config, learning_rate, total_steps=10)
    before = weights_of(model)
    logs = model.train_step(hand_batch())
    return model, before, weights_of(model), logs


def test_train_step_weights_the_losses_adds_decay_without_batchnorm_and_updates_by_hand():
    config = HandConfig()
    model, before, after, logs = run_one_step(config)
    # Reported losses are unweighted; "loss" is the weighted sum plus weight decay.
    expected = {"rpn_class_loss": LN2, "rpn_bbox_loss": 0.03125, "mrcnn_class_loss": LN2,
                "mrcnn_bbox_loss": 0.375, "mrcnn_mask_loss": LN2}
    for name, value in expected.items():
        assert float(logs[name]) == pytest.approx(value, rel=1e-6), name
    weighted = 2.0 * LN2 + 1.0 * 0.03125 + 0.5 * LN2 + 1.0 * 0.375 + 0.0 * LN2
    # Decay: 0.1 * sum over weights of mean(w^2): rpn_bbox 0.25 / 4, mrcnn_bbox 4 / 8;
    # bn_probe's gamma (ones) would add 0.1 * 1 if BatchNorm were decayed.
    decay = 0.1 * (0.25 / 4 + 4.0 / 8)
    assert float(logs["loss"]) == pytest.approx(weighted + decay, rel=1e-6)
    assert any(v.path.endswith("bn_probe/gamma") for v in model.trainable_variables)
    # SGD without momentum or clipping: w -= 0.1 * gradient.
    for name in INITIAL:
        np.testing.assert_allclose(after[name], before[name] - 0.1 * GRADIENTS[name],
                                   rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("mode", ["per_tensor", "global"])
def test_clipping_per_tensor_and_global_by_hand(mode):
    class Clipped(HandConfig):
        GRADIENT_CLIP_NORM = 0.5
        GRADIENT_CLIP_MODE = mode

    _, before, after, _ = run_one_step(Clipped())
    expected = {}
    for name, gradient in GRADIENTS.items():
        if mode == "per_tensor":
            # Only rpn_class_logits' gradient (norm sqrt 2) is above 0.5; the others have
            # norms 0.15, 0.354, 0.3 and 0.
            norm = math.sqrt(2.0) if name == "rpn_class_logits" else 0.0
            scale = 0.5 / norm if norm > 0.5 else 1.0
        else:
            scale = 0.5 / GLOBAL_NORM                     # 0.5 / 1.4958
        expected[name] = before[name] - 0.1 * scale * gradient
    for name in INITIAL:
        np.testing.assert_allclose(after[name], expected[name], rtol=1e-5, atol=1e-7,
                                   err_msg=name)
    moved = before["rpn_class_logits"] - after["rpn_class_logits"]
    assert moved[0, 0] == pytest.approx(0.1 * (0.5 / math.sqrt(2.0) if mode == "per_tensor"
                                               else 0.5 / GLOBAL_NORM), rel=1e-5)


def test_warm_up_scales_the_first_update_of_the_train_step():
    class WarmUp(HandConfig):
        LEARNING_RATE_WARMUP_STEPS = 4

    _, before, after, _ = run_one_step(WarmUp())
    # Step 0 of a 4-step warm-up: lr = 0.1 * (0 + 1) / 4.
    np.testing.assert_allclose(after["rpn_class_logits"],
                               before["rpn_class_logits"] - 0.025 * GRADIENTS["rpn_class_logits"],
                               rtol=1e-6)


def test_weight_decay_takes_every_trainable_weight_but_batchnorm_divided_by_its_size():
    inputs = keras.Input((3, 3, 1))
    x = keras.layers.Conv2D(2, 1, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(1, name="dense")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("conv").set_weights([np.array([[[[1.0, 2.0]]]]), np.array([3.0, 0.0])])
    model.get_layer("bn").set_weights([np.full(2, 5.0), np.full(2, 7.0),
                                       np.zeros(2), np.ones(2)])
    model.get_layer("dense").set_weights([np.full((18, 1), 2.0), np.array([-1.0])])
    decayed = sorted(v.path for v in model.trainable_variables if training.is_decayed(v))
    assert decayed == ["conv/bias", "conv/kernel", "dense/bias", "dense/kernel"]
    # conv kernel (1 + 4) / 2, conv bias 9 / 2, dense kernel 18 * 4 / 18, dense bias 1 / 1;
    # BatchNorm's gamma (5) and beta (7) are left out, its moving statistics are not trained.
    expected = 0.01 * (2.5 + 4.5 + 4.0 + 1.0)
    value = training.weight_decay_loss(model.trainable_variables, 0.01)
    assert float(value) == pytest.approx(expected, rel=1e-6)


def _two_momentum_steps(config, momentum):
    variable = tf.Variable([1.0])
    optimizer = training.make_optimizer(config, 0.1, total_steps=10, momentum=momentum)
    for _ in range(2):
        optimizer.apply([tf.constant([1.0])], [variable])
    return float(variable.numpy()[0])


def test_momentum_argument_else_the_configs_by_hand():
    class Momentum(HandConfig):
        LEARNING_MOMENTUM = 0.9

    config = Momentum()
    # v1 = -0.1 * g, v2 = m * v1 - 0.1 * g, w = 1 + v1 + v2 with g = 1.
    assert _two_momentum_steps(config, 0.5) == pytest.approx(1.0 - 0.1 - 0.15, rel=1e-6)
    assert _two_momentum_steps(config, None) == pytest.approx(1.0 - 0.1 - 0.19, rel=1e-6)
    assert _two_momentum_steps(config, 0.0) == pytest.approx(1.0 - 0.2, rel=1e-6)


def test_maskrcnn_compile_uses_its_momentum_argument(tmp_path):
    model = modellib.MaskRCNN("training", TinyConfig(), str(tmp_path))
    model.compile(0.01, momentum=0.5)
    assert model.keras_model.optimizer.momentum == 0.5
    model.compile(0.01)
    assert model.keras_model.optimizer.momentum == TinyConfig.LEARNING_MOMENTUM == 0.9

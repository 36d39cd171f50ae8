"""Training machinery: the train/test steps, optimiser, schedule and their guards.

`TrainingModel` is the training graph (a functional keras.Model) with a custom
`train_step`: it computes the five Mask R-CNN losses from the graph's outputs, adds
upstream's weight decay, clips gradients and applies them only when every loss and
gradient is finite. A step with a non-finite value leaves the weights untouched, and
`NonFiniteGuard` stops training, naming the step and the loss.
"""
import math
import re

import keras
import numpy as np
import tensorflow as tf

from mrcnn.config import LOSS_NAMES
from mrcnn.nn import losses as loss_fns
from mrcnn import weights_io

# Upstream's layer selections for `train(layers=...)`.
LAYER_REGEX = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}
_STAGE_OF_SELECTOR = {"3+": 3, "4+": 4, "5+": 5}


class TrainingDivergedError(RuntimeError):
    """Training stopped because a loss or gradient became NaN or infinite."""


def compute_losses(inputs, outputs):
    """The five Mask R-CNN losses of one batch.

    Args:
        inputs: dict of the training graph's inputs (input_rpn_match, input_rpn_bbox,
            input_image_meta, ...).
        outputs: dict of the training graph's outputs.
    Returns:
        dict loss name -> float32 scalar, keys as config.LOSS_NAMES.
    """
    active_class_ids = inputs["input_image_meta"][:, 12:]
    return {
        "rpn_class_loss": loss_fns.rpn_class_loss(
            inputs["input_rpn_match"], outputs["rpn_class_logits"]),
        "rpn_bbox_loss": loss_fns.rpn_bbox_loss(
            inputs["input_rpn_bbox"], inputs["input_rpn_match"], outputs["rpn_bbox"]),
        "mrcnn_class_loss": loss_fns.mrcnn_class_loss(
            outputs["target_class_ids"], outputs["mrcnn_class_logits"], active_class_ids),
        "mrcnn_bbox_loss": loss_fns.mrcnn_bbox_loss(
            outputs["target_bbox"], outputs["target_class_ids"], outputs["mrcnn_bbox"]),
        "mrcnn_mask_loss": loss_fns.mrcnn_mask_loss(
            outputs["target_mask"], outputs["mask_class_ids"], outputs["mrcnn_mask"]),
    }


def is_decayed(variable):
    """Upstream decays every trainable weight except BatchNorm's gamma and beta."""
    name = variable.path if hasattr(variable, "path") else variable.name
    leaf = name.split("/")[-1].split(":")[0]
    return leaf not in ("gamma", "beta")


def weight_decay_loss(variables, weight_decay):
    """Upstream's regulariser: sum over weights of WEIGHT_DECAY * sum(w^2) / size(w).

    Dividing by the tensor's size makes the penalty a mean square per tensor rather than
    the usual sum; it is kept so that upstream's recipes behave the same.
    """
    terms = [weight_decay * tf.reduce_sum(tf.square(tf.cast(v, tf.float32)))
             / tf.cast(tf.size(v), tf.float32)
             for v in variables if is_decayed(v)]
    return tf.add_n(terms) if terms else tf.constant(0.0)


def _unpack(data):
    """Keras hands the step either `x` or a tuple `(x,)`/`(x, y)`: return x."""
    while isinstance(data, (tuple, list)):
        data = data[0]
    return data


class TrainingModel(keras.Model):
    """The functional training graph with Mask R-CNN's train and test steps.

    Construct with `TrainingModel(inputs=..., outputs=..., config=config)`.
    """

    def __init__(self, *args, config=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.mrcnn_config = config
        self.loss_trackers = {name: keras.metrics.Mean(name=name)
                              for name in ("loss",) + LOSS_NAMES}
        # Values of the latest step, read by NonFiniteGuard: total loss, then LOSS_NAMES,
        # then 1.0 if every gradient was finite.
        self.last_step_values = tf.Variable(
            tf.zeros([len(LOSS_NAMES) + 2]), trainable=False, name="last_step_values")

    @property
    def metrics(self):
        return list(self.loss_trackers.values())

    def _weighted_losses(self, inputs, training):
        outputs = self(inputs, training=training)
        losses = {name: tf.cast(value, tf.float32)
                  for name, value in compute_losses(inputs, outputs).items()}
        weights = self.mrcnn_config.LOSS_WEIGHTS
        total = tf.add_n([losses[name] * float(weights.get(name, 1.0)) for name in LOSS_NAMES])
        return total, losses

    def _forward_state(self):
        """Variables the forward pass itself updates: moving statistics of trained BN."""
        state = []
        for layer in iter_layers(self):
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
                state.extend([layer.moving_mean, layer.moving_variance])
        return state

    def train_step(self, data):
        inputs = _unpack(data)
        variables = self.trainable_variables
        state = self._forward_state()
        saved_state = [tf.identity(v) for v in state]
        with tf.GradientTape() as tape:
            total, losses = self._weighted_losses(inputs, training=True)
            total = total + weight_decay_loss(variables, self.mrcnn_config.WEIGHT_DECAY)
        gradients = tape.gradient(total, variables)
        gradients_finite = tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(g)) for g in gradients if g is not None])
        losses_finite = tf.reduce_all(
            [tf.math.is_finite(total)] + [tf.math.is_finite(v) for v in losses.values()])
        finite = tf.logical_and(gradients_finite, losses_finite)
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]

        def apply():
            self.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
            return tf.constant(True)

        def restore():
            # Undo the forward pass's BatchNorm updates: the step is dropped whole.
            for variable, value in zip(state, saved_state):
                variable.assign(value)
            return tf.constant(False)

        tf.cond(finite, apply, restore)
        self.last_step_values.assign(tf.stack(
            [total] + [losses[name] for name in LOSS_NAMES]
            + [tf.cast(gradients_finite, tf.float32)]))
        return self._update_trackers(total, losses, finite)

    def test_step(self, data):
        inputs = _unpack(data)
        total, losses = self._weighted_losses(inputs, training=False)
        return self._update_trackers(total, losses, tf.math.is_finite(total))

    def _update_trackers(self, total, losses, finite):
        # A skipped non-finite step must not poison the epoch's running means.
        weight = tf.cast(finite, tf.float32)
        self.loss_trackers["loss"].update_state(tf.where(finite, total, 0.0),
                                                sample_weight=weight)
        for name in LOSS_NAMES:
            value = tf.where(finite, losses[name], 0.0)
            self.loss_trackers[name].update_state(value, sample_weight=weight)
        return {name: tracker.result() for name, tracker in self.loss_trackers.items()}


class LearningRateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then a constant or cosine-decayed learning rate.

    lr(step) = base * min(1, (step + 1) / warmup_steps) * decay(step), where decay is 1
    ("constant") or min_factor + (1 - min_factor) * (1 + cos(pi * t)) / 2 with
    t = min(step / total_steps, 1) ("cosine"). Steps count optimizer updates of one
    `train()` call.
    """

    def __init__(self, base_rate, warmup_steps=0, schedule="constant", total_steps=1,
                 min_factor=0.0):
        self.base_rate = float(base_rate)
        self.warmup_steps = int(warmup_steps)
        self.schedule = schedule
        self.total_steps = max(int(total_steps), 1)
        self.min_factor = float(min_factor)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rate = tf.constant(self.base_rate, tf.float32)
        if self.warmup_steps > 0:
            rate *= tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        if self.schedule == "cosine":
            progress = tf.minimum(step / float(self.total_steps), 1.0)
            cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
            rate *= self.min_factor + (1.0 - self.min_factor) * cosine
        return rate

    def get_config(self):
        return {"base_rate": self.base_rate, "warmup_steps": self.warmup_steps,
                "schedule": self.schedule, "total_steps": self.total_steps,
                "min_factor": self.min_factor}


def make_optimizer(config, learning_rate, total_steps):
    """SGD with momentum, upstream's gradient clipping and the configured schedule."""
    schedule = LearningRateSchedule(learning_rate, config.LEARNING_RATE_WARMUP_STEPS,
                                    config.LEARNING_RATE_SCHEDULE, total_steps,
                                    config.LEARNING_RATE_MIN_FACTOR)
    clip = {}
    if config.GRADIENT_CLIP_NORM:
        key = "clipnorm" if config.GRADIENT_CLIP_MODE == "per_tensor" else "global_clipnorm"
        clip[key] = float(config.GRADIENT_CLIP_NORM)
    return keras.optimizers.SGD(learning_rate=schedule, momentum=config.LEARNING_MOMENTUM,
                                **clip)


# --- Layer selection --------------------------------------------------------------------

def resolve_layer_regex(layers):
    """"heads" | "3+" | "4+" | "5+" | "all" -> upstream's regex; anything else is a regex."""
    return LAYER_REGEX.get(layers, layers)


def iter_layers(model):
    """Every layer of `model`, entering nested models (upstream's `rpn_model`)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def set_trainable(model, layers, verbose=0):
    """Make the layers whose names fully match the selection trainable, freeze the rest.

    Layers without weights are left alone. Frozen BatchNorm (TRAIN_BN=False) stays frozen.

    Raises:
        ValueError: a stage selector ("3+", "4+", "5+") on a backbone without ResNet stage
            names, or a regex that selects no weight-carrying layer.
    """
    regex = resolve_layer_regex(layers)
    weighted = [layer for layer in iter_layers(model) if layer.weights]
    if layers in _STAGE_OF_SELECTOR:
        stage = _STAGE_OF_SELECTOR[layers]
        if not any(re.fullmatch(rf"res{stage}.*", layer.name) for layer in weighted):
            raise ValueError(
                f"layers={layers!r} selects ResNet stages by name (res{stage}..., bn{stage}...), "
                f"but this backbone has no layer named so; pass a regex of layer names instead")
    selected = []
    for layer in weighted:
        trainable = bool(re.fullmatch(regex, layer.name))
        layer.trainable = trainable
        if trainable:
            selected.append(layer.name)
        if verbose > 0 and trainable:
            print(f"{layer.name:30} ({layer.__class__.__name__})")
    if not selected:
        raise ValueError(f"layers={layers!r} (regex {regex!r}) selects no layer with weights")
    return selected


# --- Callbacks --------------------------------------------------------------------------

class NonFiniteGuard(keras.callbacks.Callback):
    """Stop training at the first step whose loss or gradients are not finite.

    The step itself was not applied (TrainingModel skips it), so the weights are those of
    the last finite step. `message` names the epoch, the step and the losses at fault.
    """

    def __init__(self):
        super().__init__()
        self.message = None
        self._epoch = 0

    @property
    def tripped(self):
        return self.message is not None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        values = np.asarray(self.model.last_step_values.numpy())
        total, losses, gradients_finite = values[0], values[1:-1], values[-1]
        bad = [f"{name}={value}" for name, value in zip(LOSS_NAMES, losses)
               if not np.isfinite(value)]
        if not np.isfinite(total) and not bad:
            bad.append(f"weight decay or total loss={total}")
        if not bad and gradients_finite >= 1.0:
            return
        cause = ", ".join(bad) if bad else "a gradient (losses were finite)"
        self.message = (f"non-finite {cause} at epoch {self._epoch + 1}, step {batch + 1}; "
                        f"training stopped, the step was not applied")
        self.model.stop_training = True


class CheckpointSaver(keras.callbacks.Callback):
    """Write the weights after every epoch, name-keyed and atomically.

    Skips the epoch (with a warning) when the NonFiniteGuard tripped during it or when any
    weight is not finite, so `find_last()` always finds a usable checkpoint.
    """

    def __init__(self, path_template, guard, config_json=""):
        super().__init__()
        self.path_template = path_template
        self.guard = guard
        self.config_json = config_json
        self.saved = []

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.tripped:
            print(f"Not saving epoch {epoch + 1}: {self.guard.message}")
            return
        if not weights_io.all_finite(self.model):
            print(f"Not saving epoch {epoch + 1}: the weights are not finite")
            return
        path = self.path_template.format(epoch=epoch + 1)
        weights_io.save_weights(self.model, path,
                                attributes={"epoch": epoch + 1, "config": self.config_json})
        self.saved.append(path)

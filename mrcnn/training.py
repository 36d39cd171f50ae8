"""Training machinery: the train/test steps, optimiser, schedule and their guards.

`TrainingModel` is the training graph (a functional keras.Model) with a custom
`train_step`: it computes the five Mask R-CNN losses from the graph's outputs, adds
upstream's weight decay, clips gradients and applies them only when every loss and
gradient is finite. A step with a non-finite value leaves the weights untouched, and
`NonFiniteGuard` stops training, naming the step and the loss.

Under a tf.distribute strategy with several replicas the step computes what one device
would compute on the global batch: each replica contributes its share of every loss
(weighted by how many elements it scores, see `replica_loss_shares`), the gradients are
summed over replicas *before* they are clipped and checked, and the reported losses are
those of the global batch. Under "mixed_float16" the loss is scaled by the
LossScaleOptimizer's dynamic scale; a step whose scaled gradients overflow is skipped
and the scale halved, as Keras does, without stopping training.
"""
import contextlib
import logging
import math
import os
import re

import keras
import numpy as np
import tensorflow as tf

from mrcnn.config import KEYPOINT_LOSS_NAME, LOSS_NAMES
from mrcnn.nn import losses as loss_fns
from mrcnn.nn.keypoint_head import uses_keypoints, uses_masks
from mrcnn.nn.keypoint_loss import keypoint_target_count, mrcnn_keypoint_loss
from mrcnn.nn import class_loss
from mrcnn import distribute, weights_io
from mrcnn.settable_rate import ScalableScheduleRate
from mrcnn.schedule import LearningRateSchedule  # noqa: F401 (part of this module's API)

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


def loss_names(config):
    """The losses a config's training graph has: config.LOSS_NAMES, without
    mrcnn_mask_loss for keypoint-only models, then mrcnn_keypoint_loss for keypoint
    models."""
    names = [name for name in LOSS_NAMES if uses_masks(config) or name != "mrcnn_mask_loss"]
    return tuple(names) + ((KEYPOINT_LOSS_NAME,) if uses_keypoints(config) else ())


def loss_weight(config, name):
    """The weight of a loss in the total: LOSS_WEIGHTS (1.0 when absent), and
    KEYPOINT_LOSS_WEIGHT for the keypoint loss."""
    if name == KEYPOINT_LOSS_NAME:
        return float(config.LOSS_WEIGHTS.get(name, config.KEYPOINT_LOSS_WEIGHT))
    return float(config.LOSS_WEIGHTS.get(name, 1.0))


def compute_losses(inputs, outputs, config=None):
    """The Mask R-CNN losses of one batch: the five, without the mask loss when the graph
    has no mask head (keypoint-only), plus mrcnn_keypoint_loss with a keypoint head.

    Args:
        inputs: dict of the training graph's inputs (input_rpn_match, input_rpn_bbox,
            input_image_meta, ...).
        outputs: dict of the training graph's outputs.
        config: its CLASS_LOSS_WEIGHTS, CLASS_LOSS and FOCAL_GAMMA shape the classifier
            loss (mrcnn.nn.class_loss); None: upstream's cross-entropy.
    Returns:
        dict loss name -> float32 scalar, keys as `loss_names(config)`.
    """
    active_class_ids = inputs["input_image_meta"][:, 12:]
    losses = {
        "rpn_class_loss": loss_fns.rpn_class_loss(
            inputs["input_rpn_match"], outputs["rpn_class_logits"]),
        "rpn_bbox_loss": loss_fns.rpn_bbox_loss(
            inputs["input_rpn_bbox"], inputs["input_rpn_match"], outputs["rpn_bbox"]),
        "mrcnn_class_loss": class_loss.classifier_loss(
            outputs["target_class_ids"], outputs["mrcnn_class_logits"], active_class_ids,
            **class_loss.class_loss_settings(config)),
        "mrcnn_bbox_loss": loss_fns.mrcnn_bbox_loss(
            outputs["target_bbox"], outputs["target_class_ids"], outputs["mrcnn_bbox"]),
    }
    if "mrcnn_mask" in outputs:
        losses["mrcnn_mask_loss"] = loss_fns.mrcnn_mask_loss(
            outputs["target_mask"], outputs["mask_class_ids"], outputs["mrcnn_mask"])
    if "mrcnn_keypoint_logits" in outputs:
        losses[KEYPOINT_LOSS_NAME] = mrcnn_keypoint_loss(
            outputs["target_keypoints"], outputs["target_keypoint_weights"],
            outputs["mrcnn_keypoint_logits"])
    return losses


def loss_counts(inputs, outputs, config=None):
    """How many elements each loss of `compute_losses` averages over, for one batch.

    Every Mask R-CNN loss is a mean over the elements it scores (labelled anchors,
    positive anchors, active ROIs, positive ROIs), so the loss of a batch split into
    parts is the count-weighted mean of the parts' losses. These counts mirror the
    denominators in mrcnn.nn.losses (a constant factor per element, such as the 4 box
    coordinates or the h*w mask pixels, cancels out and is left out); the classifier's
    "count" is its sum of ROI weights (config.CLASS_LOSS_WEIGHTS, see nn/class_loss.py).

    Returns:
        dict loss name -> float32 scalar count, keys as `compute_losses`'.
    """
    match = tf.squeeze(tf.cast(inputs["input_rpn_match"], tf.int32), -1)        # [B, A]
    positive = tf.equal(match, 1)
    rank = tf.cumsum(tf.cast(positive, tf.int32), axis=1, exclusive=True)
    bbox_rows = tf.shape(inputs["input_rpn_bbox"])[1]
    active = class_loss.roi_class_weights(
        outputs["target_class_ids"], outputs["mrcnn_class_logits"],
        inputs["input_image_meta"][:, 12:],
        class_loss.class_loss_settings(config).get("class_weights"))            # [B, T]

    def count(mask):
        return tf.reduce_sum(tf.cast(mask, tf.float32))

    counts = {
        "rpn_class_loss": count(tf.not_equal(match, 0)),
        "rpn_bbox_loss": count(positive & (rank < bbox_rows)),
        "mrcnn_class_loss": tf.reduce_sum(active),
        "mrcnn_bbox_loss": count(tf.cast(outputs["target_class_ids"], tf.int32) > 0),
    }
    if "mrcnn_mask" in outputs:
        counts["mrcnn_mask_loss"] = count(tf.cast(outputs["mask_class_ids"], tf.int32) > 0)
    if "mrcnn_keypoint_logits" in outputs:
        counts[KEYPOINT_LOSS_NAME] = keypoint_target_count(outputs["target_keypoint_weights"])
    return counts


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


# --- Replicas -------------------------------------------------------------------------

def num_replicas():
    """Replicas of the current tf.distribute strategy that run one step together."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def sum_over_replicas(values):
    """All-reduce (sum) a tensor or a nest of tensors over the replicas of the step.

    Identity with a single replica. Must run in a replica context (a train/test step).
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return context.all_reduce(tf.distribute.ReduceOp.SUM, values)


def replica_loss_shares(losses, counts):
    """This replica's share of each loss of the global batch.

    With replica r scoring N_r elements at mean loss L_r, the loss of the global batch is
    sum_r L_r N_r / sum_r N_r; replica r's share is L_r N_r / sum_r N_r, so the shares
    (and their gradients) summed over replicas are the loss (and gradient) one device
    would compute on the whole batch. Dividing by the number of replicas instead would
    give the mean of the replicas' means, which differs whenever replicas score
    different numbers of positives. With one replica the share is the loss itself.

    Args:
        losses, counts: dicts loss name -> float32 scalar of this replica.
    Returns:
        dict loss name -> float32 scalar share.
    """
    if num_replicas() == 1:
        return dict(losses)
    names = list(losses)
    local = tf.stack([counts[name] for name in names])
    totals = tf.stop_gradient(sum_over_replicas(local))
    weights = tf.stop_gradient(tf.math.divide_no_nan(local, totals))
    return {name: losses[name] * weights[i] for i, name in enumerate(names)}


def _uses_loss_scaling(optimizer):
    return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def _sums_over_replicas_itself(optimizer):
    """Whether `optimizer.apply` would all-reduce the gradients it is given."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return not getattr(inner, "takes_summed_gradients", False)


def _all_finite(tensors):
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


class TrainingModel(keras.Model):
    """The functional training graph with Mask R-CNN's train and test steps.

    Construct with `TrainingModel(inputs=..., outputs=..., config=config)`, inside the
    strategy's scope when training on several replicas.
    """

    def __init__(self, *args, config=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.mrcnn_config = config
        self.loss_names = loss_names(config) if config is not None else LOSS_NAMES
        self.loss_trackers = {name: keras.metrics.Mean(name=name)
                              for name in ("loss",) + self.loss_names}
        # Values of the latest step, read by NonFiniteGuard: total loss, then loss_names,
        # then 1.0 if the gradients were usable (finite, or an overflow of the loss scale
        # that the step handled). Every replica writes the same, all-reduced values.
        self.last_step_values = tf.Variable(
            tf.zeros([len(self.loss_names) + 2]), trainable=False, name="last_step_values")
        # The first non-finite step since NonFiniteGuard reset it: its step in the epoch
        # (1-based; 0: none yet), then the values as in last_step_values. Kept on the
        # device, so the guard reads it only every few steps (see NonFiniteGuard).
        self.first_non_finite = tf.Variable(
            tf.zeros([len(self.loss_names) + 3]), trainable=False, name="first_non_finite")
        # Steps run in the current epoch (NonFiniteGuard resets it at each epoch start).
        self.epoch_steps = tf.Variable(0.0, trainable=False, name="epoch_steps")
        # While True (NonFiniteGuard sets it for a fit), every step after the first
        # non-finite one is skipped too, so the weights stay those before it until the
        # guard sees the record and stops training.
        self.halt_on_non_finite = tf.Variable(False, trainable=False,
                                              name="halt_on_non_finite")

    @property
    def metrics(self):
        return list(self.loss_trackers.values())

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy Keras averages the first distributed batch over replicas to
        # build the model symbolically, which fails on the boolean GT masks. A built
        # functional graph with a built optimizer has nothing left to build.
        optimizer = getattr(self, "optimizer", None)
        if self.built and optimizer is not None and optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _loss_shares(self, inputs, training):
        """This replica's shares of the global batch's losses (dict, float32 scalars);
        summed over replicas they are the batch's losses (see replica_loss_shares)."""
        outputs = self(inputs, training=training)
        losses = {name: tf.cast(value, tf.float32)
                  for name, value in compute_losses(inputs, outputs,
                                                    self.mrcnn_config).items()}
        counts = (loss_counts(inputs, outputs, self.mrcnn_config) if num_replicas() > 1
                  else None)
        return replica_loss_shares(losses, counts)

    def _weighted_total(self, losses):
        return tf.add_n([losses[name] * loss_weight(self.mrcnn_config, name)
                         for name in self.loss_names])

    def _forward_state(self):
        """Variables the forward pass itself updates: moving statistics of trained BN."""
        state = []
        for layer in iter_layers(self):
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
                state.extend([layer.moving_mean, layer.moving_variance])
        return state

    def train_step(self, data):
        """One optimizer step on this replica's share of the global batch.

        Losses: this replica's shares (see replica_loss_shares) plus weight decay / R,
        times the dynamic scale under loss scaling. Gradients: summed over the R
        replicas, unscaled, then checked and (inside the optimizer) clipped, so each
        replica applies the same update one device would on the global batch. Returns
        the running means of the global batch's losses.
        """
        inputs = _unpack(data)
        replicas = num_replicas()
        if replicas > 1 and _sums_over_replicas_itself(self.optimizer):
            raise ValueError(
                "Training on several replicas needs an optimizer from "
                "mrcnn.training.make_optimizer: the train step sums the gradients over "
                "replicas before clipping them, and a plain Keras optimizer would sum "
                "them again")
        loss_scaling = _uses_loss_scaling(self.optimizer)
        variables = self.trainable_variables
        state = self._forward_state()
        saved_state = [tf.identity(v) for v in state]
        with tf.GradientTape() as tape:
            shares = self._loss_shares(inputs, training=True)
            decay = weight_decay_loss(variables, self.mrcnn_config.WEIGHT_DECAY)
            # Summed over replicas, this is the total loss of the global batch.
            objective = self._weighted_total(shares) + decay / float(replicas)
            if loss_scaling:
                objective = self.optimizer.scale_loss(objective)
        gradients = tape.gradient(objective, variables)
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        # Summed before anything looks at them, so clipping and the finiteness check see
        # the global batch's gradient and every replica takes the same branch below.
        summed = sum_over_replicas([g for g, _ in pairs])
        unscaled = summed
        if loss_scaling:
            unscaled = [g / self.optimizer.dynamic_scale for g in summed]
        losses = sum_over_replicas(shares)
        total = self._weighted_total(losses) + decay

        gradients_finite = _all_finite(unscaled)
        losses_finite = _all_finite([total] + list(losses.values()))
        finite = tf.logical_and(gradients_finite, losses_finite)
        overflow_handled = tf.constant(False)
        if loss_scaling:
            # An overflow of a scale above 1 is the scale's fault, not the model's.
            overflow_handled = (losses_finite & tf.logical_not(gradients_finite)
                                & (self.optimizer.dynamic_scale > 1.0))
        halted = self.halt_on_non_finite & (self.first_non_finite[0] > 0.0)
        trained = [v for _, v in pairs]

        def apply(gradients, saved, overflow):
            del saved, overflow
            self._apply_gradients(gradients, trained)

        def restore(gradients, saved, overflow):
            del gradients
            # Undo the forward pass's BatchNorm updates: the step is dropped whole.
            for variable, value in zip(state, saved):
                variable.assign(value)
            if loss_scaling:
                _halve_loss_scale(self.optimizer, overflow)

        run_branch(finite & tf.logical_not(halted), apply, restore,
                   (summed, saved_state, overflow_handled))
        gradients_usable = tf.logical_or(gradients_finite, overflow_handled)
        values = tf.stack([total] + [losses[name] for name in self.loss_names]
                          + [tf.cast(gradients_usable, tf.float32)])
        self.last_step_values.assign(values)
        self._record_non_finite(values, losses_finite & gradients_usable)
        return self._update_trackers(total, losses, losses_finite)

    def _record_non_finite(self, values, usable):
        """Count the step; keep the values of the first step that was not `usable`."""
        step = self.epoch_steps + 1.0
        self.epoch_steps.assign(step)
        first = tf.logical_not(usable) & tf.equal(self.first_non_finite[0], 0.0)
        self.first_non_finite.assign(tf.where(
            first, tf.concat([tf.reshape(step, [1]), values], 0), self.first_non_finite))

    def _apply_gradients(self, gradients, variables):
        """Apply gradients summed over replicas (and scaled, under loss scaling)."""
        if not _uses_loss_scaling(self.optimizer):
            self.optimizer.apply(gradients, variables)
            return
        scaling = self.optimizer
        scale = scaling.dynamic_scale
        scaling.inner_optimizer.apply([g / scale for g in gradients], variables)
        _grow_loss_scale(scaling)

    def test_step(self, data):
        inputs = _unpack(data)
        shares = self._loss_shares(inputs, training=False)
        losses = sum_over_replicas(shares)
        total = self._weighted_total(losses)
        return self._update_trackers(total, losses, _all_finite([total]))

    def _update_trackers(self, total, losses, finite):
        # A step with a non-finite loss must not poison the epoch's running means.
        weight = tf.cast(finite, tf.float32)
        self.loss_trackers["loss"].update_state(tf.where(finite, total, 0.0),
                                                sample_weight=weight)
        for name in self.loss_names:
            value = tf.where(finite, losses[name], 0.0)
            self.loss_trackers[name].update_state(value, sample_weight=weight)
        logs = {name: tracker.result() for name, tracker in self.loss_trackers.items()}
        if distribute.is_multi_worker(self.distribute_strategy):
            # Keras' fit reduces each log over workers along axis 0, which a scalar lacks
            # (tensorflow/tensorflow#72388): one element reduces to the same scalar.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs


def run_branch(condition, on_true, on_false, args):
    """Run on_true(*args) or on_false(*args) on every replica, as `condition` says.

    `condition` must be the same on every replica (computed from all-reduced values).
    The branches may synchronise replicas (an optimizer update does). Strategies that
    synchronise through merge_call (MirroredStrategy without collective ops) cannot
    merge inside a tf.cond, so there the cond runs in cross-replica context and each
    branch goes back to the replicas, as keras' LossScaleOptimizer does. Tensors the
    branches need must therefore come in `args`, not through closures (variables may).
    """
    def branch(fn, call):
        def run():
            call(fn)
            return tf.constant(True)
        return run

    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(condition, branch(on_true, lambda fn: fn(*args)),
                branch(on_false, lambda fn: fn(*args)))
        return

    def cross_replica(distribution, condition, *values):
        condition = distribution.experimental_local_results(condition)[0]

        def on_replicas(fn):
            distribution.extended.call_for_each_replica(fn, args=values)

        tf.cond(condition, branch(on_true, on_replicas), branch(on_false, on_replicas))

    tf.distribute.get_replica_context().merge_call(cross_replica,
                                                   args=(condition,) + tuple(args))


def _grow_loss_scale(optimizer):
    """After an applied step, double the dynamic loss scale every dynamic_growth_steps
    steps (what keras.optimizers.LossScaleOptimizer does with finite gradients)."""
    def grow():
        optimizer.step_counter.assign(0)
        optimizer.dynamic_scale.assign(optimizer.dynamic_scale * 2.0)
        return tf.constant(True)

    def count():
        optimizer.step_counter.assign_add(1)
        return tf.constant(False)

    tf.cond(tf.equal(optimizer.step_counter, optimizer.dynamic_growth_steps - 1), grow, count)


def _halve_loss_scale(optimizer, overflow):
    """After a step skipped for overflowing scaled gradients, halve the dynamic scale
    (what keras.optimizers.LossScaleOptimizer does with non-finite gradients)."""
    def halve():
        optimizer.step_counter.assign(0)
        optimizer.dynamic_scale.assign(optimizer.dynamic_scale * 0.5)
        return tf.constant(True)

    tf.cond(overflow, halve, lambda: tf.constant(False))


@keras.saving.register_keras_serializable(package="mrcnn")
class SummedGradientSGD(ScalableScheduleRate, keras.optimizers.SGD):
    """SGD for gradients that the train step has already summed over replicas.

    Keras' TensorFlow optimizers clip each replica's gradient inside `apply` and only
    then all-reduce the clipped gradients. `TrainingModel.train_step` sums them first,
    so that clipping (per tensor or global) and the finiteness check act on the
    gradient of the whole global batch, exactly as on one device; this optimizer
    therefore leaves out its own all-reduce. Its clipping then runs on the summed
    gradient. On one replica it is plain SGD. Its scheduled learning rate can be set
    (e.g. by keras.callbacks.ReduceLROnPlateau), which scales the schedule
    (mrcnn.settable_rate).
    """

    takes_summed_gradients = True

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)


def make_optimizer(config, learning_rate, total_steps, momentum=None, first_step=0):
    """SGD with momentum, upstream's gradient clipping and the configured schedule.

    Args:
        learning_rate: the stage's base learning rate.
        total_steps: optimizer steps of the whole stage (the cosine decay's length).
        momentum: SGD momentum; None: config.LEARNING_MOMENTUM.
        first_step: the stage's steps taken before this optimizer's first update (a
            resumed stage continues its schedule there; see mrcnn.schedule).
    Under config.MIXED_PRECISION == "mixed_float16" the SGD is wrapped in a
    keras.optimizers.LossScaleOptimizer (dynamic loss scale). Create it inside the
    strategy's scope when training on several replicas (see `compile_model`).
    """
    schedule = LearningRateSchedule(learning_rate, config.LEARNING_RATE_WARMUP_STEPS,
                                    config.LEARNING_RATE_SCHEDULE, total_steps,
                                    config.LEARNING_RATE_MIN_FACTOR, first_step=first_step)
    clip = {}
    if config.GRADIENT_CLIP_NORM:
        key = "clipnorm" if config.GRADIENT_CLIP_MODE == "per_tensor" else "global_clipnorm"
        clip[key] = float(config.GRADIENT_CLIP_NORM)
    if momentum is None:
        momentum = config.LEARNING_MOMENTUM
    optimizer = SummedGradientSGD(learning_rate=schedule, momentum=float(momentum), **clip)
    if getattr(config, "MIXED_PRECISION", None) == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def compile_model(model, config, learning_rate, total_steps=1, momentum=None, first_step=0,
                  steps_per_execution=1):
    """Give `model` a fresh optimiser from `make_optimizer` and build it.

    Runs in the model's tf.distribute strategy (the one it was built under), so the
    optimiser's variables are mirrored like the model's. `steps_per_execution` optimizer
    steps run in one call of the training function, between two calls of the callbacks'
    batch hooks (see `steps_per_execution`).
    Returns:
        the optimiser.
    """
    with model.distribute_strategy.scope():
        optimizer = make_optimizer(config, learning_rate, total_steps, momentum=momentum,
                                   first_step=first_step)
        model.compile(optimizer=optimizer, jit_compile=False, run_eagerly=False,
                      steps_per_execution=int(steps_per_execution))
        optimizer.build(model.trainable_variables)
    return optimizer


def steps_per_execution(config, replicas=1):
    """Optimizer steps per call of the training function: config.LOG_EVERY_N_STEPS, rounded
    down to a divisor of STEPS_PER_EPOCH so that every epoch ends on a logged step.

    Keras reads the losses back from the device (a host synchronisation) and runs the
    callbacks' batch hooks (progress bar, TensorBoard, the divergence check) once per call,
    so they all happen every this many steps. With several replicas it is 1: Keras' loop
    of several steps fails under tf.distribute's MirroredStrategy on this TensorFlow
    ("You must feed a value for placeholder tensor", keras-team/keras#19246).
    """
    if int(replicas) > 1:
        return 1
    every = int(getattr(config, "LOG_EVERY_N_STEPS", 1))
    period = int(config.STEPS_PER_EPOCH)
    return max(d for d in range(1, min(every, period) + 1) if period % d == 0)


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
    """Stop training after the first step whose loss or gradients are not finite.

    The step itself was not applied (TrainingModel skips it), nor was any later step of
    the same fit (the guard sets the model's `halt_on_non_finite`), so the weights are
    those of the last finite step before it. The step is recorded on the device; the
    guard reads the record at each batch hook (every LOG_EVERY_N_STEPS steps in `train`)
    and at each epoch end, before CheckpointSaver runs, and then stops training.
    `message` names the epoch, the step and the losses at fault.
    """

    def __init__(self):
        super().__init__()
        self.message = None
        self._epoch = 0

    @property
    def tripped(self):
        return self.message is not None

    def on_train_begin(self, logs=None):
        self.model.first_non_finite.assign(tf.zeros_like(self.model.first_non_finite))
        self.model.halt_on_non_finite.assign(True)

    def on_train_end(self, logs=None):
        self.model.halt_on_non_finite.assign(False)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self.model.epoch_steps.assign(0.0)

    def on_train_batch_end(self, batch, logs=None):
        self.check()

    def on_epoch_end(self, epoch, logs=None):
        self.check()

    def check(self):
        """Read the device's record of a non-finite step; stop training if there is one."""
        if self.tripped:
            return
        record = np.asarray(self.model.first_non_finite.numpy())
        if record[0] == 0:
            return
        step, total, losses = int(record[0]), record[1], record[2:-1]
        names = getattr(self.model, "loss_names", LOSS_NAMES)
        bad = [f"{name}={value}" for name, value in zip(names, losses)
               if not np.isfinite(value)]
        if not np.isfinite(total) and not bad:
            bad.append(f"weight decay or total loss={total}")
        cause = ", ".join(bad) if bad else "a gradient (losses were finite)"
        self.message = (f"non-finite {cause} at epoch {self._epoch + 1}, step {step}; "
                        f"training stopped, the step was not applied")
        self.model.stop_training = True


class StepSummaries(keras.callbacks.Callback):
    """TensorBoard scalars "batch_<loss>" at each batch hook, on the run's step axis.

    Keras' own batch summaries count calls of the training function from 0 at every
    `fit`; here the step is epoch * steps_per_epoch + the step in the epoch, so
    successive `train()` stages and resumed runs continue one axis. The values are the
    running means of the epoch that Keras passes to the hooks.
    """

    def __init__(self, log_dir, steps_per_epoch):
        super().__init__()
        self.log_dir = log_dir
        self.steps_per_epoch = int(steps_per_epoch)
        self._epoch = 0
        self._writer = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not logs:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "train"))
        step = self._epoch * self.steps_per_epoch + batch + 1
        with self._writer.as_default():
            for name, value in logs.items():
                tf.summary.scalar(f"batch_{name}", value, step=step)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _RetracingWarningFilter(logging.Filter):
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def expected_retracing():
    """Drop TensorFlow's "triggered tf.function retracing" warnings inside the block.

    Each `MaskRCNN.train` stage selects other layers and compiles a new optimizer, so
    Keras traces new train and test functions: one tracing per stage, by design. After a
    few stages TensorFlow's heuristic calls that excessive and suggests fixes that do not
    apply. Other warnings pass.
    """
    logger = tf.get_logger()
    retracing_filter = _RetracingWarningFilter()
    logger.addFilter(retracing_filter)
    try:
        yield
    finally:
        logger.removeFilter(retracing_filter)


class CheckpointSaver(keras.callbacks.Callback):
    """Write the weights after every epoch, name-keyed and atomically.

    Skips the epoch (with a warning) when the NonFiniteGuard's record shows a non-finite
    step or when any weight is not finite, so `find_last()` always finds a usable
    checkpoint. In a multi-worker cluster only the chief writes (every worker holds the
    same weights). Each file records its epoch, the config (JSON) and, given `stage`, the
    training stage (mrcnn.schedule.TrainingStage) so a resumed run continues its schedule.
    """

    def __init__(self, path_template, guard, config_json="", stage=None):
        super().__init__()
        self.path_template = path_template
        self.guard = guard
        self.config_json = config_json
        self.stage = stage
        self.saved = []

    def on_epoch_end(self, epoch, logs=None):
        if not distribute.is_chief():
            return
        if self.guard is not None:
            self.guard.check()
            if self.guard.tripped:
                print(f"Not saving epoch {epoch + 1}: {self.guard.message}")
                return
        if not weights_io.all_finite(self.model):
            print(f"Not saving epoch {epoch + 1}: the weights are not finite")
            return
        path = self.path_template.format(epoch=epoch + 1)
        attributes = {"epoch": epoch + 1, "config": self.config_json}
        if self.stage is not None:
            attributes.update(self.stage.attributes())
        weights_io.save_weights(self.model, path, attributes=attributes)
        self.saved.append(path)

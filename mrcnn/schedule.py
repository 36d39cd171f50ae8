"""The learning-rate schedule of a training stage, and how a resumed run continues it.

A *stage* is one `MaskRCNN.train()` call of a recipe such as upstream's
"heads to epoch 40 at lr, then all layers to epoch 120 at lr / 10". Its schedule (linear
warm-up, then a constant or cosine-decayed rate) spans the stage's epochs, from the epoch
it started at to its target `epochs`:

    schedule step = (epoch - stage start epoch) * STEPS_PER_EPOCH + step in the epoch
    total steps   = (target epochs - stage start epoch) * STEPS_PER_EPOCH

Every checkpoint records its stage (`TrainingStage.attributes`, root attributes of the
HDF5 file). A run resumed from it (`load_weights(find_last())`, then the same `train()`
call) continues that stage's schedule where the checkpoint left it; a call with another
learning rate, other layers or another target starts a new stage at the current epoch,
with a fresh warm-up. `train(..., stage_start_epoch=E)` states the stage's start epoch
explicitly.
"""
import dataclasses
import math

import h5py
import keras
import tensorflow as tf


class LearningRateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then a constant or cosine-decayed learning rate.

    With s = step + first_step (the optimizer's step counted from the stage's start):
    lr(s) = base * min(1, (s + 1) / warmup_steps) * decay(s), where decay is 1
    ("constant") or min_factor + (1 - min_factor) * (1 + cos(pi * t)) / 2 with
    t = min(s / total_steps, 1) ("cosine"). `first_step` is the number of the stage's
    steps already taken before this optimizer's first update (non-zero when resuming).
    """

    def __init__(self, base_rate, warmup_steps=0, schedule="constant", total_steps=1,
                 min_factor=0.0, first_step=0):
        self.base_rate = float(base_rate)
        self.warmup_steps = int(warmup_steps)
        self.schedule = schedule
        self.total_steps = max(int(total_steps), 1)
        self.min_factor = float(min_factor)
        self.first_step = int(first_step)

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + float(self.first_step)
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
                "min_factor": self.min_factor, "first_step": self.first_step}


@dataclasses.dataclass(frozen=True)
class TrainingStage:
    """One `train()` call: its schedule spans epochs start_epoch .. epochs.

    Attributes:
        start_epoch: the epoch count when the stage began (0-based epochs done).
        epochs: the stage's target (cumulative, as `train(epochs=...)`).
        learning_rate: the stage's base learning rate.
        layers: the stage's layer selection, as passed to `train(layers=...)`.
    """
    start_epoch: int
    epochs: int
    learning_rate: float
    layers: str

    _KEYS = ("start_epoch", "epochs", "learning_rate", "layers")
    _PREFIX = "stage_"

    def total_steps(self, steps_per_epoch):
        """Optimizer steps of the whole stage."""
        return max(self.epochs - self.start_epoch, 0) * int(steps_per_epoch)

    def first_step(self, epoch, steps_per_epoch):
        """The stage's step at which a run starting after `epoch` epochs begins."""
        return max(int(epoch) - self.start_epoch, 0) * int(steps_per_epoch)

    def is_same_call(self, learning_rate, epochs, layers):
        """Whether `train(learning_rate, epochs, layers)` is this stage's call again."""
        return (math.isclose(float(learning_rate), self.learning_rate, rel_tol=1e-9)
                and int(epochs) == self.epochs and str(layers) == self.layers)

    def attributes(self):
        """{"stage_start_epoch": ..., ...}: root attributes for a checkpoint file."""
        return {self._PREFIX + key: getattr(self, key) for key in self._KEYS}

    @classmethod
    def from_attributes(cls, attributes):
        """The stage stored by `attributes()`, or None if `attributes` holds none."""
        keys = [cls._PREFIX + key for key in cls._KEYS]
        if not all(key in attributes for key in keys):
            return None
        start, epochs, rate, layers = (attributes[key] for key in keys)
        if isinstance(layers, bytes):
            layers = layers.decode("utf8")
        return cls(int(start), int(epochs), float(rate), str(layers))

    @classmethod
    def read(cls, filepath):
        """The stage recorded in a checkpoint file; None for files without one (upstream's,
        Keras' native files, or files that are not HDF5)."""
        try:
            with h5py.File(filepath, "r") as f:
                return cls.from_attributes(dict(f.attrs))
        except OSError:
            return None


def stage_of_call(epoch, learning_rate, epochs, layers, checkpoint_stage=None,
                  stage_start_epoch=None):
    """The stage a `train(learning_rate, epochs, layers)` call at `epoch` epochs trains.

    Args:
        epoch: epochs trained so far (`MaskRCNN.epoch`).
        checkpoint_stage: the TrainingStage of the loaded checkpoint, or None.
        stage_start_epoch: None (decide as below) or the stage's start epoch, explicitly.
    Returns:
        `checkpoint_stage` when this call is that stage's call again (same learning rate,
        layers and target) and the checkpoint lies inside it (start <= epoch < target):
        the resumed run continues its schedule. Otherwise a new stage starting at
        `stage_start_epoch` if given, else at `epoch`.
    Raises:
        ValueError: stage_start_epoch outside [0, epoch].
    """
    if stage_start_epoch is not None:
        if not 0 <= int(stage_start_epoch) <= epoch:
            raise ValueError(f"stage_start_epoch must be in [0, {epoch}] (the epochs trained "
                             f"so far), got {stage_start_epoch}")
        return TrainingStage(int(stage_start_epoch), int(epochs), float(learning_rate),
                             str(layers))
    if (checkpoint_stage is not None
            and checkpoint_stage.is_same_call(learning_rate, epochs, layers)
            and checkpoint_stage.start_epoch <= epoch < checkpoint_stage.epochs):
        return checkpoint_stage
    return TrainingStage(int(epoch), int(epochs), float(learning_rate), str(layers))

"""Best checkpoint, early stopping, keep_last and settable scheduled learning rates.

Unit tests drive the callbacks by hand on a small dense model whose every weight is set
to the epoch number before the epoch ends, so a file's weights name the epoch it holds;
one slow test trains the tiny Mask R-CNN with train(monitor=..., keep_last=...) and with
Keras' own EarlyStopping and ReduceLROnPlateau as custom callbacks.
"""
import os
import sys

import h5py
import keras
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mrcnn.model as modellib  # noqa: E402
from mrcnn import checkpoints, training, weights_io  # noqa: E402

from conftest import TinyConfig, shapes_dataset  # noqa: E402

RUN = "tiny20260101T0000"
TEMPLATE = "mask_rcnn_tiny_{epoch:04d}.h5"


def small_model():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="dense_a")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="dense_b")(x))


def set_weights_to(model, value):
    model.set_weights([np.full(w.shape, value, np.float32) for w in model.get_weights()])


def weight_value(path):
    """The value every weight of a checkpoint written from small_model holds."""
    model = small_model()
    weights_io.load_weights(model, path)
    values = np.unique(np.concatenate([w.ravel() for w in model.get_weights()]))
    assert values.size == 1, values
    return float(values[0])


def run_epochs(model, callbacks, logs_per_epoch, first_epoch=1):
    """Drive the callbacks through epochs first_epoch, ... with the given logs; stop when a
    callback sets stop_training. Returns the epochs that ran (1-based)."""
    model.stop_training = False
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    ran = []
    for offset, logs in enumerate(logs_per_epoch):
        epoch = first_epoch + offset
        set_weights_to(model, float(epoch))
        for callback in callbacks:
            callback.on_epoch_end(epoch - 1, dict(logs))
        ran.append(epoch)
        if model.stop_training:
            break
    return ran


def test_best_by_validation_loss_and_patience(tmp_path):
    model = small_model()
    path = str(tmp_path / "mask_rcnn_tiny_best.h5")
    best = checkpoints.BestCheckpoint(path, monitor="val_loss", patience=2, verbose=0)
    losses = [3.0, 2.0, 2.5, 1.0, 1.5, 1.7, 0.5]
    ran = run_epochs(model, [best], [{"val_loss": v} for v in losses])
    # new bests at epochs 1, 2, 4; epochs 5 and 6 do not improve -> stop after epoch 6
    assert ran == [1, 2, 3, 4, 5, 6]
    assert best.stopped_epoch == 6 and model.stop_training
    assert (best.best, best.best_epoch) == (1.0, 4)
    assert weight_value(path) == 4.0
    assert checkpoints.read_best_record(path) == ("val_loss", 1.0, 4)
    assert len(best.saved) == 3


def test_map_is_maximised_and_missing_or_nan_epochs_are_not_bests(tmp_path, caplog):
    model = small_model()
    path = str(tmp_path / "best.h5")
    best = checkpoints.BestCheckpoint(path, monitor="val_mAP", patience=2, verbose=0)
    logs = [{"val_loss": 1.0}, {"val_mAP": 0.4}, {}, {"val_mAP": 0.7},
            {"val_mAP": float("nan")}, {"val_mAP": 0.6}, {"val_mAP": 0.9}]
    ran = run_epochs(model, [best], logs)
    # epochs without val_mAP count neither way; NaN (epoch 5) and 0.6 (epoch 6) are two
    # epochs without improvement -> stop after epoch 6
    assert ran == [1, 2, 3, 4, 5, 6]
    assert (best.best, best.best_epoch) == (0.7, 4) and weight_value(path) == 4.0
    assert "val_mAP" in caplog.text and "MeanAveragePrecisionCallback" in caplog.text


def test_min_delta_and_explicit_mode():
    best = checkpoints.BestCheckpoint("unused.h5", monitor="score", mode="max",
                                      min_delta=0.1)
    best.best = 1.0
    assert not best.improves(1.05) and best.improves(1.11) and not best.improves(None)
    assert checkpoints.monitor_direction("val_mrcnn_mask_loss") == "min"
    assert checkpoints.monitor_direction("val_mAP") == "max"
    assert checkpoints.monitor_direction("val_AP50") == "max"
    assert checkpoints.monitor_direction("val_mAP", mode="min") == "min"
    with pytest.raises(ValueError, match="patience"):
        checkpoints.BestCheckpoint("unused.h5", patience=0)


def test_a_later_stage_keeps_improving_on_the_stored_best(tmp_path):
    model = small_model()
    path = str(tmp_path / "best.h5")
    first = checkpoints.BestCheckpoint(path, monitor="val_loss", verbose=0)
    run_epochs(model, [first], [{"val_loss": 2.0}, {"val_loss": 1.0}])
    second = checkpoints.BestCheckpoint(path, monitor="val_loss", verbose=0)
    run_epochs(model, [second], [{"val_loss": 1.5}, {"val_loss": 1.2}], first_epoch=3)
    assert weight_value(path) == 2.0 and second.saved == []      # still epoch 2's
    run_epochs(model, [second], [{"val_loss": 0.9}], first_epoch=5)
    assert weight_value(path) == 5.0
    # a best file of another monitored value does not count
    other = checkpoints.BestCheckpoint(path, monitor="val_mAP", verbose=0)
    other.on_train_begin()
    assert other.best is None


def test_no_best_is_written_after_a_non_finite_step(tmp_path):
    class Tripped:
        tripped = True

        def check(self):
            pass

    model = small_model()
    path = str(tmp_path / "best.h5")
    best = checkpoints.BestCheckpoint(path, guard=Tripped(), verbose=0)
    run_epochs(model, [best], [{"val_loss": 1.0}])
    assert not os.path.exists(path)


def test_non_finite_weights_are_no_best_and_count_against_patience(tmp_path):
    model = small_model()
    path = str(tmp_path / "best.h5")
    best = checkpoints.BestCheckpoint(path, patience=1, verbose=0)
    best.set_model(model)
    best.on_train_begin()
    model.set_weights([np.full(w.shape, np.nan, np.float32) for w in model.get_weights()])
    best.on_epoch_end(0, {"val_loss": 1.0})
    assert best.best is None and not os.path.exists(path) and model.stop_training


def _saver_and_pruner(run_dir, keep_last):
    template = os.path.join(run_dir, TEMPLATE)
    saver = training.CheckpointSaver(template, guard=None)
    return saver, checkpoints.KeepLastCheckpoints(template, keep_last, saver=saver)


def _names(run_dir):
    return sorted(os.listdir(run_dir))


def test_keep_last_deletes_old_epochs_but_never_the_newest_or_the_best(tmp_path):
    run_dir = str(tmp_path / RUN)
    os.makedirs(run_dir)
    saver, pruner = _saver_and_pruner(run_dir, keep_last=2)
    best = checkpoints.BestCheckpoint(os.path.join(run_dir, "mask_rcnn_tiny_best.h5"),
                                      verbose=0)
    model = small_model()
    run_epochs(model, [saver, best, pruner], [{"val_loss": v} for v in (1.0, 2.0, 3.0, 4.0)])
    assert _names(run_dir) == ["mask_rcnn_tiny_0003.h5", "mask_rcnn_tiny_0004.h5",
                               "mask_rcnn_tiny_best.h5"]
    assert weight_value(os.path.join(run_dir, "mask_rcnn_tiny_best.h5")) == 1.0
    assert [os.path.basename(p) for p in pruner.deleted] == ["mask_rcnn_tiny_0001.h5",
                                                            "mask_rcnn_tiny_0002.h5"]


def test_keep_last_keeps_the_file_just_written_beside_higher_stale_epochs(tmp_path):
    run_dir = str(tmp_path / RUN)
    os.makedirs(run_dir)
    model = small_model()
    for stale in (8, 9):                       # left by an earlier attempt of the run
        weights_io.save_weights(model, os.path.join(run_dir, TEMPLATE.format(epoch=stale)))
    other = os.path.join(run_dir, "notes.h5")
    weights_io.save_weights(model, other)
    saver, pruner = _saver_and_pruner(run_dir, keep_last=1)
    run_epochs(model, [saver, pruner], [{}, {}], first_epoch=3)
    assert _names(run_dir) == ["mask_rcnn_tiny_0004.h5", "mask_rcnn_tiny_0009.h5",
                               "notes.h5"]
    with pytest.raises(ValueError, match="keep_last"):
        checkpoints.KeepLastCheckpoints(os.path.join(run_dir, TEMPLATE), 0)


class _Model(modellib.MaskRCNN):
    """Only the checkpoint-finding part of MaskRCNN: no graph."""

    def __init__(self, model_dir):
        self.config = TinyConfig()
        self.model_dir = model_dir


def test_find_last_ignores_the_best_file_and_find_best_finds_it(tmp_path):
    model, weights = _Model(str(tmp_path)), small_model()
    with pytest.raises(FileNotFoundError, match="best"):
        model.find_best()
    old, new = tmp_path / "tiny20260101T0000", tmp_path / "tiny20260102T0000"
    for run in (old, new):
        os.makedirs(run)
    weights_io.save_weights(weights, str(old / "mask_rcnn_tiny_best.h5"))
    for epoch in (1, 2):
        weights_io.save_weights(weights, str(new / TEMPLATE.format(epoch=epoch)))
    assert model.find_best() == str(old / "mask_rcnn_tiny_best.h5")
    weights_io.save_weights(weights, str(new / "mask_rcnn_tiny_best.h5"))
    assert model.find_last() == str(new / "mask_rcnn_tiny_0002.h5")
    assert model.find_best() == str(new / "mask_rcnn_tiny_best.h5")


# --- Settable learning rate under a schedule -----------------------------------------

class _WarmCosine(TinyConfig):
    LEARNING_RATE_WARMUP_STEPS = 4
    LEARNING_RATE_SCHEDULE = "cosine"
    GRADIENT_CLIP_NORM = None
    LEARNING_MOMENTUM = 0.0


def test_setting_a_scheduled_rate_scales_the_schedule():
    config = _WarmCosine()
    optimizer = training.make_optimizer(config, 0.1, total_steps=8)
    schedule = optimizer._learning_rate
    # unchanged until set: exactly the schedule's rate
    assert float(optimizer.learning_rate) == float(schedule(0)) == pytest.approx(0.025)
    optimizer.learning_rate = 0.0125                    # half of the rate at step 0
    assert optimizer.learning_rate_factor == pytest.approx(0.5)
    variable = keras.Variable(np.float32(1.0))
    optimizer.apply([np.float32(2.0)], [variable])
    # SGD without momentum: 1 - 0.0125 * 2
    assert float(variable.numpy()) == pytest.approx(1.0 - 0.025, rel=1e-6)
    # step 1: half of base * 2/4 * cosine(1/8)
    cosine = 0.5 * (1 + np.cos(np.pi / 8))
    assert float(optimizer.learning_rate) == pytest.approx(0.5 * 0.1 * 0.5 * cosine, rel=1e-6)


def test_loss_scaled_optimizer_passes_the_rate_through():
    config = _WarmCosine()
    config.MIXED_PRECISION = "mixed_float16"
    optimizer = training.make_optimizer(config, 0.1, total_steps=8)
    optimizer.learning_rate = 0.005                     # a fifth of 0.025
    assert optimizer.inner_optimizer.learning_rate_factor == pytest.approx(0.2)
    assert float(optimizer.learning_rate) == pytest.approx(0.005, rel=1e-6)


def test_a_schedule_at_rate_zero_cannot_be_set():
    config = _WarmCosine()
    config.LEARNING_RATE_WARMUP_STEPS = 0
    optimizer = training.make_optimizer(config, 0.1, total_steps=1, first_step=1)
    assert float(optimizer.learning_rate) == 0.0       # the cosine's end
    with pytest.raises(ValueError, match="schedule's rate"):
        optimizer.learning_rate = 0.01


# --- The real model ---------------------------------------------------------------------

class _OneStep(TinyConfig):
    STEPS_PER_EPOCH = 1
    VALIDATION_STEPS = 1
    LOG_EVERY_N_STEPS = 1


@pytest.mark.slow
def test_train_with_best_keep_last_and_keras_plateau_callbacks(tmp_path):
    config = _OneStep()
    dataset = shapes_dataset(4, seed=3)
    model = modellib.MaskRCNN(mode="training", config=config, model_dir=str(tmp_path))
    with pytest.raises(ValueError, match="patience needs monitor"):
        model.train(dataset, dataset, 0.01, epochs=1, layers="heads", verbose=0, patience=2)
    # min_delta so large that no epoch after the first is an improvement for them:
    # ReduceLROnPlateau halves the rate after epoch 2, EarlyStopping stops after epoch 2.
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1,
                                                min_delta=1e9, verbose=0)
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=1e9)
    history = model.train(dataset, dataset, 0.01, epochs=6, layers="heads", verbose=0,
                          custom_callbacks=[plateau, stopping], monitor="val_loss",
                          keep_last=1)
    val_loss = history.history["val_loss"]
    assert len(val_loss) == 2 and stopping.stopped_epoch == 1      # 0-based epoch 2
    # Keras logs the rate each epoch ran at, before it reduces it at the epoch's end
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.01])
    assert model.keras_model.optimizer.learning_rate_factor == pytest.approx(0.5)
    assert float(model.keras_model.optimizer.learning_rate) == pytest.approx(0.005)
    best_epoch = int(np.argmin(val_loss)) + 1
    h5_files = sorted(n for n in os.listdir(model.log_dir) if n.endswith(".h5"))
    assert h5_files == ["mask_rcnn_tiny_0002.h5", "mask_rcnn_tiny_best.h5"]
    best_path = os.path.join(model.log_dir, "mask_rcnn_tiny_best.h5")
    record = checkpoints.read_best_record(best_path)
    assert record[0] == "val_loss" and record[2] == best_epoch
    assert record[1] == pytest.approx(min(val_loss), rel=1e-6)
    assert model.find_last().endswith("mask_rcnn_tiny_0002.h5")
    assert model.find_best() == best_path
    with h5py.File(best_path, "r") as f:
        assert "mrcnn_class_logits" in f

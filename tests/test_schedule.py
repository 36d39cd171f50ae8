"""Learning-rate schedule by hand, and which stage a train() call trains (mrcnn.schedule)."""
import math

import h5py
import numpy as np
import pytest

from mrcnn import training
from mrcnn.schedule import LearningRateSchedule, TrainingStage, stage_of_call

from conftest import TinyConfig


def rates(schedule, steps):
    return [float(schedule(step)) for step in steps]


def test_warm_up_then_cosine_decay_by_hand():
    schedule = LearningRateSchedule(0.1, warmup_steps=2, schedule="cosine", total_steps=4,
                                    min_factor=0.2)
    # lr = 0.1 * min(1, (s + 1) / 2) * (0.2 + 0.8 * (1 + cos(pi * s / 4)) / 2)
    expected = [0.1 * 0.5 * 1.0,                                 # s = 0
                0.1 * (0.2 + 0.8 * (1 + math.sqrt(0.5)) / 2),    # s = 1: cos(pi/4)
                0.1 * (0.2 + 0.8 * 0.5),                         # s = 2: cos(pi/2) = 0
                0.1 * (0.2 + 0.8 * (1 - math.sqrt(0.5)) / 2),    # s = 3
                0.1 * 0.2,                                       # s = 4: the floor
                0.1 * 0.2]                                       # beyond: stays there
    np.testing.assert_allclose(rates(schedule, [0, 1, 2, 3, 4, 9]), expected, rtol=1e-6)


def test_constant_schedule_with_warm_up_by_hand():
    schedule = LearningRateSchedule(0.02, warmup_steps=4, schedule="constant", total_steps=8)
    np.testing.assert_allclose(rates(schedule, [0, 1, 3, 7]),
                               [0.005, 0.01, 0.02, 0.02], rtol=1e-6)


def test_first_step_shifts_the_schedule_to_the_stages_step():
    resumed = LearningRateSchedule(0.01, warmup_steps=3, schedule="cosine", total_steps=6,
                                   first_step=2)
    # The optimizer's step 0 is the stage's step 2: warm-up over (3/3), cos(pi * 2 / 6).
    np.testing.assert_allclose(rates(resumed, [0, 1]),
                               [0.01 * (1 + 0.5) / 2, 0.01 * (1 + 0.0) / 2],
                               rtol=1e-6, atol=1e-9)


def test_make_optimizer_passes_the_stage_to_its_schedule():
    class Scheduled(TinyConfig):
        LEARNING_RATE_WARMUP_STEPS = 3
        LEARNING_RATE_SCHEDULE = "cosine"

    optimizer = training.make_optimizer(Scheduled(), 0.01, total_steps=6, first_step=2)
    assert float(optimizer.learning_rate) == pytest.approx(0.0075, rel=1e-6)


def test_stage_round_trips_through_a_checkpoints_attributes(tmp_path):
    stage = TrainingStage(start_epoch=4, epochs=12, learning_rate=0.001, layers="4+")
    path = str(tmp_path / "mask_rcnn_x_0006.h5")
    with h5py.File(path, "w") as f:
        for key, value in stage.attributes().items():
            f.attrs[key] = value
        f.attrs["epoch"] = 6
    assert TrainingStage.read(path) == stage
    with h5py.File(str(tmp_path / "upstream.h5"), "w") as f:
        f.attrs["layer_names"] = [b"conv1"]
    assert TrainingStage.read(str(tmp_path / "upstream.h5")) is None
    (tmp_path / "not_hdf5.h5").write_bytes(b"garbage")
    assert TrainingStage.read(str(tmp_path / "not_hdf5.h5")) is None


def test_the_same_call_resumes_its_stage_and_any_other_call_starts_a_new_one():
    heads = TrainingStage(start_epoch=0, epochs=12, learning_rate=0.001, layers="heads")
    assert stage_of_call(6, 0.001, 12, "heads", heads) == heads
    assert heads.first_step(6, 100) == 600 and heads.total_steps(100) == 1200
    # Another learning rate, other layers or another target: a new stage at epoch 6.
    for call in [(0.0001, 12, "heads"), (0.001, 12, "all"), (0.001, 20, "heads")]:
        stage = stage_of_call(6, *call, heads)
        assert stage == TrainingStage(6, call[1], call[0], call[2])
        assert stage.first_step(6, 100) == 0
    # A finished stage (the checkpoint at its target) is not resumed.
    assert stage_of_call(12, 0.001, 12, "heads", heads).start_epoch == 12
    # No checkpoint stage: a new stage.
    assert stage_of_call(6, 0.001, 12, "heads", None) == TrainingStage(6, 12, 0.001, "heads")
    # Explicit start epoch.
    assert stage_of_call(6, 0.001, 12, "all", None, stage_start_epoch=4).start_epoch == 4
    with pytest.raises(ValueError, match="stage_start_epoch must be in \\[0, 6\\]"):
        stage_of_call(6, 0.001, 12, "all", None, stage_start_epoch=7)

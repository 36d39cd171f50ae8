"""NonFiniteGuard reads the device's record of the first non-finite step only at batch
hooks and epoch ends; until it does, later steps are not applied, and CheckpointSaver
consults the record itself before writing. Uses the hand-made graph of test_optimizer."""
import os

import numpy as np

from mrcnn import training

from test_optimizer import HandConfig, hand_batch, hand_model, weights_of


def _guarded_model():
    config = HandConfig()
    model = hand_model(config)
    training.compile_model(model, config, 0.1, total_steps=10)
    guard = training.NonFiniteGuard()
    guard.set_model(model)
    guard.on_train_begin()
    guard.on_epoch_begin(0)
    return model, guard


def _poisoned_batch():
    batch = hand_batch()
    batch["input_rpn_bbox"] = np.full_like(batch["input_rpn_bbox"], np.nan)
    return batch


def _assert_same(a, b):
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_steps_after_the_first_non_finite_one_are_skipped_until_the_guard_stops():
    model, guard = _guarded_model()
    model.train_step(hand_batch())                       # step 1: applied
    after_first = weights_of(model)
    model.train_step(_poisoned_batch())                  # step 2: rpn_bbox_loss is NaN
    model.train_step(hand_batch())                       # step 3: finite, yet not applied
    _assert_same(after_first, weights_of(model))
    guard.on_train_batch_end(2)                          # the first read of the record
    assert guard.tripped and model.stop_training
    assert "rpn_bbox_loss=nan" in guard.message
    assert "epoch 1, step 2" in guard.message
    # Once the fit is over, steps apply again (a plain fit without the guard skips only
    # the non-finite steps themselves).
    guard.on_train_end()
    model.train_step(hand_batch())
    assert not np.array_equal(after_first["rpn_class_logits"],
                              weights_of(model)["rpn_class_logits"])


def test_a_new_fit_and_a_new_epoch_reset_the_record_and_the_step_count():
    model, guard = _guarded_model()
    model.train_step(_poisoned_batch())
    guard.on_epoch_end(0)
    assert "epoch 1, step 1" in guard.message
    fresh = training.NonFiniteGuard()
    fresh.set_model(model)
    fresh.on_train_begin()
    fresh.on_epoch_begin(4)
    model.train_step(hand_batch())
    model.train_step(hand_batch())
    model.train_step(_poisoned_batch())
    fresh.on_epoch_end(4)
    assert "epoch 5, step 3" in fresh.message


def test_checkpoint_saver_reads_the_record_before_writing(tmp_path):
    model, guard = _guarded_model()
    template = os.path.join(str(tmp_path), "mask_rcnn_hand_{epoch:04d}.h5")
    saver = training.CheckpointSaver(template, guard)
    saver.set_model(model)
    model.train_step(hand_batch())
    saver.on_epoch_end(0)
    assert saver.saved == [template.format(epoch=1)]
    guard.on_epoch_begin(1)
    model.train_step(_poisoned_batch())
    model.train_step(hand_batch())
    # No batch hook has read the record yet; the saver reads it and writes nothing.
    saver.on_epoch_end(1)
    assert guard.tripped and "epoch 2, step 1" in guard.message
    assert saver.saved == [template.format(epoch=1)]
    assert sorted(os.listdir(str(tmp_path))) == ["mask_rcnn_hand_0001.h5"]

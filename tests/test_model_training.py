"""MaskRCNN training: layer selection, checkpoints, resume, the schedule of a resumed run,
logging every N steps, NaN guard, train -> inference.

Each test that writes checkpoints has a model_dir of its own (tmp_path, or a copy of the
shared trained run), so the tests pass in any order."""
import glob
import logging
import math
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import mrcnn.model as modellib
from mrcnn import training, weights_io
from mrcnn.data import DataGenerator
from mrcnn.schedule import TrainingStage

from conftest import TinyConfig, shapes_dataset

BACKBONE_PREFIXES = ("conv1", "bn_conv1", "res", "bn2", "bn3", "bn4", "bn5")
HEAD_PREFIXES = ("mrcnn_", "rpn_", "fpn_")


def _weights_by_layer(model):
    return {layer.name: [np.array(w.numpy()) for w in layer.weights]
            for layer in training.iter_layers(model) if layer.weights}


def _changed(before, after, prefixes):
    names = [n for n in before if n.startswith(prefixes)]
    assert names, prefixes
    return {n: any(not np.array_equal(a, b) for a, b in zip(before[n], after[n]))
            for n in names}


def _one_step(model, layers, dataset):
    training.set_trainable(model.keras_model, layers)
    model.compile(0.01, total_steps=1)
    batch = DataGenerator(dataset, model.config, shuffle=False, seed=0)[0]
    before = _weights_by_layer(model.keras_model)
    logs = model.keras_model.train_step(batch)
    assert np.isfinite(float(logs["loss"]))
    return before, _weights_by_layer(model.keras_model)


def test_heads_leaves_backbone_unchanged_and_trains_heads(tmp_path, tiny_shapes):
    model = modellib.MaskRCNN("training", TinyConfig(), str(tmp_path))
    before, after = _one_step(model, "heads", tiny_shapes)
    backbone = _changed(before, after, BACKBONE_PREFIXES)
    heads = _changed(before, after, HEAD_PREFIXES)
    assert not any(backbone.values()), [n for n, c in backbone.items() if c]
    assert heads["mrcnn_class_logits"] and heads["mrcnn_mask"] and heads["fpn_c5p5"]
    assert heads["rpn_conv_shared"] and heads["rpn_class_raw"]


def test_all_trains_backbone_and_heads(tmp_path, tiny_shapes):
    model = modellib.MaskRCNN("training", TinyConfig(), str(tmp_path))
    before, after = _one_step(model, "all", tiny_shapes)
    assert all(_changed(before, after, ("conv1", "res2a_branch2a", "res5b_branch2b")).values())
    assert all(_changed(before, after, ("mrcnn_class_logits", "mrcnn_mask", "fpn_p2")).values())


def test_stage_selector_on_a_backbone_without_stages_is_a_clear_error(tmp_path):
    def plain_backbone(image, stage5=True, train_bn=None):
        outputs, x = [], image
        for level, filters in enumerate((8, 16, 16, 32, 32), start=1):
            x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                                    name=f"plain_c{level}")(x)
            outputs.append(x)
        return outputs

    def plain_shapes(image_shape):
        return np.array([[int(np.ceil(image_shape[0] / s)), int(np.ceil(image_shape[1] / s))]
                         for s in (4, 8, 16, 32, 64)])

    class PlainConfig(TinyConfig):
        BACKBONE = staticmethod(plain_backbone)
        COMPUTE_BACKBONE_SHAPE = staticmethod(plain_shapes)

    model = modellib.MaskRCNN("training", PlainConfig(), str(tmp_path))
    with pytest.raises(ValueError, match="layers='4\\+' selects ResNet stages"):
        training.set_trainable(model.keras_model, "4+")
    with pytest.raises(ValueError, match="selects no layer"):
        training.set_trainable(model.keras_model, r"nothing_.*")
    selected = training.set_trainable(model.keras_model, r"plain_c[45]|mrcnn_.*")
    assert "plain_c4" in selected and "plain_c2" not in selected


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny model trained for 2 epochs, and its run directory."""
    keras.utils.set_random_seed(0)
    model_dir = str(tmp_path_factory.mktemp("runs"))
    dataset = shapes_dataset(12, 64, seed=0)
    model = modellib.MaskRCNN("training", TinyConfig(), model_dir)
    model.train(dataset, dataset, learning_rate=0.01, epochs=2, layers="all", verbose=0)
    return model, dataset


def test_checkpoint_per_epoch_and_find_last(trained_run):
    model, _ = trained_run
    files = sorted(os.listdir(model.log_dir))
    checkpoints = [f for f in files if f.endswith(".h5")]
    assert checkpoints == ["mask_rcnn_tiny_0001.h5", "mask_rcnn_tiny_0002.h5"]
    assert not [f for f in files if f.endswith(".tmp")]
    assert model.find_last() == os.path.join(model.log_dir, "mask_rcnn_tiny_0002.h5")
    assert os.path.basename(model.log_dir).startswith("tiny")
    assert model.epoch == 2


def _copy_of_run(model, tmp_path):
    """model_dir of a copy of `model`'s runs under tmp_path (same run directory names)."""
    target = str(tmp_path / "runs")
    shutil.copytree(model.model_dir, target)
    return target


def test_resume_continues_the_epoch_count_in_the_same_directory(trained_run, tmp_path):
    model, dataset = trained_run
    model_dir = _copy_of_run(model, tmp_path)
    log_dir = os.path.join(model_dir, os.path.basename(model.log_dir))
    resumed = modellib.MaskRCNN("training", TinyConfig(), model_dir)
    resumed.load_weights(resumed.find_last(), by_name=True, verbose=0)
    assert resumed.epoch == 2 and resumed.log_dir == log_dir
    resumed.train(dataset, dataset, learning_rate=0.01, epochs=3, layers="heads", verbose=0)
    assert os.path.exists(os.path.join(log_dir, "mask_rcnn_tiny_0003.h5"))
    assert resumed.epoch == 3
    assert not os.path.exists(os.path.join(model.log_dir, "mask_rcnn_tiny_0003.h5"))


def _inference(config_class, model_dir, checkpoint):
    model = modellib.MaskRCNN("inference", config_class(), model_dir)
    model.load_weights(checkpoint, verbose=0)
    return model


def test_training_checkpoint_gives_identical_inference_models(trained_run, tmp_path):
    model, dataset = trained_run
    checkpoint = os.path.join(model.log_dir, "mask_rcnn_tiny_0002.h5")
    first = _inference(TinyConfig, str(tmp_path), checkpoint)
    # Every weight of the inference graph holds the value stored under its name.
    stored, _ = weights_io.read_weights(checkpoint)
    layers = weights_io.weight_layers(first.keras_model)
    assert len(layers) > 30
    for layer in layers:
        for key, variable in weights_io._named_variables(layer):
            np.testing.assert_array_equal(variable.numpy(), stored[layer.name][key[:-2]])

    images = [dataset.load_image(i) for i in range(3)]
    copy = str(tmp_path / "copy.h5")
    first.save_weights(copy)
    second = _inference(TinyConfig, str(tmp_path), copy)
    # The graph's dense outputs exist whatever two epochs taught the model: 32 proposals
    # per image and their class probabilities (on some CPUs every proposal is still
    # background after two epochs, and detect() then rightly returns no detection).
    def probes(model):
        graph = model.keras_model
        return [("proposals", graph.get_layer("ROI").output),
                ("class_probs", graph.get_layer("mrcnn_class").output)]
    dense_a = first.run_graph(images, probes(first))
    dense_b = second.run_graph(images, probes(second))
    assert dense_a["proposals"].shape == (3, TinyConfig.POST_NMS_ROIS_INFERENCE, 4)
    assert dense_a["class_probs"].shape == (3, TinyConfig.POST_NMS_ROIS_INFERENCE, 4)
    np.testing.assert_allclose(dense_a["class_probs"].sum(-1), 1.0, atol=1e-5)
    for name in dense_a:
        np.testing.assert_array_equal(dense_a[name], dense_b[name])
    for a, b in zip(first.detect(images), second.detect(images)):
        for key in ("rois", "class_ids", "scores", "masks"):
            np.testing.assert_array_equal(a[key], b[key])


def test_detect_three_images_of_different_sizes_with_batch_two(trained_run, tmp_path):
    model, dataset = trained_run
    inference = _inference(TinyConfig, str(tmp_path), model.find_last())
    assert inference.config.BATCH_SIZE == 2
    rng = np.random.RandomState(0)
    images = [dataset.load_image(0),
              rng.randint(0, 255, (50, 80, 3)).astype(np.uint8),
              rng.randint(0, 255, (90, 40)).astype(np.uint8)]        # grey
    results = inference.detect(images)
    assert len(results) == 3
    for image, result in zip(images, results):
        n = len(result["class_ids"])
        assert result["rois"].shape == (n, 4) and result["scores"].shape == (n,)
        assert result["masks"].shape == image.shape[:2] + (n,)
        assert result["masks"].dtype == bool
        rois = result["rois"]
        assert np.all(rois[:, :2] >= 0)
        assert np.all(rois[:, 2] <= image.shape[0]) and np.all(rois[:, 3] <= image.shape[1])
        assert np.all((rois[:, 2] > rois[:, 0]) & (rois[:, 3] > rois[:, 1]))
        assert np.all((result["class_ids"] >= 1) & (result["class_ids"] < 4))
        # every pasted mask lies inside its box
        for i in range(n):
            y1, x1, y2, x2 = rois[i]
            outside = result["masks"][..., i].copy()
            outside[y1:y2, x1:x2] = False
            assert not outside.any()


@pytest.mark.slow
def test_nan_in_training_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    dataset = shapes_dataset(8, 64, seed=1)
    config = TinyConfig()
    # Both steps of an epoch run in one call of the training function, so the guard sees
    # the first step's NaN only after the second, finite step, which must not be applied.
    assert training.steps_per_execution(config) == config.STEPS_PER_EPOCH == 2
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    model.train(dataset, dataset, learning_rate=0.01, epochs=1, layers="all", verbose=0)
    good = model.find_last()
    assert good.endswith("mask_rcnn_tiny_0001.h5")
    good_weights = _weights_by_layer(model.keras_model)

    original = DataGenerator.__getitem__

    def poisoned(self, index):
        batch = original(self, index)
        if index != 0:                 # only the first step of the epoch
            return batch
        inputs = dict(batch[0])
        inputs["input_rpn_bbox"] = np.full_like(inputs["input_rpn_bbox"], np.nan)
        return (inputs,) + tuple(batch[1:])

    monkeypatch.setattr(DataGenerator, "__getitem__", poisoned)
    with pytest.raises(training.TrainingDivergedError) as raised:
        model.train(dataset, dataset, learning_rate=0.01, epochs=2, layers="all", verbose=0)
    message = str(raised.value)
    assert "rpn_bbox_loss=nan" in message and "epoch 2, step 1" in message
    assert good in message
    assert model.find_last() == good
    assert not os.path.exists(os.path.join(model.log_dir, "mask_rcnn_tiny_0002.h5"))
    after = _weights_by_layer(model.keras_model)
    for name, values in good_weights.items():
        for a, b in zip(values, after[name]):
            np.testing.assert_array_equal(a, b)
    assert model.epoch == 1


class BatchHooks(keras.callbacks.Callback):
    """The `batch` of every on_train_batch_end call."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)


def _scalar_steps(directory, tag):
    """Steps at which the TensorBoard event files under `directory` hold scalar `tag`."""
    steps = []
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return sorted(steps)


@pytest.mark.slow
def test_callbacks_and_tensorboard_run_every_log_every_n_steps(tmp_path):
    class EveryTwo(TinyConfig):
        STEPS_PER_EPOCH = 4
        LOG_EVERY_N_STEPS = 2

    dataset = shapes_dataset(8, 64, seed=3)
    model = modellib.MaskRCNN("training", EveryTwo(), str(tmp_path))
    hooks = BatchHooks()
    history = model.train(dataset, dataset, learning_rate=0.01, epochs=2, layers="heads",
                          verbose=0, custom_callbacks=[hooks])
    # Four optimizer steps per epoch, the host sees two of them: the losses are read back
    # (and the batch hooks run) after steps 2 and 4 of each epoch.
    assert int(model.keras_model.optimizer.iterations.numpy()) == 8
    assert hooks.batches == [1, 3, 1, 3]
    assert len(history.history["loss"]) == 2
    train_logs = os.path.join(model.log_dir, "train")
    # Batch summaries on the run's step axis (epoch * STEPS_PER_EPOCH + step), epoch
    # summaries per epoch.
    assert _scalar_steps(train_logs, "batch_loss") == [2, 4, 6, 8]
    assert _scalar_steps(train_logs, "epoch_loss") == [0, 1]


def test_steps_per_execution_divides_the_epoch():
    def steps(every, per_epoch, replicas=1):
        class Config(TinyConfig):
            LOG_EVERY_N_STEPS = every
            STEPS_PER_EPOCH = per_epoch
        return training.steps_per_execution(Config(), replicas)

    assert steps(100, 1000) == 100
    assert steps(100, 250) == 50
    assert steps(100, 7) == 7
    assert steps(100, 101) == 1                 # a prime above N: every step
    assert steps(1, 1000) == 1
    assert steps(100, 1000, replicas=2) == 1    # Keras' multi-step loop fails there


class Interrupted(Exception):
    """Stands for a crash or a ctrl-C in the middle of training."""


class LearningRates(keras.callbacks.Callback):
    """The learning rate of each step, read before it (needs LOG_EVERY_N_STEPS = 1);
    raises Interrupted after `stop_after` steps or at the start of epoch `stop_at_epoch`."""

    def __init__(self, stop_after=None, stop_at_epoch=None):
        super().__init__()
        self.rates = []
        self.stop_after = stop_after
        self.stop_at_epoch = stop_at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.stop_at_epoch:
            raise Interrupted()

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None):
        if self.stop_after is not None and len(self.rates) >= self.stop_after:
            raise Interrupted()


@pytest.mark.slow
def test_resumed_run_continues_the_schedule_and_a_new_stage_restarts_it(tmp_path):
    class Scheduled(TinyConfig):
        LEARNING_RATE_WARMUP_STEPS = 3
        LEARNING_RATE_SCHEDULE = "cosine"
        LOG_EVERY_N_STEPS = 1

    def uninterrupted(step):
        """train(0.01, epochs=3): 3 epochs x 2 steps, warm-up over 3 steps, cosine over 6."""
        return 0.01 * min(1.0, (step + 1) / 3) * (1 + math.cos(math.pi * step / 6)) / 2

    config, dataset = Scheduled(), shapes_dataset(8, 64, seed=2)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    first = LearningRates(stop_at_epoch=1)
    with pytest.raises(Interrupted):
        model.train(dataset, dataset, learning_rate=0.01, epochs=3, layers="heads", verbose=0,
                    custom_callbacks=[first])
    np.testing.assert_allclose(first.rates, [0.01 / 3, 0.01 * 2 / 3 * (1 + math.sqrt(0.75)) / 2],
                               rtol=1e-5)
    checkpoint = model.find_last()
    assert checkpoint.endswith("mask_rcnn_tiny_0001.h5")
    assert TrainingStage.read(checkpoint) == TrainingStage(0, 3, 0.01, "heads")

    # The same call after loading the checkpoint: steps 2..5 of the interrupted stage.
    # Before it, a recipe's earlier stage that is already done trains nothing and changes
    # nothing.
    resumed = modellib.MaskRCNN("training", config, str(tmp_path))
    resumed.load_weights(resumed.find_last(), verbose=0)
    resumed.train(dataset, dataset, learning_rate=0.05, epochs=1, layers="all", verbose=0)
    second = LearningRates()
    resumed.train(dataset, dataset, learning_rate=0.01, epochs=3, layers="heads", verbose=0,
                  custom_callbacks=[second])
    hand = [0.01 * (1 + 0.5) / 2, 0.01 * (1 + 0.0) / 2, 0.01 * (1 - 0.5) / 2,
            0.01 * (1 - math.sqrt(0.75)) / 2]
    np.testing.assert_allclose(hand, [uninterrupted(step) for step in range(2, 6)], rtol=1e-9)
    np.testing.assert_allclose(second.rates, hand, rtol=1e-5)
    assert TrainingStage.read(resumed.find_last()) == TrainingStage(0, 3, 0.01, "heads")

    # Another stage (all layers at another rate) from the same checkpoint: a new schedule
    # over epochs 1..3, its warm-up from the start.
    resumed.load_weights(checkpoint, verbose=0)
    third = LearningRates(stop_after=2)
    with pytest.raises(Interrupted):
        resumed.train(dataset, dataset, learning_rate=0.002, epochs=3, layers="all",
                      verbose=0, custom_callbacks=[third])
    np.testing.assert_allclose(third.rates, [0.002 / 3, 0.002 * 2 / 3 * (1 + math.sqrt(0.5)) / 2],
                               rtol=1e-5)


def test_dataset_class_count_mismatch_is_reported(tmp_path, tiny_shapes):
    class TwoClasses(TinyConfig):
        NUM_CLASSES = 2

    model = modellib.MaskRCNN("training", TwoClasses(), str(tmp_path))
    with pytest.raises(ValueError, match="NUM_CLASSES is 2 in the config but train_dataset has 4"):
        model.train(tiny_shapes, tiny_shapes, 0.01, 1, "all", verbose=0)


def test_expected_retracing_drops_only_the_retracing_warning_and_only_inside():
    class Records(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    logger, records = tf.get_logger(), Records()
    logger.addHandler(records)
    retracing = "5 out of the last 7 calls to <function f> triggered tf.function retracing."
    try:
        with training.expected_retracing():
            logger.warning(retracing)
            logger.warning("another warning")
        logger.warning(retracing)
    finally:
        logger.removeHandler(records)
    assert records.messages == ["another warning", retracing]

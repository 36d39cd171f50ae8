"""USE_RPN_ROIS = False: the heads train on random ROIs that the input pipeline feeds as
input_rois (upstream's random_rois), instead of the RPN's proposals."""
import keras
import numpy as np
import pytest

import mrcnn.model as modellib
from mrcnn import data, training

from conftest import TinyConfig, shapes_dataset


class RandomRoisConfig(TinyConfig):
    USE_RPN_ROIS = False
    STEPS_PER_EPOCH = 1
    VALIDATION_STEPS = 1


def _weights(model, names):
    layers = {layer.name: layer for layer in training.iter_layers(model)}  # nested too
    return {name: [np.array(w.numpy()) for w in layers[name].weights] for name in names}


def _pixels(normalised, side):
    """Normalised boxes of a side x side image -> pixel boxes (the graph's convention:
    norm = (box - [0, 0, 1, 1]) / (side - 1))."""
    return np.rint(normalised * (side - 1) + np.array([0, 0, 1, 1])).astype(np.int64)


def test_generator_feeds_input_rois_only_without_rpn_rois():
    dataset = shapes_dataset(4, 64, seed=0)
    plain = data.DataGenerator(dataset, TinyConfig(), shuffle=False, seed=0)[0][0]
    assert "input_rois" not in plain
    inputs = data.DataGenerator(dataset, RandomRoisConfig(), shuffle=False, seed=0)[0][0]
    rois = inputs["input_rois"]
    assert rois.shape == (2, RandomRoisConfig.POST_NMS_ROIS_TRAINING, 4)
    assert np.all(rois[..., 2] > rois[..., 0]) and np.all(rois[..., 3] > rois[..., 1])
    assert rois.min() >= 0 and rois.max() <= 64


def test_a_training_step_on_random_rois(tmp_path):
    keras.utils.set_random_seed(0)
    config = RandomRoisConfig()
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    assert "input_rois" in model.keras_model.input
    dataset = shapes_dataset(4, 64, seed=0)
    batch = data.DataGenerator(dataset, config, shuffle=False, seed=0)[0]
    inputs = batch[0]

    # The heads' sampled ROIs are drawn from the fed ROIs (and, with ROI_INCLUDE_GT_BOXES,
    # the GT boxes), not from the RPN's proposals.
    outputs = model.keras_model(inputs, training=True)
    sampled = np.asarray(outputs["rois"])
    for b in range(config.BATCH_SIZE):
        fed = {tuple(box) for box in inputs["input_rois"][b].astype(np.int64)}
        fed |= {tuple(box) for box in inputs["input_gt_boxes"][b].astype(np.int64)}
        rows = sampled[b][np.any(sampled[b] != 0, axis=1)]
        assert len(rows) > 0
        assert {tuple(box) for box in _pixels(rows, 64)} <= fed

    training.set_trainable(model.keras_model, "all")
    model.compile(0.01, total_steps=1)
    names = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask", "rpn_conv_shared"]
    before = _weights(model.keras_model, names)
    logs = model.keras_model.train_step(batch)
    assert np.isfinite(float(logs["loss"]))
    assert np.isfinite(float(logs["mrcnn_class_loss"]))
    after = _weights(model.keras_model, names)
    for name in names:
        assert any(not np.array_equal(a, b) for a, b in zip(before[name], after[name])), name


@pytest.mark.slow
def test_train_runs_with_random_rois(tmp_path):
    """train() itself: both generators feed input_rois (about 35 s on 2 cores)."""
    keras.utils.set_random_seed(0)
    dataset = shapes_dataset(6, 64, seed=0)
    model = modellib.MaskRCNN("training", RandomRoisConfig(), str(tmp_path))
    history = model.train(dataset, dataset, learning_rate=0.01, epochs=1, layers="all",
                          verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.isfinite(history.history["val_loss"][0])
    assert model.epoch == 1

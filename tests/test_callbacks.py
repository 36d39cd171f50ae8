"""MeanAveragePrecisionCallback: weight copy by name, val_mAP in logs and TensorBoard."""
import glob
import os
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.callbacks import MeanAveragePrecisionCallback
from mrcnn.evaluate import evaluate_map, ground_truth

from conftest import TinyConfig, shapes_dataset


def _two_layer_model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="mrcnn_class_logits")(inputs)
    outputs = keras.layers.Dense(2, name="mrcnn_bbox_fc")(x)
    return keras.Model(inputs, outputs)


class GroundTruthWhenCopied:
    """An inference model that finds every GT instance only once its weights are all ones."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.keras_model = _two_layer_model(seed=1)
        self.config = SimpleNamespace(BATCH_SIZE=2)
        self.images_seen = 0

    def detect(self, images, verbose=0):
        copied = all(np.all(w == 1.0) for w in self.keras_model.get_weights())
        results = []
        for image in images:
            image_id = self._image_id(image)
            boxes, class_ids, masks = ground_truth(self.dataset, image_id)
            if not copied:
                boxes, class_ids, masks = boxes[:0], class_ids[:0], masks[..., :0]
            results.append({"rois": boxes, "class_ids": class_ids,
                            "scores": np.ones(len(class_ids), np.float32), "masks": masks})
        self.images_seen += len(images)
        return results

    def _image_id(self, image):
        for image_id in self.dataset.image_ids:
            if np.array_equal(self.dataset.load_image(image_id), image):
                return image_id
        raise AssertionError("unknown image")


def _scalars(log_dir, tag):
    values = {}
    for path in glob.glob(os.path.join(log_dir, "validation", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_every_n_epochs_copies_weights_then_logs_map(tmp_path):
    dataset = shapes_dataset(4, 64, seed=0)
    training_model = _two_layer_model(seed=0)
    training_model.set_weights([np.ones_like(w) for w in training_model.get_weights()])
    fake = GroundTruthWhenCopied(dataset)
    callback = MeanAveragePrecisionCallback(lambda: fake, dataset, every_n_epochs=2,
                                            image_ids=[0, 1, 2], log_dir=str(tmp_path),
                                            verbose=0)
    callback.set_model(training_model)

    logs = {"loss": 1.0}
    callback.on_epoch_end(0, logs)                 # epoch 1 of every 2: nothing
    assert "val_mAP" not in logs and fake.images_seen == 0
    callback.on_epoch_end(1, logs)                 # epoch 2: copy, then evaluate 3 images
    assert logs["val_mAP"] == pytest.approx(1.0)
    assert fake.images_seen == 3
    for ours, theirs in zip(fake.keras_model.get_weights(), training_model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    callback.on_train_end()
    assert callback.history == [(2, 1.0)]
    assert _scalars(str(tmp_path), "epoch_mAP") == {1: pytest.approx(1.0)}


def test_without_copy_the_fake_model_finds_nothing():
    dataset = shapes_dataset(2, 64, seed=0)
    fake = GroundTruthWhenCopied(dataset)
    assert evaluate_map(fake, dataset)["mAP"][0.5] == 0.0


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="every_n_epochs"):
        MeanAveragePrecisionCallback(TinyConfig(), None, every_n_epochs=0)
    with pytest.raises(TypeError, match="Config or a callable"):
        MeanAveragePrecisionCallback("inference", None)


class DetectionsAsGroundTruth:
    """The images of `dataset` with a model's detections (non-empty masks) as ground truth:
    a model that detects the same scores an mAP of 1."""

    def __init__(self, dataset, results):
        self.dataset = dataset
        self.image_ids = list(dataset.image_ids)
        self.results = dict(zip(self.image_ids, results))

    def load_image(self, image_id):
        return self.dataset.load_image(image_id)

    def load_mask(self, image_id):
        result = self.results[image_id]
        keep = result["masks"].any(axis=(0, 1))
        return result["masks"][..., keep], result["class_ids"][keep].astype(np.int32)


@pytest.mark.slow
def test_real_tiny_model_one_epoch(tmp_path):
    """Train one short epoch; val_mAP in History is the mAP of the checkpoint's detections."""
    import mrcnn.model as modellib

    keras.utils.set_random_seed(0)
    config = TinyConfig()
    train_set = shapes_dataset(6, 64, seed=0)
    val_set = shapes_dataset(4, 64, seed=100)
    model = modellib.MaskRCNN(mode="training", config=config, model_dir=str(tmp_path))
    callback = MeanAveragePrecisionCallback(TinyConfig(), val_set, log_dir=model.log_dir,
                                            model_dir=str(tmp_path), verbose=0)
    history = model.train(train_set, val_set, learning_rate=config.LEARNING_RATE, epochs=1,
                          layers="all", custom_callbacks=[callback], verbose=0)
    value = history.history["val_mAP"][0]
    assert callback.history == [(1, value)]
    assert _scalars(model.log_dir, "epoch_mAP") == {0: pytest.approx(value)}

    # The callback's inference model holds the trained weights...
    trained = model.keras_model.get_layer("mrcnn_mask").kernel.numpy()
    copied = callback.inference_model.keras_model.get_layer("mrcnn_mask").kernel.numpy()
    np.testing.assert_array_equal(copied, trained)
    # ... and detects what an inference model loaded from the checkpoint detects. After
    # two steps from scratch that is many boxes (DETECTION_MIN_CONFIDENCE is 0) but no
    # match with the ground truth (mAP 0.0 measured), so the detections are compared.
    reference = modellib.MaskRCNN(mode="inference", config=TinyConfig(), model_dir=str(tmp_path))
    reference.load_weights(model.find_last(), by_name=True, verbose=0)
    images = [val_set.load_image(i) for i in val_set.image_ids]
    expected = reference.detect(images)
    assert sum(len(r["class_ids"]) for r in expected) >= 10      # 22 measured
    for ours, theirs in zip(callback.inference_model.detect(images), expected):
        np.testing.assert_array_equal(ours["class_ids"], theirs["class_ids"])
        np.testing.assert_array_equal(ours["rois"], theirs["rois"])
        np.testing.assert_allclose(ours["scores"], theirs["scores"], rtol=1e-6)
        np.testing.assert_array_equal(ours["masks"], theirs["masks"])
    assert value == pytest.approx(evaluate_map(reference, val_set)["mAP"][0.5])

    # With those detections as ground truth, the callback's mAP is known: every detection
    # with a mask matches its own copy (detections with empty masks cannot match).
    known = DetectionsAsGroundTruth(val_set, expected)
    callback.dataset = known
    best = evaluate_map(reference, known)["mAP"][0.5]
    assert callback.compute_map() == pytest.approx(best)
    assert best > 0.3       # 0.61 measured: not 0, not 1 (some masks are empty)

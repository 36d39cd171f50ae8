"""The input pipeline under keras fit: same batches for a seed whatever the worker count,
no hang with several workers, errors and bad images reported, images without instances."""
import hashlib
import threading
import warnings

import keras
import numpy as np
import pytest

import mrcnn.model as modellib
from mrcnn import data, training
from mrcnn.shapes import ShapesDataset
from mrcnn.validate import BadImageWarning

from conftest import TinyConfig, shapes_dataset

FIT_TIMEOUT_S = 300  # generous: a hang shows up as a timeout, never as slowness


class BatchRecorder(keras.Model):
    """A model without weights whose training step records a digest of each batch."""

    def __init__(self):
        super().__init__()
        self.digests = []
        self.image_ids = []

    def call(self, inputs):
        return inputs

    def train_step(self, batch):
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        digest = hashlib.sha1()
        for name in sorted(inputs):
            digest.update(np.asarray(inputs[name]).tobytes())
        self.digests.append(digest.hexdigest())
        self.image_ids.append(np.asarray(inputs["input_image_meta"])[:, 0].astype(int).tolist())
        return {"batches": float(len(self.digests))}


def fit_in_thread(model, generator, epochs):
    """Run model.fit in a thread; returns the exception it raised (or None).

    Fails the test if fit has not returned after FIT_TIMEOUT_S.
    """
    outcome = {}

    def run():
        try:
            model.fit(generator, epochs=epochs, shuffle=False, verbose=0)
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=FIT_TIMEOUT_S)
    assert not thread.is_alive(), f"fit did not finish within {FIT_TIMEOUT_S} s (hang)"
    return outcome.get("error")


def record_fit(dataset, workers, epochs=2, steps=3, **kwargs):
    generator = data.DataGenerator(dataset, TinyConfig(), seed=3, steps_per_epoch=steps,
                                   workers=workers, **kwargs)
    model = BatchRecorder()
    model.compile(run_eagerly=True)
    error = fit_in_thread(model, generator, epochs)
    if error is not None:
        raise error
    return model, generator


@pytest.fixture(scope="module")
def shapes10():
    return shapes_dataset(10, 64, seed=0)


def test_same_batches_for_a_seed_with_one_and_two_workers(shapes10):
    from mrcnn.imgaug_compat import iaa

    augmentation = iaa.Sequential([iaa.Fliplr(0.5), iaa.Affine(rotate=(-20, 20))])
    one, _ = record_fit(shapes10, workers=1, augmentation=augmentation)
    two, generator = record_fit(shapes10, workers=2, augmentation=augmentation)
    assert len(one.digests) == 6
    assert one.digests == two.digests
    # The two epochs are different draws (order and augmentation).
    assert one.digests[:3] != one.digests[3:]
    # The batches are those of two consecutive epochs of the generator, read directly
    # (fit also calls on_epoch_end once before its first epoch, so look them up).
    direct = data.DataGenerator(shapes10, TinyConfig(), seed=3, steps_per_epoch=3, workers=1,
                                augmentation=augmentation)

    def ids_of_epoch(epoch):
        direct.epoch = epoch
        return [np.asarray(direct[i][0]["input_image_meta"])[:, 0].astype(int).tolist()
                for i in range(3)]

    epochs = {e: ids_of_epoch(e) for e in range(generator.epoch + 1)}
    first = [e for e, ids in epochs.items() if ids == two.image_ids[:3]]
    assert first and epochs[first[0] + 1] == two.image_ids[3:]


def test_four_workers_finish_several_epochs(shapes10):
    model, generator = record_fit(shapes10, workers=4, epochs=3, steps=5)
    assert len(model.digests) == 15
    assert generator.max_queue_size >= 10


def test_an_error_in_a_worker_stops_fit_with_the_image_named():
    dataset = shapes_dataset(6, 64, seed=1)
    # Batch 2 (images 4, 5) is made by a worker: Keras reads batches 0 and 1 itself
    # first, to learn the batch signature.
    dataset.image_info[5]["shapes"] = [("hexagon", (10, 20, 30), (30, 30, 8))]
    generator = data.DataGenerator(dataset, TinyConfig(), seed=0, steps_per_epoch=3,
                                   workers=2, shuffle=False)
    model = BatchRecorder()
    model.compile(run_eagerly=True)
    error = fit_in_thread(model, generator, epochs=1)
    assert error is not None
    assert "image 5 (source 'shapes', id 5)" in str(error) and "hexagon" in str(error)


def broken_shapes(count, bad_ids, seed=0):
    """Shapes images where ``bad_ids`` return masks of the wrong size."""
    class BrokenShapes(ShapesDataset):
        def load_mask(self, image_id):
            mask, class_ids = super().load_mask(image_id)
            if image_id in bad_ids:
                return mask[:-3], class_ids
            return mask, class_ids

    dataset = BrokenShapes()
    dataset.load_shapes(count, 64, 64, seed=seed)
    dataset.prepare()
    return dataset


def test_skip_policy_under_fit_reports_the_bad_images():
    dataset = broken_shapes(8, bad_ids={1, 4, 6})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, generator = record_fit(dataset, workers=2, epochs=2, steps=4,
                                      bad_image_policy="skip")
    used = {i for batch in model.image_ids for i in batch}
    assert used.isdisjoint({1, 4, 6}) and used
    assert sorted(generator.bad_images.errors) == [1, 4, 6]
    messages = [str(w.message) for w in caught if issubclass(w.category, BadImageWarning)]
    for image_id in (1, 4, 6):
        assert any(m.startswith(f"skipping image {image_id} (source 'shapes'") and
                   "masks are 61x64x" in m for m in messages), messages
    summaries = [m for m in messages if "bad image(s) [1, 4, 6]" in m]
    assert len(summaries) >= 2     # one per trained epoch


def test_training_run_with_bad_and_empty_images(tmp_path):
    """MaskRCNN.train with the skip policy and empty images as negatives, then one step
    on a batch of empty images only: the losses of the heads' positives are 0."""
    class SkipConfig(TinyConfig):
        BAD_IMAGE_POLICY = "skip"
        TRAIN_ON_EMPTY_IMAGES = True

    config = SkipConfig()
    # Half the images are bad and two have no instance, so every pass meets them all.
    dataset = broken_shapes(8, bad_ids={0, 1, 5, 6})
    for image_id in (2, 3):
        dataset.image_info[image_id]["shapes"] = []          # no instance
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.train(dataset, shapes_dataset(4, 64, seed=2), learning_rate=0.001,
                              epochs=1, layers="heads", verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    summaries = [str(w.message) for w in caught if issubclass(w.category, BadImageWarning)
                 and "bad image(s) [0, 1, 5, 6]" in str(w.message)]
    assert summaries, [str(w.message) for w in caught]

    empty = data.DataGenerator(dataset, config, shuffle=False, seed=0, workers=1,
                               train_on_empty_images=True)
    inputs = empty.load_sample(2, np.random.default_rng(0)), empty.load_sample(3)
    batch = (empty._collate(list(inputs))[0],)
    assert not batch[0]["input_gt_class_ids"].any()
    model.keras_model.train_step(batch)
    values = model.keras_model.last_step_values.numpy()   # total, the five losses, flag
    losses = dict(zip(["loss", *training.LOSS_NAMES], values[:-1].tolist()))
    assert np.isfinite(values).all() and values[-1] == 1, losses
    assert losses["rpn_class_loss"] > 0
    for name in ("rpn_bbox_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss"):
        assert losses[name] == 0, losses

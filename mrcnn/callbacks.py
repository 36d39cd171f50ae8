"""Keras callbacks for Mask R-CNN training.

`MeanAveragePrecisionCallback` measures mAP@0.5 on validation images while training runs:
at the end of every N-th epoch it copies the training graph's weights, by layer and weight
name, into an inference model, runs `detect` on the images and compares the detections
with the ground truth (`mrcnn.evaluate.evaluate_map`). The value goes into the epoch's
logs as "val_mAP" (so History, EarlyStopping and checkpoint callbacks placed after it can
use it) and into TensorBoard::

    map_callback = MeanAveragePrecisionCallback(
        InferenceConfig(), val_dataset, every_n_epochs=2, image_ids=val_dataset.image_ids[:50],
        log_dir=model.log_dir)
    model.train(train_dataset, val_dataset, learning_rate=config.LEARNING_RATE,
                epochs=20, layers="heads", custom_callbacks=[map_callback])

With `monitor="val_mAP"` (and optionally `patience=N`) the same call also keeps the best
epoch's weights as `mask_rcnn_{name}_best.h5` and stops when the mAP no longer improves
(mrcnn.checkpoints); epochs without an evaluation count neither way.
"""
import os
import shutil
import tempfile

import keras
import numpy as np

from mrcnn import weights_io
from mrcnn.config import Config
from mrcnn.evaluate import evaluate_map


class MeanAveragePrecisionCallback(keras.callbacks.Callback):
    """Validation mAP@`iou_threshold` every `every_n_epochs` epochs, as logs["val_mAP"].

    Args:
        inference_model: a Config for an inference model (built once, on first use, with
            `mrcnn.model.MaskRCNN(mode="inference")`), or a callable returning an inference
            model: anything with `keras_model` (the graph that receives the weights),
            `detect(images)` and `config.BATCH_SIZE`.
        dataset: a prepared Dataset of validation images.
        every_n_epochs: evaluate after epochs N, 2N, ... (1-based).
        image_ids: images to evaluate (all of `dataset` by default).
        log_dir: where to write the TensorBoard scalar "epoch_mAP" (under
            `log_dir/validation`, next to Keras' validation losses); None: no TensorBoard.
        iou_threshold: mask-IoU threshold of the mAP.
        model_dir: model_dir for an inference model built from a Config (a temporary
            folder by default; nothing is written there).
        verbose: print the mAP after each evaluation.
    Attributes:
        history: list of (epoch number, mAP) in evaluation order.
    """

    def __init__(self, inference_model, dataset, every_n_epochs=1, image_ids=None,
                 log_dir=None, iou_threshold=0.5, model_dir=None, verbose=1):
        super().__init__()
        if int(every_n_epochs) < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if not (isinstance(inference_model, Config) or callable(inference_model)):
            raise TypeError("inference_model must be a Config or a callable returning an "
                            f"inference model, got {type(inference_model).__name__}")
        self._source = inference_model
        self.dataset = dataset
        self.every_n_epochs = int(every_n_epochs)
        self.image_ids = None if image_ids is None else list(image_ids)
        self.log_dir = log_dir
        self.iou_threshold = float(iou_threshold)
        self.model_dir = model_dir
        self.verbose = verbose
        self.history = []
        self._inference_model = None
        self._writer = None

    # --- Pieces -----------------------------------------------------------------------
    @property
    def inference_model(self):
        """The inference model, built on first use."""
        if self._inference_model is None:
            self._inference_model = self._build_inference_model()
        return self._inference_model

    def _build_inference_model(self):
        if isinstance(self._source, Config):
            from mrcnn.model import MaskRCNN

            model_dir = self.model_dir or tempfile.gettempdir()
            return MaskRCNN(mode="inference", config=self._source, model_dir=model_dir)
        return self._source()

    def copy_weights(self):
        """Copy every weight of the training model into the inference model, by name.

        Returns:
            the report of weights_io.load_weights ("loaded", "skipped", "missing").
        """
        directory = tempfile.mkdtemp(prefix="map_callback_")
        path = os.path.join(directory, "weights.h5")
        try:
            weights_io.save_weights(self.model, path)
            return weights_io.load_weights(self.inference_model.keras_model, path)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def compute_map(self):
        """mAP at `iou_threshold` of the inference model on the chosen images."""
        result = evaluate_map(self.inference_model, self.dataset, image_ids=self.image_ids,
                              iou_thresholds=(self.iou_threshold,))
        return float(result["mAP"][self.iou_threshold])

    def _write_summary(self, epoch, value):
        if self.log_dir is None:
            return
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, "validation"))
        with self._writer.as_default():
            tf.summary.scalar("epoch_mAP", value, step=epoch)
        self._writer.flush()

    # --- Keras hooks --------------------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        """`epoch` is 0-based, as Keras passes it; evaluates after epochs N, 2N, ..."""
        if (epoch + 1) % self.every_n_epochs != 0:
            return
        self.copy_weights()
        value = self.compute_map()
        self.history.append((epoch + 1, value))
        if logs is not None:
            logs["val_mAP"] = value
        self._write_summary(epoch, value)
        if self.verbose:
            shown = "nan" if np.isnan(value) else f"{value:.4f}"
            print(f"\nEpoch {epoch + 1}: val_mAP@{self.iou_threshold:g} = {shown}")

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

"""MaskRCNN: build, train, detect, save and load — the conductor of the other modules.

Import as upstream: `import mrcnn.model as modellib`, then
`modellib.MaskRCNN(mode="training" | "inference", config=config, model_dir=MODEL_DIR)`.
The graph lives in `mrcnn.nn`, the training steps in `mrcnn.training`, the input pipeline
in `mrcnn.data`, molding/unmolding in `mrcnn.inference` and weight files in
`mrcnn.weights_io`.
"""
import datetime
import glob
import os
import re
import tempfile

import keras
import numpy as np
import tensorflow as tf

from mrcnn import distribute, inference, schedule, tiling, training, utils, weights_io
from mrcnn import keypoint_inference
from mrcnn import checkpoints as run_checkpoints
from mrcnn.data import (DataGenerator, build_rpn_targets, data_generator,  # noqa: F401
                        load_image_gt, mold_image, unmold_image)
from mrcnn.image_meta import (compose_image_meta, parse_image_meta,  # noqa: F401
                              parse_image_meta_graph)
from mrcnn.nn.graph import build_inference_graph, build_training_graph
from mrcnn.utils import compute_backbone_shapes  # noqa: F401

_CHECKPOINT_RE = re.compile(
    r".*[/\\][\w-]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})[/\\]mask\_rcnn\_[\w-]+(\d{4})\.h5$")


def log(text, array=None):
    """Print a message, and for an array its shape, min, max and dtype (as upstream)."""
    if array is not None:
        array = np.asarray(array)
        text = text.ljust(25)
        if array.size:
            text += (f"shape: {str(array.shape):20}  min: {array.min():10.5f}  "
                     f"max: {array.max():10.5f}  {array.dtype}")
        else:
            text += f"shape: {str(array.shape):20}  min: {'':10}  max: {'':10}  {array.dtype}"
    print(text)


class LoadReport(dict):
    """load_weights' result: {"loaded", "skipped", "missing"} with a one-line repr."""

    def __repr__(self):
        return (f"LoadReport(loaded={len(self['loaded'])}, skipped={len(self['skipped'])}, "
                f"missing={len(self['missing'])})")


class MaskRCNN:
    """Mask R-CNN with upstream's interface.

    Attributes:
        keras_model: the keras.Model of the chosen mode.
        epoch: epochs trained so far (resumed from a checkpoint's name when loaded).
        log_dir, checkpoint_path: where this run writes TensorBoard logs and checkpoints.
    """

    def __init__(self, mode, config, model_dir):
        if mode not in ("training", "inference"):
            raise ValueError(f"mode must be 'training' or 'inference', got {mode!r}")
        config.validate(mode=mode)
        self.mode = mode
        self.config = config
        self.model_dir = model_dir
        self.epoch = 0
        self._anchor_cache = {}
        self._predict_fn = None
        self._checkpoint_stage = None   # schedule.TrainingStage of the loaded checkpoint
        self.set_log_dir()
        # Training runs under the strategy of GPU_COUNT / TF_CONFIG (see mrcnn.distribute).
        self.strategy = (distribute.strategy_for(config) if mode == "training"
                         else tf.distribute.get_strategy())
        self.keras_model = self.build(mode=mode, config=config)

    # --- Graph ------------------------------------------------------------------------
    def build(self, mode, config):
        """Build the training or inference graph as a keras.Model."""
        config.validate(mode=mode)
        strategy = getattr(self, "strategy", None) if mode == "training" else None
        with distribute.build_scope(config, strategy, mode):
            if mode == "training":
                inputs, outputs = build_training_graph(config)
                return training.TrainingModel(inputs=inputs, outputs=outputs, config=config,
                                              name="mask_rcnn")
            inputs, outputs = build_inference_graph(config)
            return keras.Model(inputs=inputs, outputs=outputs, name="mask_rcnn")

    def get_anchors(self, image_shape):
        """Normalised anchors [A, 4] for a molded image shape, in the graph's order."""
        key = tuple(int(s) for s in image_shape[:2])
        if key not in self._anchor_cache:
            backbone_shapes = compute_backbone_shapes(self.config, image_shape)
            anchors = utils.generate_pyramid_anchors(
                self.config.RPN_ANCHOR_SCALES, self.config.RPN_ANCHOR_RATIOS,
                backbone_shapes, self.config.BACKBONE_STRIDES, self.config.RPN_ANCHOR_STRIDE)
            self._anchor_cache[key] = utils.norm_boxes(anchors, image_shape[:2])
        return self._anchor_cache[key]

    # --- Checkpoints ------------------------------------------------------------------
    def set_log_dir(self, model_path=None):
        """Pick this run's log directory; resume the epoch count from a checkpoint path.

        A path such as ".../shapes20260101T1200/mask_rcnn_shapes_0012.h5" continues that
        run's directory with `epoch` = 12, as upstream.
        """
        self.epoch = 0
        now = datetime.datetime.now()
        if model_path:
            match = _CHECKPOINT_RE.match(os.path.abspath(model_path).replace("\\", "/"))
            if match:
                now = datetime.datetime(*(int(match.group(i)) for i in range(1, 6)))
                self.epoch = int(match.group(6))
        name = (self.config.NAME or "mask_rcnn").lower()
        self.log_dir = os.path.join(self.model_dir, f"{name}{now:%Y%m%dT%H%M}")
        self.checkpoint_path = os.path.join(self.log_dir,
                                            f"mask_rcnn_{name}_{{epoch:04d}}.h5")

    def find_last(self):
        """Path of the newest checkpoint of the newest run directory of this config's NAME.

        Raises:
            FileNotFoundError: no run directory or no checkpoint in it.
        """
        name = (self.config.NAME or "mask_rcnn").lower()
        runs = sorted(d for d in glob.glob(os.path.join(self.model_dir, f"{name}*"))
                      if os.path.isdir(d))
        if not runs:
            raise FileNotFoundError(
                f"Could not find model directory under {self.model_dir} for NAME {name!r}")
        for run in reversed(runs):
            checkpoints = sorted(path for path in glob.glob(os.path.join(run, "mask_rcnn*.h5"))
                                 if not run_checkpoints.is_best_checkpoint(path))
            if checkpoints:
                return checkpoints[-1]
        raise FileNotFoundError(f"Could not find weight files in {runs[-1]}")

    def find_best(self):
        """Path of the best checkpoint (`mask_rcnn_{name}_best.h5`, written by
        `train(monitor=...)`) of the newest run directory of this config's NAME that has
        one. `find_last()` never returns it.

        Raises:
            FileNotFoundError: no run directory holds a best checkpoint.
        """
        return run_checkpoints.find_best(self.model_dir, self.config.NAME)

    def save_weights(self, filepath, epoch=None):
        """Write the model's weights, name-keyed, atomically (see mrcnn.weights_io)."""
        attributes = {"config": self.config.to_json()}
        if epoch is not None:
            attributes["epoch"] = int(epoch)
        weights_io.save_weights(self.keras_model, filepath, attributes=attributes)

    def load_weights(self, filepath, by_name=False, exclude=None, verbose=1):
        """Load weights saved by this package or by upstream (Keras-2 HDF5), by layer name.

        Weights are always matched by layer and weight name, so a training checkpoint loads
        into the inference graph; `by_name` is accepted for upstream compatibility. Keras 3
        native files (".weights.h5") load positionally into the same graph they came from.

        Args:
            exclude: layer names to skip (implies by-name loading), e.g. the heads that
                depend on NUM_CLASSES when fine-tuning on another class count.
        Returns:
            dict with the "loaded", "skipped" and "missing" layer names.
        """
        del by_name  # matching is always by name
        if str(filepath).endswith(".weights.h5"):
            self.keras_model.load_weights(filepath)
            report = {"loaded": [layer.name for layer in self.keras_model.layers],
                      "skipped": [], "missing": []}
        else:
            report = weights_io.load_weights(self.keras_model, filepath, exclude=exclude)
        if verbose:
            print(f"Loaded {len(report['loaded'])} layers from {filepath}"
                  + (f"; not in the file: {report['missing']}" if report["missing"] else ""))
        self.set_log_dir(filepath)
        self._checkpoint_stage = schedule.TrainingStage.read(filepath)
        return LoadReport(report)

    def get_imagenet_weights(self, weights="imagenet"):
        """Path of a file with ImageNet weights for config.BACKBONE ("resnet50"/"resnet101").

        Load it with load_weights(path, by_name=True). `weights` may be the local path of
        keras.applications' "<arch>_weights_tf_dim_ordering_tf_kernels_notop.h5" file.
        """
        from mrcnn import imagenet
        return imagenet.get_imagenet_weights(self.config.BACKBONE, weights=weights)

    def export_saved_model(self, export_dir):
        """Write a SavedModel serving raw uint8 images; see mrcnn.export.export_saved_model."""
        from mrcnn import export
        return export.export_saved_model(self, export_dir)

    def export_onnx(self, path, opset=None):
        """Write an ONNX file serving raw uint8 images; see mrcnn.export.export_onnx."""
        from mrcnn import export
        return export.export_onnx(self, path, opset=opset)

    def export_tflite(self, path, quantization=None, image_shape=None):
        """Write a TFLite (LiteRT) file with builtin ops only; see mrcnn.export.export_tflite."""
        from mrcnn import export
        return export.export_tflite(self, path, quantization=quantization,
                                    image_shape=image_shape)

    # --- Training ---------------------------------------------------------------------
    def compile(self, learning_rate, momentum=None, total_steps=1, first_step=0,
                steps_per_execution=1):
        """Attach a fresh SGD optimiser (upstream compiles at every `train()`).

        Args:
            learning_rate: base learning rate of the schedule.
            momentum: SGD momentum; None: config.LEARNING_MOMENTUM.
            total_steps, first_step: the stage's length in optimizer steps and the steps
                of it already taken (see mrcnn.schedule).
            steps_per_execution: optimizer steps between two calls of the callbacks'
                batch hooks (see training.steps_per_execution).
        """
        training.compile_model(self.keras_model, self.config, learning_rate, total_steps,
                               momentum=momentum, first_step=first_step,
                               steps_per_execution=steps_per_execution)

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
              augmentation=None, custom_callbacks=None, no_augmentation_sources=None,
              verbose=1, workers=None, stage_start_epoch=None, monitor=None,
              monitor_mode="auto", patience=None, keep_last=None):
        """Train until `epochs` (cumulative, as upstream) with the selected layers.

        The call is one training stage: its learning-rate schedule (warm-up, cosine decay)
        spans the epochs from the stage's start to `epochs`. A new call starts a new
        stage at `self.epoch`. After `load_weights` of a checkpoint written by the same
        call (same learning_rate, epochs and layers), the call resumes that stage and
        continues its schedule where the checkpoint left it (see mrcnn.schedule).

        Args:
            train_dataset, val_dataset: prepared `Dataset`s.
            learning_rate: base learning rate of this stage.
            epochs: the epoch number to train up to (not a count); resumes at `self.epoch`.
            layers: "heads" | "3+" | "4+" | "5+" | "all" | a regex of layer names.
            augmentation: an imgaug augmenter (or albumentations transform) for training.
            custom_callbacks: extra keras callbacks.
            no_augmentation_sources: dataset sources whose images are not augmented.
            workers: input threads; None: config.DATA_WORKERS (None: every usable CPU).
            stage_start_epoch: None (new stage, or the resumed checkpoint's), or the
                epoch at which this stage's schedule started, explicitly.
            monitor: None, or a value of the epoch's logs ("val_loss", "val_mAP" from a
                MeanAveragePrecisionCallback in custom_callbacks, ...): the best epoch's
                weights go to `mask_rcnn_{name}_best.h5` (see mrcnn.checkpoints,
                `find_best()`); monitor_mode "auto" | "min" | "max" says which is best.
            patience: with `monitor`, stop after this many epochs without a new best.
            keep_last: None (keep every epoch file), or keep the newest N epoch files of
                the run directory, deleting older ones (never the newest nor the best).
        Returns:
            the keras History of this stage.
        Raises:
            training.TrainingDivergedError: a loss or gradient became non-finite; the
                weights and the newest checkpoint are from the last finite step/epoch.
        """
        if self.mode != "training":
            raise ValueError("train() needs a model built with mode='training'")
        self.config.validate(mode="training")
        self._check_dataset(train_dataset, "train_dataset")
        self._check_dataset(val_dataset, "val_dataset")
        seed = self.config.SEED
        # Under several workers each loads only its share of the images.
        train_dataset = distribute.worker_dataset(train_dataset, self.strategy)
        val_dataset = distribute.worker_dataset(val_dataset, self.strategy)
        batch_size = distribute.generator_batch_size(self.config, self.strategy)
        train_generator = DataGenerator(train_dataset, self.config, shuffle=True,
                                        batch_size=batch_size,
                                        augmentation=augmentation, seed=seed,
                                        no_augmentation_sources=no_augmentation_sources,
                                        steps_per_epoch=self.config.STEPS_PER_EPOCH,
                                        workers=workers)
        train_generator.epoch = self.epoch
        val_generator = DataGenerator(val_dataset, self.config, shuffle=True,
                                      batch_size=batch_size,
                                      seed=None if seed is None else seed + 1,
                                      steps_per_epoch=self.config.VALIDATION_STEPS,
                                      workers=workers)
        os.makedirs(self.log_dir, exist_ok=True)
        training.set_trainable(self.keras_model, layers, verbose=0)
        steps_per_epoch = self.config.STEPS_PER_EPOCH
        stage = schedule.stage_of_call(self.epoch, learning_rate, epochs, layers,
                                       self._checkpoint_stage, stage_start_epoch)
        self.compile(learning_rate, total_steps=stage.total_steps(steps_per_epoch),
                     first_step=stage.first_step(self.epoch, steps_per_epoch),
                     steps_per_execution=training.steps_per_execution(
                         self.config, self.strategy.num_replicas_in_sync))

        guard = training.NonFiniteGuard()
        saver = training.CheckpointSaver(self.checkpoint_path, guard, self.config.to_json(),
                                         stage=stage)
        tensorboard_dir = self._tensorboard_dir()
        callbacks = [guard, saver,
                     training.StepSummaries(tensorboard_dir, steps_per_epoch),
                     keras.callbacks.TensorBoard(log_dir=tensorboard_dir,
                                                 update_freq="epoch", write_graph=False)]
        callbacks += list(custom_callbacks or [])
        callbacks += self._checkpoint_callbacks(guard, saver, monitor, monitor_mode,
                                                patience, keep_last)
        if verbose:
            log(f"\nStarting at epoch {self.epoch}. LR={learning_rate}\n")
            if stage.start_epoch < self.epoch:
                log(f"Continuing the schedule of the stage begun at epoch "
                    f"{stage.start_epoch}")
            log(f"Checkpoint Path: {self.checkpoint_path}")
        with training.expected_retracing():
            history = self.keras_model.fit(
                distribute.fit_input(train_generator, self.strategy),
                initial_epoch=self.epoch, epochs=epochs,
                steps_per_epoch=self.config.STEPS_PER_EPOCH, callbacks=callbacks,
                validation_data=distribute.fit_input(val_generator, self.strategy),
                validation_steps=self.config.VALIDATION_STEPS,
                shuffle=False, verbose=verbose)
        if guard.tripped:
            raise training.TrainingDivergedError(guard.message + self._last_good(saver))
        if epochs > self.epoch:            # a call that trained nothing leaves it alone
            self._checkpoint_stage = stage
        self.epoch = max(self.epoch, epochs)
        return history

    def _checkpoint_callbacks(self, guard, saver, monitor, monitor_mode, patience,
                              keep_last):
        """train()'s best checkpoint / early stopping / pruning callbacks, after the
        custom callbacks (which may put the monitored value into the logs)."""
        if patience is not None and monitor is None:
            raise ValueError("patience needs monitor= (the value whose improvement it waits "
                             "for, e.g. monitor='val_loss')")
        callbacks = []
        if monitor is not None:
            callbacks.append(run_checkpoints.BestCheckpoint(
                run_checkpoints.best_checkpoint_path(self.checkpoint_path), monitor=monitor,
                mode=monitor_mode, patience=patience, guard=guard,
                attributes={"config": self.config.to_json()}))
        if keep_last is not None:
            callbacks.append(run_checkpoints.KeepLastCheckpoints(
                self.checkpoint_path, keep_last, saver=saver))
        return callbacks

    def _tensorboard_dir(self):
        """This run's log directory on the chief; a scratch directory on other workers."""
        return self.log_dir if distribute.is_chief() else tempfile.mkdtemp(prefix="mrcnn_")

    def _last_good(self, saver):
        """Text naming the newest checkpoint, for the divergence message."""
        last = saver.saved[-1] if saver.saved else None
        if last is None:
            try:
                last = self.find_last()
            except FileNotFoundError:
                return "; no checkpoint has been written yet"
        return f"; the last good checkpoint is {last}"

    def _check_dataset(self, dataset, label):
        try:
            image_ids = dataset.image_ids
        except AttributeError:
            raise ValueError(f"{label}: call prepare() on the dataset before training") from None
        if len(image_ids) == 0:
            raise ValueError(f"{label} has no images")
        if dataset.num_classes != self.config.NUM_CLASSES:
            raise ValueError(
                f"NUM_CLASSES is {self.config.NUM_CLASSES} in the config but {label} has "
                f"{dataset.num_classes} classes (background included): "
                f"{list(dataset.class_names)}")

    # --- Inference --------------------------------------------------------------------
    def mold_inputs(self, images):
        """See `mrcnn.inference.mold_inputs`."""
        return inference.mold_inputs(images, self.config)

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape,
                          window, mask_format="full"):
        """See `mrcnn.inference.unmold_detections`."""
        return inference.unmold_detections(detections, mrcnn_mask, original_image_shape,
                                           image_shape, window, mask_format)

    def _predict(self, molded_images, image_metas):
        """Run the inference graph on one batch of any size, fetching what detect() needs.

        Args:
            molded_images: float32 [B, h, w, C], one size; image_metas: float32 [B, META].
        Returns:
            numpy detections float32 [B, D, 6] and detection_masks float32
            [B, D, mh, mw] (each detection's mask of its class); the whole mrcnn_mask
            [B, D, mh, mw, NC] stays in the graph. Keypoint models add
            detection_keypoints float32 [B, D, K, 3] (see `_detection_function`).
        """
        images = tf.constant(molded_images, tf.float32)
        metas = tf.constant(image_metas, tf.float32)
        if self._predict_fn is None:
            self._predict_fn = _detection_function(self.keras_model)
            # Traced for any batch size, so partial batches need no padding.
            self._predict_fn.get_concrete_function(
                tf.TensorSpec([None] + list(images.shape[1:]), tf.float32),
                tf.TensorSpec([None, metas.shape[1]], tf.float32))
        # Keypoint models also return detection_keypoints [B, D, K, 3].
        return tuple(output.numpy() for output in self._predict_fn(images, metas))

    def detect(self, images, verbose=0, mask_format="full"):
        """Detect instances in any number of images of any sizes.

        Images are molded, run in batches of up to BATCH_SIZE images of one molded size
        (a partial batch runs as it is, unpadded) and mapped back to their own pixels.
        A crop-mode config molds as "pad64" (the training crops' scale, the whole
        image; see `mrcnn.inference`).

        Args:
            images: a list of [H, W, 3] images, one [H, W, 3] image, or a [B, H, W, 3]
                array (a [B, H, W] array is ambiguous: pass a list). uint8 as is; grey
                and RGBA are converted; float images in [0, 1] (times 255) or [0, 255],
                and uint16 (// 256), are converted to uint8 as training converts a
                Dataset's images, with a DataConversionWarning. Empty images raise a
                ValueError naming their index.
            mask_format: what "masks" holds (see below). "full" is upstream's; "box"
                and "rle" never make the [H, W, N] stack (one 4000x3000 image with 100
                detections: 1.2 GB of bool).
        Returns:
            a list with one dict per image (also for a single image): "rois" int32
            [N, (y1, x1, y2, x2)] pixels of the original image, "class_ids" int32 [N],
            "scores" float32 [N], and "masks":
            - "full": bool [H, W, N] of the original image;
            - "box": float32 [N, mh, mw] (MASK_SHAPE, e.g. 28x28) probabilities, mask i
              in the frame of rois[i] (row 0 at y1, the last row at y2 - 1);
              `utils.paste_masks(r["masks"], r["rois"], image.shape)` gives "full";
            - "rle": a list of N COCO RLE dicts {"size": [H, W], "counts": str}
              (pycocotools.mask.decode gives "full"'s masks[..., i]).
            A keypoint model (NUM_KEYPOINTS = K > 0) adds "keypoints" float32
            [N, K, 3]: (x, y, score) per detection, x, y in the original image's
            pixel-index frame (integer x is the centre of column x), score the heatmap
            cell's softmax probability (see mrcnn.keypoint_inference); a keypoint-only
            model (KEYPOINT_WITH_MASKS False) returns no "masks".
        """
        if self.mode != "inference":
            raise ValueError("detect() needs a model built with mode='inference'")
        inference.check_mask_format(mask_format)
        images = inference.prepare_images(images, self.config.IMAGE_CHANNEL_COUNT)
        if not images:
            return []
        if verbose:
            log(f"Processing {len(images)} images")
        molded, metas, windows = self.mold_inputs(images)
        results = [None] * len(images)
        for batch in self._batches(molded):
            batch_images = np.stack([molded[i] for i in batch])
            batch_metas = metas[batch]
            if verbose:
                log("molded_images", batch_images)
                log("image_metas", batch_metas)
            detections, masks, *keypoints = self._predict(batch_images, batch_metas)
            for row, index in enumerate(batch):
                rois, class_ids, scores, image_masks = self.unmold_detections(
                    detections[row], masks[row], images[index].shape,
                    batch_images[row].shape, windows[index], mask_format)
                results[index] = {"rois": rois, "class_ids": class_ids, "scores": scores,
                                  "masks": image_masks}
                if keypoints:
                    keypoint_inference.attach_keypoints(
                        results[index], self.config, detections[row], keypoints[0][row],
                        images[index].shape, batch_images[row].shape, windows[index])
        return results

    def detect_molded(self, molded_images, image_metas, verbose=0, mask_format="full"):
        """Detect on images already molded (e.g. from load_image_gt + mold_image).

        Args:
            molded_images: float32 [N, h, w, C], `mold_image` of images with pixel values
                0..255 (image - MEAN_PIXEL), resized as `utils.resize_image` does; a float
                image in [0, 1] must be scaled to 0..255 first (detect() does that).
                Images that look like [0, 1] images minus MEAN_PIXEL get a warning.
            image_metas: float32 [N, IMAGE_META_SIZE] (compose_image_meta; the window
                and the original shape decide the pixels of the results).
            mask_format: "full", "box" or "rle", as for `detect`.
        Returns the same dicts as `detect`, in the pixels of each meta's original image.
        """
        if self.mode != "inference":
            raise ValueError("detect_molded() needs a model built with mode='inference'")
        inference.check_mask_format(mask_format)
        molded_images = np.asarray(molded_images, dtype=np.float32)
        image_metas = np.asarray(image_metas, dtype=np.float32)
        inference.warn_if_unit_range(molded_images, self.config)
        parsed = parse_image_meta(image_metas)
        results = []
        for start in range(0, len(molded_images), self.config.BATCH_SIZE):
            stop = start + self.config.BATCH_SIZE
            detections, masks, *keypoints = self._predict(molded_images[start:stop],
                                                          image_metas[start:stop])
            for row in range(min(stop, len(molded_images)) - start):
                index = start + row
                rois, class_ids, scores, image_masks = self.unmold_detections(
                    detections[row], masks[row], parsed["original_image_shape"][index],
                    molded_images[index].shape, parsed["window"][index], mask_format)
                results.append({"rois": rois, "class_ids": class_ids, "scores": scores,
                                "masks": image_masks})
                if keypoints:
                    keypoint_inference.attach_keypoints(
                        results[-1], self.config, detections[row], keypoints[0][row],
                        parsed["original_image_shape"][index], molded_images[index].shape,
                        parsed["window"][index])
        return results

    def detect_tiled(self, images, tile_size=None, overlap=0.2, batch_size=None,
                     mask_format="box", match_threshold=0.5, verbose=0):
        """Detect in images larger than the model: overlapping tiles at native resolution,
        detected in batches, merged across the seams. See `mrcnn.tiling.detect_tiled`
        (tile_size defaults to IMAGE_SHAPE[:2], masks are box-local unless mask_format
        says "rle" or "full")."""
        return tiling.detect_tiled(self, images, tile_size=tile_size, overlap=overlap,
                                   batch_size=batch_size, mask_format=mask_format,
                                   match_threshold=match_threshold, verbose=verbose)

    def _batches(self, molded):
        """Indices grouped by molded shape, then in chunks of BATCH_SIZE."""
        groups = {}
        for index in range(len(molded)):
            groups.setdefault(tuple(molded[index].shape), []).append(index)
        size = self.config.BATCH_SIZE
        for indices in groups.values():
            for start in range(0, len(indices), size):
                yield indices[start:start + size]

    # --- Inspection -------------------------------------------------------------------
    def ancestor(self, tensor, name, checked=None):
        """Kept for upstream notebooks: Keras 3 graphs are inspected by layer name instead."""
        del tensor, checked
        return self.keras_model.get_layer(name).output

    def find_trainable_layer(self, layer):
        """The layer itself (Keras 3 needs no TimeDistributed wrappers here)."""
        return layer

    def get_trainable_layers(self):
        """Layers with weights, nested models entered."""
        return [layer for layer in training.iter_layers(self.keras_model) if layer.weights]

    def run_graph(self, images, outputs, image_metas=None):
        """Run the inference graph and return named intermediate tensors.

        Args:
            images: list of images (molded here as detect() does).
            outputs: list of (name, tensor) with tensors of `keras_model`, e.g.
                ("proposals", model.keras_model.get_layer("ROI").output).
            image_metas: optional metas to use instead of the molded ones.
        Returns:
            dict name -> numpy array (batch axis first).
        """
        if self.mode != "inference":
            raise ValueError("run_graph() needs a model built with mode='inference'")
        names = [name for name, _ in outputs]
        probe = keras.Model(inputs=self.keras_model.input,
                            outputs=[tensor for _, tensor in outputs])
        molded, metas, _ = self.mold_inputs(images)
        metas = metas if image_metas is None else np.asarray(image_metas)
        values = probe({"input_image": tf.constant(np.asarray(molded), tf.float32),
                        "input_image_meta": tf.constant(metas, tf.float32)}, training=False)
        if not isinstance(values, (list, tuple)):
            values = [values]
        result = {}
        for name, value in zip(names, values):
            result[name] = np.asarray(value)
            log(name, result[name])
        return result


def _detection_function(keras_model):
    """tf.function (images, metas) -> (detections, detection_masks) of the inference graph,
    then detection_keypoints [B, D, K, 3] for a keypoint model.

    It runs the sub-model of `keras_model` that ends in these outputs, so nothing
    else (the per-class mrcnn_mask above all) is copied out of the graph. A keypoint-only
    model has no mask head: its detection_masks are zeros [B, D, 1, 1].
    """
    names = {layer.name for layer in keras_model.layers}
    wanted = ["mrcnn_detection"] + [name for name in ("detection_masks",
                                                      "detection_keypoints") if name in names]
    detector = keras.Model(inputs=keras_model.input,
                           outputs=[keras_model.get_layer(name).output for name in wanted])

    @tf.function(reduce_retracing=True)
    def detect(images, metas):
        outputs = detector({"input_image": images, "input_image_meta": metas},
                           training=False)
        outputs = dict(zip(wanted, outputs))
        detections = outputs["mrcnn_detection"]
        masks = outputs.get("detection_masks")
        if masks is None:
            masks = tf.zeros(tf.concat([tf.shape(detections)[:2], [1, 1]], 0), tf.float32)
        keypoints = outputs.get("detection_keypoints")
        return (detections, masks) if keypoints is None else (detections, masks, keypoints)

    return detect

"""Mask accuracy of the shapes model trained with each ROI_ALIGN_MODE and MASK_SHAPE.

Trains mrcnn.shapes.ShapesConfig from scratch (layers="all") once per variant with the same
keras seed, the same training images in the same order and the same learning-rate schedule,
then evaluates each model on the same held-out images. A variant is
MODE:MASK_SIZE, e.g. "aligned:56" = ROI_ALIGN_MODE "aligned", MASK_SHAPE [56, 56] and
MASK_POOL_SIZE 28 (the mask head's deconvolution doubles the pooled size). Each variant
trains and evaluates in a subprocess of its own, one after another, so that time and memory
of one do not carry over to the next.

Prints one JSON line per variant:
  mAP@0.5, mAP@0.75, mAP@[0.5:0.95]   mrcnn.evaluate.evaluate_map, mask IoU, thresholds
                                      0.50..0.95;
  boundary_F@2px                      mean boundary F-score (mrcnn.boundary, tolerance 2 px)
                                      over the detections matched to a ground truth at mask
                                      IoU >= 0.5, and "matched", how many there were;
  s_per_step                          training seconds per step, from the epochs after the
                                      first (the first includes building the graph);
  train_minutes                       the whole training, validation and checkpoints included.

    python bench/bench_roi_align_modes.py [--variants upstream:28 aligned:28 aligned:56]
        [--epochs 5] [--steps-per-epoch 100] [--train-images 1000] [--val-images 100]
        [--seed 0] [--min-confidence 0.7]

The defaults train 500 steps per variant, the schedule of tests/test_e2e_shapes.py. One seed
is one sample: compare variants on several seeds before concluding anything about small
differences, and read s_per_step as a ratio between variants of the same run.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

DEFAULT_VARIANTS = ["upstream:28", "aligned:28", "aligned:56"]
BOUNDARY_TOLERANCE = 2
MATCH_IOU = 0.5


def parse_variant(text):
    """"aligned:56" -> ("aligned", 56); the mask pool size is half the mask size."""
    try:
        mode, size = text.split(":")
        size = int(size)
    except ValueError:
        raise SystemExit(f"variant {text!r}: expected MODE:MASK_SIZE, e.g. aligned:56")
    if mode not in ("upstream", "aligned") or size % 2:
        raise SystemExit(f"variant {text!r}: mode must be upstream|aligned and the mask "
                         "size even")
    return mode, size


def _datasets(train_count, val_count):
    from mrcnn.shapes import ShapesDataset

    train = ShapesDataset()
    train.load_shapes(train_count, 128, 128, seed=0)
    train.prepare()
    val = ShapesDataset()
    val.load_shapes(val_count, 128, 128, seed=10_000)   # disjoint from the training images
    val.prepare()
    return train, val


def _configs(mode, mask_size, steps_per_epoch, seed, min_confidence=None):
    from mrcnn.shapes import ShapesConfig

    class TrainConfig(ShapesConfig):
        ROI_ALIGN_MODE = mode
        MASK_SHAPE = [mask_size, mask_size]
        MASK_POOL_SIZE = mask_size // 2
        STEPS_PER_EPOCH = steps_per_epoch
        SEED = seed

    class InferenceConfig(TrainConfig):
        IMAGES_PER_GPU = 4
        DETECTION_MIN_CONFIDENCE = (ShapesConfig.DETECTION_MIN_CONFIDENCE
                                    if min_confidence is None else min_confidence)

    return TrainConfig(), InferenceConfig()


def train_and_time(config, epochs, train, val, seed, prefix):
    """Train `config` from scratch (layers="all") in a fresh folder.

    Returns (last checkpoint path, the last epoch's logs, figures of the training: epochs,
    steps, seed, last_epoch_loss, train_minutes and s_per_step, the mean of the epochs
    after the first, which also builds the graph).
    """
    import keras

    import mrcnn.model as modellib

    keras.utils.set_random_seed(seed)
    model = modellib.MaskRCNN("training", config, tempfile.mkdtemp(prefix=prefix))
    last, epoch_seconds = {}, []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.start)
            last.update(logs or {})

    start = time.perf_counter()
    model.train(train, val, learning_rate=config.LEARNING_RATE, epochs=epochs,
                layers="all", custom_callbacks=[Record()], verbose=0)
    steady = epoch_seconds[1:] or epoch_seconds
    return model.find_last(), last, {
        "epochs": epochs, "steps": epochs * config.STEPS_PER_EPOCH, "seed": seed,
        "last_epoch_loss": round(float(last.get("loss", float("nan"))), 4),
        "train_minutes": round((time.perf_counter() - start) / 60, 2),
        "s_per_step": round(float(np.mean(steady)) / config.STEPS_PER_EPOCH, 3)}


def train_variant(mode, mask_size, epochs, steps_per_epoch, train, val, seed):
    """Train one variant; returns (last checkpoint path, figures of the training)."""
    config, _ = _configs(mode, mask_size, steps_per_epoch, seed)
    checkpoint, last, figures = train_and_time(config, epochs, train, val, seed,
                                               f"mrcnn_roi_align_{mode}_{mask_size}_")
    figures["last_epoch_mask_loss"] = round(float(last.get("mrcnn_mask_loss", float("nan"))), 4)
    return checkpoint, figures


class _RecordingModel:
    """A model whose detect() also keeps each result, so that one detection pass over the
    dataset serves evaluate_map and the boundary measure."""

    def __init__(self, model):
        self.model, self.config, self.results = model, model.config, []

    def detect(self, images, verbose=0):
        results = self.model.detect(images, verbose=verbose)
        self.results.extend(results)
        return results


def boundary_figures(results, val, image_ids):
    """Mean boundary F-score of the detections matched at mask IoU >= MATCH_IOU."""
    from mrcnn import utils
    from mrcnn.boundary import matched_boundary_f_scores
    from mrcnn.evaluate import ground_truth

    scores = []
    for image_id, result in zip(image_ids, results):
        _, gt_class_ids, gt_masks = ground_truth(val, image_id)
        order = np.argsort(-np.asarray(result["scores"]), kind="stable")
        pred_class_ids = np.asarray(result["class_ids"])[order]
        pred_masks = np.asarray(result["masks"])[..., order]
        overlaps = utils.compute_overlaps_masks(pred_masks, gt_masks)
        _, pred_match = utils.match_by_overlaps(overlaps, gt_class_ids, pred_class_ids,
                                                MATCH_IOU)
        scores.extend(matched_boundary_f_scores(pred_masks, gt_masks, pred_match,
                                                BOUNDARY_TOLERANCE))
    return {f"boundary_F@{BOUNDARY_TOLERANCE}px": round(float(np.mean(scores)), 4)
            if scores else None, "matched": len(scores)}


def evaluate_checkpoint(mode, mask_size, checkpoint, val, min_confidence=None):
    """Mask mAP at 0.5, 0.75, [0.5:0.95] and the boundary F-score of one checkpoint."""
    import mrcnn.model as modellib
    from mrcnn.evaluate import COCO_IOU_THRESHOLDS, evaluate_map

    _, config = _configs(mode, mask_size, 1, 0, min_confidence)
    model = modellib.MaskRCNN("inference", config, tempfile.mkdtemp(prefix="mrcnn_eval_"))
    model.load_weights(checkpoint, verbose=0)
    recording = _RecordingModel(model)
    result = evaluate_map(recording, val, iou_thresholds=COCO_IOU_THRESHOLDS)
    figures = {"mode": mode, "mask_shape": mask_size, "mask_pool_size": mask_size // 2,
               "sampling_ratio": config.SAMPLING_RATIO,
               "min_confidence": config.DETECTION_MIN_CONFIDENCE,
               "val_images": len(val.image_ids),
               "mAP@0.5": round(result["mAP"][0.5], 4),
               "mAP@0.75": round(result["mAP"][0.75], 4),
               "mAP@[0.5:0.95]": round(result["mAP_range"], 4)}
    figures.update(boundary_figures(recording.results, val, result["image_ids"]))
    return figures


def run_variant(args, variant):
    mode, mask_size = parse_variant(variant)
    train, val = _datasets(args.train_images, args.val_images)
    checkpoint, figures = train_variant(mode, mask_size, args.epochs, args.steps_per_epoch,
                                        train, val, args.seed)
    figures.update(evaluate_checkpoint(mode, mask_size, checkpoint, val,
                                       args.min_confidence))
    print(json.dumps({"bench": "roi_align_modes", "variant": variant, **figures}),
          flush=True)


def _child_command(args, variant):
    command = [sys.executable, os.path.abspath(__file__), "--variant-only", variant,
               "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps_per_epoch),
               "--train-images", str(args.train_images),
               "--val-images", str(args.val_images), "--seed", str(args.seed)]
    if args.min_confidence is not None:
        command += ["--min-confidence", str(args.min_confidence)]
    return command


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS,
                        help="MODE:MASK_SIZE, e.g. upstream:28 aligned:56")
    parser.add_argument("--variant-only", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="DETECTION_MIN_CONFIDENCE of the evaluation (default: the "
                             "config's 0.7)")
    args = parser.parse_args()
    if args.variant_only:
        run_variant(args, args.variant_only)
        return
    for variant in args.variants:
        parse_variant(variant)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))
    for variant in args.variants:
        completed = subprocess.run(_child_command(args, variant), env=env)
        if completed.returncode:
            print(json.dumps({"bench": "roi_align_modes", "variant": variant,
                              "error": f"exit status {completed.returncode}"}), flush=True)


if __name__ == "__main__":
    main()

"""Mask mAP of the shapes model trained with each ROI_ALIGN_MODE, same seed and schedule.

Trains mrcnn.shapes.ShapesConfig from scratch once per mode (keras seed --seed, the same training
images in the same order, the same learning-rate schedule), then evaluates each model on the
same held-out images with mrcnn.evaluate.evaluate_map. Prints one JSON line per mode:
mAP@0.5, mAP@0.75, mAP@[0.5:0.95] (mask IoU), the final training loss, minutes of training.

    python bench/bench_roi_align_modes.py [--epochs 8] [--steps-per-epoch 100]
        [--train-images 1000] [--val-images 100] [--modes upstream aligned]
        [--min-confidence 0.7]

One short run is noisy (one seed); compare modes on several seeds and the full schedule
before concluding anything about small differences.
"""
import argparse
import json
import tempfile
import time


def _datasets(train_count, val_count):
    from mrcnn.shapes import ShapesDataset

    train = ShapesDataset()
    train.load_shapes(train_count, 128, 128, seed=0)
    train.prepare()
    val = ShapesDataset()
    val.load_shapes(val_count, 128, 128, seed=10_000)   # disjoint from the training images
    val.prepare()
    return train, val


def _configs(mode, steps_per_epoch, seed, min_confidence=None):
    from mrcnn.shapes import ShapesConfig

    class TrainConfig(ShapesConfig):
        ROI_ALIGN_MODE = mode
        STEPS_PER_EPOCH = steps_per_epoch
        SEED = seed

    class InferenceConfig(TrainConfig):
        IMAGES_PER_GPU = 4
        DETECTION_MIN_CONFIDENCE = (ShapesConfig.DETECTION_MIN_CONFIDENCE
                                    if min_confidence is None else min_confidence)

    return TrainConfig(), InferenceConfig()


def train_mode(mode, epochs, steps_per_epoch, train, val, seed):
    """Train one mode; returns (last checkpoint path, figures of the training)."""
    import keras

    import mrcnn.model as modellib

    config, _ = _configs(mode, steps_per_epoch, seed)
    keras.utils.set_random_seed(seed)
    model_dir = tempfile.mkdtemp(prefix=f"mrcnn_roi_align_{mode}_")
    model = modellib.MaskRCNN("training", config, model_dir)
    last = {}

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            last.update(logs or {})

    start = time.perf_counter()
    model.train(train, val, learning_rate=config.LEARNING_RATE, epochs=epochs,
                layers="all", custom_callbacks=[Record()], verbose=0)
    return model.find_last(), {
        "epochs": epochs, "steps": epochs * steps_per_epoch, "seed": seed,
        "last_epoch_loss": round(float(last.get("loss", float("nan"))), 4),
        "train_minutes": round((time.perf_counter() - start) / 60, 2)}


def evaluate_checkpoint(mode, checkpoint, val, min_confidence=None):
    """mAP@0.5, @0.75 and @[0.5:0.95] (mask IoU) of one checkpoint on `val`."""
    import mrcnn.model as modellib
    from mrcnn.evaluate import COCO_IOU_THRESHOLDS, evaluate_map

    _, config = _configs(mode, 1, 0, min_confidence)
    model = modellib.MaskRCNN("inference", config, tempfile.mkdtemp(prefix="mrcnn_eval_"))
    model.load_weights(checkpoint, verbose=0)
    result = evaluate_map(model, val, iou_thresholds=COCO_IOU_THRESHOLDS)
    return {"mode": mode, "sampling_ratio": config.SAMPLING_RATIO,
            "min_confidence": config.DETECTION_MIN_CONFIDENCE,
            "val_images": len(val.image_ids),
            "mAP@0.5": round(result["mAP"][0.5], 4),
            "mAP@0.75": round(result["mAP"][0.75], 4),
            "mAP@[0.5:0.95]": round(result["mAP_range"], 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["upstream", "aligned"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="DETECTION_MIN_CONFIDENCE of the evaluation (default: the "
                             "config's 0.7); lower it to rank the few, unsure detections "
                             "of a short schedule")
    args = parser.parse_args()
    train, val = _datasets(args.train_images, args.val_images)
    for mode in args.modes:
        checkpoint, figures = train_mode(mode, args.epochs, args.steps_per_epoch, train, val,
                                         args.seed)
        figures.update(evaluate_checkpoint(mode, checkpoint, val, args.min_confidence))
        print(json.dumps({"bench": "roi_align_modes", **figures}), flush=True)


if __name__ == "__main__":
    main()

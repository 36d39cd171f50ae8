"""Does MASK_HEAD_POSITIVES_ONLY change what the mask head learns when BatchNorm trains?

With frozen BatchNorm (TRAIN_BN = False) running the mask head on the leading rows only
leaves the mask loss unchanged. With TRAIN_BN = None the mask head's BatchNorm layers take
their batch statistics (and so their moving statistics for inference) from the rows the
head runs on: positives only, or every sampled ROI (negatives and padding rows too).

This trains mrcnn.shapes.ShapesConfig (TRAIN_BN = None) from scratch with the setting True
and False, same seed, initial weights, batches and schedule, and scores each on held-out
shapes images with mrcnn.evaluate.evaluate_map (mask IoU). Prints one JSON line per run:
    {"bench": "mask_head_rows", "MASK_HEAD_POSITIVES_ONLY": ..., "steps": ..., "seed": ...,
     "train_minutes": ..., "mask_mAP@0.5": ..., "mask_mAP@[0.5:0.95]": ...}

    python bench/bench_mask_head_rows.py [--steps 300] [--seeds 0] [--eval-images 50]
"""
import argparse
import json
import os
import tempfile
import time


def _datasets(size, train_images, eval_images, seed):
    from mrcnn.shapes import ShapesDataset

    train = ShapesDataset()
    train.load_shapes(train_images, size, size, seed=seed)
    train.prepare()
    held_out = ShapesDataset()
    held_out.load_shapes(eval_images, size, size, seed=seed + 10_000)
    held_out.prepare()
    return train, held_out


def run(positives_only, steps, seed, train_images, eval_images):
    import keras

    import mrcnn.model as modellib
    from mrcnn.evaluate import COCO_IOU_THRESHOLDS, evaluate_map
    from mrcnn.shapes import ShapesConfig

    class Trained(ShapesConfig):
        STEPS_PER_EPOCH = steps
        VALIDATION_STEPS = 1
        MASK_HEAD_POSITIVES_ONLY = positives_only
        SEED = seed

    class Detecting(Trained):
        IMAGES_PER_GPU = 4

    config = Trained()
    size = int(config.IMAGE_SHAPE[0])
    train_set, held_out = _datasets(size, train_images, eval_images, seed)
    model_dir = tempfile.mkdtemp(prefix="mrcnn_bench_")
    keras.utils.set_random_seed(seed)          # same initial weights for both settings
    model = modellib.MaskRCNN("training", config, model_dir=model_dir)
    start = time.perf_counter()
    model.train(train_set, held_out, learning_rate=config.LEARNING_RATE, epochs=1,
                layers="all", verbose=0)
    minutes = (time.perf_counter() - start) / 60
    detector = modellib.MaskRCNN("inference", Detecting(), model_dir=model_dir)
    detector.load_weights(model.find_last(), by_name=True, verbose=0)
    result = evaluate_map(detector, held_out, iou_thresholds=COCO_IOU_THRESHOLDS)
    return {"bench": "mask_head_rows", "MASK_HEAD_POSITIVES_ONLY": positives_only,
            "TRAIN_BN": config.TRAIN_BN, "steps": steps, "batch": config.BATCH_SIZE,
            "seed": seed, "eval_images": eval_images, "train_minutes": round(minutes, 2),
            "mask_mAP@0.5": round(float(result["mAP"][0.5]), 4),
            "mask_mAP@[0.5:0.95]": round(float(result["mAP_range"]), 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--train-images", type=int, default=500)
    parser.add_argument("--eval-images", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for seed in args.seeds:
        for positives_only in (True, False):
            print(json.dumps(run(positives_only, args.steps, seed, args.train_images,
                                 args.eval_images)), flush=True)


if __name__ == "__main__":
    main()

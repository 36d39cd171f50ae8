"""Keypoint demo figure: train KeypointShapesConfig from scratch, print OKS keypoint AP.

Trains Mask R-CNN with its keypoint head on the synthetic triangles of
mrcnn.keypoint_shapes (64x64 images, three vertex keypoints, horizontal flips with the
flip map) for ``--steps`` steps on the CPU, then detects on held-out images and prints
one JSON line: training minutes, steps, OKS keypoint AP / AP50 / AP75 (pycocotools,
the data set's sigmas) and mask mAP@0.5 (mrcnn.evaluate) for comparison::

    python bench/bench_keypoint_shapes.py              # the 10-minute recipe
    python bench/bench_keypoint_shapes.py --steps 200  # the end-to-end test's length
"""
import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402

import mrcnn.model as modellib  # noqa: E402
from mrcnn.evaluate import evaluate_map  # noqa: E402
from mrcnn.imgaug_compat import iaa  # noqa: E402
from mrcnn.keypoint_eval import evaluate_keypoint_metrics  # noqa: E402
from mrcnn.keypoint_shapes import SIGMAS, KeypointShapesConfig, KeypointShapesDataset  # noqa: E402

DEMO_STEPS = 500


def datasets(train_count=1000, val_count=100):
    """(train, val): disjoint seeds, so the evaluation images are unseen."""
    train = KeypointShapesDataset()
    train.load_triangles(train_count, 64, 64, seed=0)
    train.prepare()
    val = KeypointShapesDataset()
    val.load_triangles(val_count, 64, 64, seed=10_000)
    val.prepare()
    return train, val


def train_and_evaluate(model_dir, steps, steps_per_epoch=50, val_count=100, seed=0):
    """Train for ``steps`` steps (whole epochs), then return the figures as a dict."""
    keras.utils.set_random_seed(seed)

    class TrainConfig(KeypointShapesConfig):
        STEPS_PER_EPOCH = steps_per_epoch

    class InferenceConfig(TrainConfig):
        IMAGES_PER_GPU = 4
        DETECTION_MIN_CONFIDENCE = 0.5

    config = TrainConfig()
    train, val = datasets(val_count=val_count)
    model = modellib.MaskRCNN("training", config, model_dir)
    epochs = max(1, round(steps / steps_per_epoch))
    start = time.time()
    model.train(train, val, learning_rate=config.LEARNING_RATE, epochs=epochs, layers="all",
                augmentation=iaa.Fliplr(0.5), verbose=0)
    minutes = (time.time() - start) / 60
    inference = modellib.MaskRCNN("inference", InferenceConfig(), model_dir)
    inference.load_weights(model.find_last(), verbose=0)
    keypoint = evaluate_keypoint_metrics(inference, val, sigmas=SIGMAS)
    masks = evaluate_map(inference, val, iou_thresholds=(0.5,))
    return {"steps": epochs * steps_per_epoch, "train_minutes": round(minutes, 2),
            "keypoint_AP": round(keypoint["AP"], 4), "keypoint_AP50": round(keypoint["AP50"], 4),
            "keypoint_AP75": round(keypoint["AP75"], 4),
            "mask_mAP50": round(float(masks["mAP"][0.5]), 4), "val_images": val_count}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=DEMO_STEPS)
    parser.add_argument("--val-images", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as model_dir:
        figures = train_and_evaluate(model_dir, args.steps, val_count=args.val_images)
    print(json.dumps({"bench": "keypoint_shapes", **figures}))


if __name__ == "__main__":
    main()

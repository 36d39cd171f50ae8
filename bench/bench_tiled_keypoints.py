"""Keypoints through tiled detection: OKS keypoint AP of detect_tiled on mosaics.

Each mosaic is 2x2 held-out keypoint-shapes images (64x64 each, seed 10 000), so a
128x128 image whose triangles lie at the model's own scale. detect_tiled cuts it into
tiles of 64 (overlap 0.5: 3 x 3 tiles starting at 0, 32, 64, so borders cut the
triangles of the middle); the ground truth is the four images' masks and keypoints,
shifted. One JSON line: keypoint AP50 / AP (pycocotools, the data set's sigmas) of

* "detect_64px": detect() on the 64x64 images themselves (the model's own figure);
* "detect_mosaic": detect() on the whole mosaic, shrunk to the model's 64 px;
* "tiled": detect_tiled (tiling.merge_keypoints: each keypoint from the best-scored
  part that has it off its tile's cut borders);
* "tiled_best_part": each instance's keypoints from its best-scored part;
* "tiled_max_score": each keypoint from the part that scores it highest;
* "tiled_unmerged": detect_tiled with match_threshold 1.01 (no merging).

The model is a KeypointShapesConfig checkpoint (``--weights``; e.g. the last checkpoint of
notebooks/train_keypoints.ipynb), or trained here first with the recipe of
bench_keypoint_shapes.py (``--steps``, 500 by default)::

    python bench/bench_tiled_keypoints.py --weights logs/kpshapes.../mask_rcnn_kpshapes_0010.h5
    python bench/bench_tiled_keypoints.py               # trains 500 steps first
"""
import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import mrcnn.model as modellib  # noqa: E402
from mrcnn import tiling  # noqa: E402
from mrcnn.dataset import Dataset  # noqa: E402
from mrcnn.imgaug_compat import iaa  # noqa: E402
from mrcnn.keypoint_eval import keypoint_metrics_of_detections  # noqa: E402
from mrcnn.keypoint_shapes import SIGMAS, KeypointShapesConfig, KeypointShapesDataset  # noqa: E402

SIDE = 64
OFFSETS = ((0, 0), (0, SIDE), (SIDE, 0), (SIDE, SIDE))   # (y, x) of the four images


class InferenceConfig(KeypointShapesConfig):
    IMAGES_PER_GPU = 4
    DETECTION_MIN_CONFIDENCE = 0.5


class MosaicDataset(Dataset):
    """Mosaic m: images 4m..4m+3 of `base` at OFFSETS; masks and keypoints shifted."""

    def __init__(self, base, count):
        super().__init__()
        self.base = base
        self.add_class("kpshapes", 1, "triangle")
        for m in range(count):
            self.add_image("mosaic", m, None, parts=[4 * m + i for i in range(4)])
        self.prepare()

    def _parts(self, image_id):
        return zip(self.image_info[image_id]["parts"], OFFSETS)

    def load_image(self, image_id):
        out = np.zeros((2 * SIDE, 2 * SIDE, 3), np.uint8)
        for part, (y, x) in self._parts(image_id):
            out[y:y + SIDE, x:x + SIDE] = self.base.load_image(part)
        return out

    def load_mask(self, image_id):
        masks = []
        for part, (y, x) in self._parts(image_id):
            mask = self.base.load_mask(part)[0]
            full = np.zeros((2 * SIDE, 2 * SIDE, mask.shape[-1]), bool)
            full[y:y + SIDE, x:x + SIDE] = mask
            masks.append(full)
        masks = np.concatenate(masks, axis=-1)
        return masks, np.ones(masks.shape[-1], np.int32)

    def load_keypoints(self, image_id):
        rows = []
        for part, (y, x) in self._parts(image_id):
            points = self.base.load_keypoints(part).copy()
            labelled = points[..., 2] > 0                 # unlabelled ones stay (0, 0, 0)
            points[..., 0] += x * labelled
            points[..., 1] += y * labelled
            rows.append(points)
        return np.concatenate(rows)


def train(model_dir, steps):
    """The recipe of bench_keypoint_shapes.py; returns the last checkpoint's path."""
    keras.utils.set_random_seed(0)
    config = KeypointShapesConfig()
    train_set = KeypointShapesDataset()
    train_set.load_triangles(1000, SIDE, SIDE, seed=0)
    train_set.prepare()
    val_set = KeypointShapesDataset()
    val_set.load_triangles(100, SIDE, SIDE, seed=10_000)
    val_set.prepare()
    model = modellib.MaskRCNN("training", config, model_dir)
    model.train(train_set, val_set, learning_rate=config.LEARNING_RATE,
                epochs=max(1, round(steps / config.STEPS_PER_EPOCH)), layers="all",
                augmentation=iaa.Fliplr(0.5), verbose=0)
    return model.find_last()


def _ap(dataset, results):
    metrics = keypoint_metrics_of_detections(dataset, zip(dataset.image_ids, results), SIGMAS)
    return [round(metrics["AP50"], 4), round(metrics["AP"], 4)]


def _rechoose(tiles, tile_results, choose):
    """merge_tiles with each instance's keypoints chosen by `choose(points, members)`."""
    merged = tiling.merge_tiles(tiles, tile_results)
    gathered = tiling.gather_tile_detections(tiles, tile_results)
    points = gathered["keypoints"]
    merged["keypoints"] = np.array(
        [choose(points, members) for members in tiling.instance_groups(tiles, gathered)],
        np.float32).reshape((-1,) + points.shape[1:])
    return merged


def _best_part(points, members):
    return points[members[0]]


def _max_score(points, members):
    parts = points[members]
    return parts[np.argmax(parts[:, :, 2], axis=0), np.arange(parts.shape[1])]


def evaluate(weights, mosaics=25, overlap=0.5):
    model = modellib.MaskRCNN("inference", InferenceConfig(), tempfile.mkdtemp())
    model.load_weights(weights, verbose=0)
    singles = KeypointShapesDataset()
    singles.load_triangles(4 * mosaics, SIDE, SIDE, seed=10_000)
    singles.prepare()
    mosaic = MosaicDataset(singles, mosaics)
    images = [mosaic.load_image(i) for i in mosaic.image_ids]
    figures = {"detect_64px": _ap(singles, model.detect(
        [singles.load_image(i) for i in singles.image_ids]))}
    figures["detect_mosaic"] = _ap(mosaic, model.detect(images))
    per_tile = []
    for image in images:
        tiles = tiling.tile_boxes(image.shape, (SIDE, SIDE), overlap)
        per_tile.append((tiles, tiling.detect_tiles(model, image, tiles,
                                                    model.config.BATCH_SIZE)))
    figures["tiles_per_mosaic"] = len(per_tile[0][0])
    figures["tiled"] = _ap(mosaic, [tiling.merge_tiles(t, r) for t, r in per_tile])
    figures["tiled_best_part"] = _ap(mosaic, [_rechoose(t, r, _best_part) for t, r in per_tile])
    figures["tiled_max_score"] = _ap(mosaic, [_rechoose(t, r, _max_score) for t, r in per_tile])
    figures["tiled_unmerged"] = _ap(mosaic, [tiling.merge_tiles(t, r, match_threshold=1.01)
                                             for t, r in per_tile])
    # The shipped path gives what merge_tiles gave here.
    tiled = model.detect_tiled(images[0], tile_size=SIDE, overlap=overlap)[0]
    np.testing.assert_array_equal(tiled["keypoints"],
                                  tiling.merge_tiles(*per_tile[0])["keypoints"])
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="a KeypointShapesConfig checkpoint (else trains)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--mosaics", type=int, default=25)
    parser.add_argument("--overlap", type=float, default=0.5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as model_dir:
        weights = args.weights or train(model_dir, args.steps)
        figures = evaluate(weights, args.mosaics, args.overlap)
    print(json.dumps({"bench": "tiled_keypoints", "weights": "given" if args.weights else
                      f"trained {args.steps} steps", **figures}))


if __name__ == "__main__":
    main()

"""The classifier loss's options for class imbalance, measured on shapes with a rare class.

Trains mrcnn.shapes.ShapesConfig from scratch (layers="all") once per variant on an
IMBALANCED training set and evaluates each model on a BALANCED held-out set. Every variant
has the same keras seed, the same training images in the same order and the same
learning-rate schedule; only the classifier loss differs:

  cross_entropy   CLASS_LOSS "cross_entropy", no class weights (upstream's loss);
  weighted        CLASS_LOSS_WEIGHTS from the training set's instance frequencies f_c:
                  w_c = f_c^(-1/2) / sum_k f_k^(1/2) for the object classes, so that
                  sum_c f_c w_c = 1 (a positive ROI weighs 1 on average, as before), and
                  background 1;
  focal           CLASS_LOSS "focal", FOCAL_GAMMA 2, no class weights.

The imbalanced training set: the shapes images of seed 0, in which each shape is a square,
circle or triangle with probability 1/3, with all but a seeded choice of the triangles
redrawn as a square or a circle (same centre, half-extent and colour), so that triangles
are --rare-fraction of the training instances (5 % by default). A square or circle of the
triangle's centre and half-extent lies inside the triangle's box, so it fits the image;
images and masks are both drawn from the rewritten specs, so they stay consistent. The
held-out set is the unmodified shapes images of seed 10_000 (about a third triangles).

Each variant trains and evaluates in a subprocess of its own, one after another. Prints one
JSON line per variant:
  AP@0.5                    per class (square, circle, triangle): mask-IoU 0.5 AP of the
                            class's detections pooled over the held-out set
                            (mrcnn.evaluate.evaluate_map "per_class"), and their "mean";
  mAP@0.5, mAP@[0.5:0.95]   upstream's per-image mask mAP averaged over the images;
                            like the APs, of the detections that pass
                            DETECTION_MIN_CONFIDENCE (the config's 0.7, or --min-confidence);
  recall                    per class, at that DETECTION_MIN_CONFIDENCE:
                            ground truths matched by a detection of their class at mask
                            IoU >= 0.5 / ground truths; "rare_recall" is the triangle's,
                            "rare_precision" the share of triangle detections so matched;
  s_per_step                training seconds per step, from the epochs after the first.

    python bench/bench_class_imbalance.py [--variants cross_entropy weighted focal]
        [--epochs 5] [--steps-per-epoch 100] [--rare-fraction 0.05]
        [--train-images 1000] [--val-images 200] [--seed 0] [--min-confidence 0.7]
    python bench/bench_class_imbalance.py --variants focal --checkpoint MODEL.h5
        --min-confidence 0.3      # evaluate a saved model again, without training

The defaults train 500 steps per variant, the schedule of tests/test_e2e_shapes.py. One seed
is one sample: differences of a few points between variants are within what another seed
changes, and the held-out set has only some hundred instances per class. The focal loss
gives lower softmax scores than the cross-entropy, so a fixed confidence cut removes more
of its detections: compare the variants at a low --min-confidence too.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_roi_align_modes import _RecordingModel, train_and_time  # noqa: E402

VARIANTS = ("cross_entropy", "weighted", "focal")
RARE_CLASS = "triangle"
COMMON_CLASSES = ("square", "circle")
MATCH_IOU = 0.5
GAMMA = 2.0


def imbalanced_shapes(count, seed, rare_fraction, height=128, width=128):
    """A prepared ShapesDataset of `count` images whose RARE_CLASS instances are
    `rare_fraction` of all instances (rounded); the others are redrawn as COMMON_CLASSES.

    Which triangles stay, and what the others become, is drawn by
    np.random.RandomState([seed, 1]), so the set depends only on its arguments.
    """
    from mrcnn.shapes import ShapesDataset

    dataset = ShapesDataset()
    dataset.load_shapes(count, height, width, seed=seed)
    places = [(i, j) for i, info in enumerate(dataset.image_info)
              for j, (name, _, _) in enumerate(info["shapes"]) if name == RARE_CLASS]
    total = sum(len(info["shapes"]) for info in dataset.image_info)
    keep = int(round(rare_fraction * total))
    if keep > len(places):
        raise SystemExit(f"--rare-fraction {rare_fraction}: the images hold only "
                         f"{len(places) / total:.3f} {RARE_CLASS}s")
    rng = np.random.RandomState([int(seed), 1])
    for index in rng.permutation(len(places))[keep:]:
        i, j = places[index]
        shapes = dataset.image_info[i]["shapes"]
        _, color, dims = shapes[j]
        shapes[j] = (COMMON_CLASSES[rng.randint(len(COMMON_CLASSES))], color, dims)
    dataset.prepare()
    return dataset


def instance_counts(dataset):
    """{class name: instances} over the dataset's masks (hidden shapes left out)."""
    counts = {}
    for image_id in dataset.image_ids:
        _, class_ids = dataset.load_mask(image_id)
        for class_id in class_ids:
            name = dataset.class_names[int(class_id)]
            counts[name] = counts.get(name, 0) + 1
    return counts


def inverse_sqrt_frequency_weights(counts, class_names):
    """CLASS_LOSS_WEIGHTS [NUM_CLASSES]: background 1, object class c
    f_c^(-1/2) / sum_k f_k^(1/2), f the instance frequencies (so sum_c f_c w_c = 1)."""
    total = sum(counts.get(name, 0) for name in class_names[1:])
    freq = np.array([counts.get(name, 0) / total for name in class_names[1:]])
    if (freq == 0).any():
        raise SystemExit("every class needs training instances for frequency weights")
    weights = freq ** -0.5 / np.sum(freq ** 0.5)
    return [1.0] + [round(float(w), 4) for w in weights]


def _datasets(train_count, val_count, rare_fraction):
    from mrcnn.shapes import ShapesDataset

    train = imbalanced_shapes(train_count, 0, rare_fraction)
    val = ShapesDataset()
    val.load_shapes(val_count, 128, 128, seed=10_000)   # disjoint from the training images
    val.prepare()
    return train, val


def _configs(variant, class_weights, steps_per_epoch, seed, min_confidence=None):
    from mrcnn.shapes import ShapesConfig

    class TrainConfig(ShapesConfig):
        CLASS_LOSS = "focal" if variant == "focal" else "cross_entropy"
        FOCAL_GAMMA = GAMMA
        CLASS_LOSS_WEIGHTS = class_weights if variant == "weighted" else None
        STEPS_PER_EPOCH = steps_per_epoch
        SEED = seed

    class InferenceConfig(TrainConfig):
        IMAGES_PER_GPU = 4
        DETECTION_MIN_CONFIDENCE = (ShapesConfig.DETECTION_MIN_CONFIDENCE
                                    if min_confidence is None else min_confidence)

    return TrainConfig(), InferenceConfig()


def train_variant(config, epochs, train, val, seed):
    """Train one variant; returns (last checkpoint path, figures of the training)."""
    checkpoint, last, figures = train_and_time(config, epochs, train, val, seed,
                                               "mrcnn_class_imbalance_")
    figures["last_epoch_class_loss"] = round(
        float(last.get("mrcnn_class_loss", float("nan"))), 4)
    return checkpoint, figures


def recall_figures(results, val, image_ids):
    """Per-class recall and the rare class's precision of the detections, at MATCH_IOU."""
    from mrcnn import utils
    from mrcnn.evaluate import ground_truth

    gt_count, gt_found, det_count, det_hit = {}, {}, {}, {}
    for image_id, result in zip(image_ids, results):
        _, gt_class_ids, gt_masks = ground_truth(val, image_id)
        order = np.argsort(-np.asarray(result["scores"]), kind="stable")
        pred_class_ids = np.asarray(result["class_ids"])[order]
        pred_masks = np.asarray(result["masks"])[..., order]
        overlaps = utils.compute_overlaps_masks(pred_masks, gt_masks)
        gt_match, pred_match = utils.match_by_overlaps(overlaps, gt_class_ids,
                                                       pred_class_ids, MATCH_IOU)
        for class_id, match in zip(gt_class_ids, gt_match):
            gt_count[int(class_id)] = gt_count.get(int(class_id), 0) + 1
            gt_found[int(class_id)] = gt_found.get(int(class_id), 0) + int(match > -1)
        for class_id, match in zip(pred_class_ids, pred_match):
            det_count[int(class_id)] = det_count.get(int(class_id), 0) + 1
            det_hit[int(class_id)] = det_hit.get(int(class_id), 0) + int(match > -1)
    names = val.class_names
    recall = {names[c]: round(gt_found.get(c, 0) / n, 4) for c, n in sorted(gt_count.items())}
    rare = names.index(RARE_CLASS)
    return {"recall": recall, "rare_recall": recall.get(RARE_CLASS),
            "rare_detections": det_count.get(rare, 0),
            "rare_precision": round(det_hit.get(rare, 0) / det_count[rare], 4)
            if det_count.get(rare) else None}


def evaluate_checkpoint(config, checkpoint, val):
    """Per-class AP@0.5, mAP@0.5, mAP@[0.5:0.95] and recall of one checkpoint."""
    import mrcnn.model as modellib
    from mrcnn.evaluate import COCO_IOU_THRESHOLDS, evaluate_map

    model = modellib.MaskRCNN("inference", config, tempfile.mkdtemp(prefix="mrcnn_eval_"))
    model.load_weights(checkpoint, verbose=0)
    recording = _RecordingModel(model)
    result = evaluate_map(recording, val, iou_thresholds=COCO_IOU_THRESHOLDS)
    per_class = {val.class_names[c]: round(ap, 4)
                 for c, ap in sorted(result["per_class"][0.5].items()) if c > 0}
    per_class["mean"] = round(float(np.nanmean(list(per_class.values()))), 4)
    figures = {"min_confidence": config.DETECTION_MIN_CONFIDENCE,
               "val_images": len(val.image_ids),
               "val_instances": {val.class_names[c]: n
                                 for c, n in sorted(result["gt_count"].items())},
               "AP@0.5": per_class,
               "mAP@0.5": round(result["mAP"][0.5], 4),
               "mAP@[0.5:0.95]": round(result["mAP_range"], 4)}
    figures.update(recall_figures(recording.results, val, result["image_ids"]))
    return figures


def run_variant(args, variant):
    train, val = _datasets(args.train_images, args.val_images, args.rare_fraction)
    counts = instance_counts(train)
    weights = inverse_sqrt_frequency_weights(counts, train.class_names)
    config, inference_config = _configs(variant, weights, args.steps_per_epoch, args.seed,
                                        args.min_confidence)
    if args.checkpoint:
        checkpoint, figures = args.checkpoint, {"checkpoint": args.checkpoint}
    else:
        checkpoint, figures = train_variant(config, args.epochs, train, val, args.seed)
    figures.update(evaluate_checkpoint(inference_config, checkpoint, val))
    total = sum(counts.values())
    print(json.dumps({"bench": "class_imbalance", "variant": variant,
                      "class_loss": config.CLASS_LOSS,
                      "focal_gamma": config.FOCAL_GAMMA if variant == "focal" else None,
                      "class_loss_weights": config.CLASS_LOSS_WEIGHTS,
                      "train_instances": counts,
                      "rare_fraction": round(counts.get(RARE_CLASS, 0) / total, 4),
                      **figures}), flush=True)


def _child_command(args, variant):
    return [sys.executable, os.path.abspath(__file__), "--variant-only", variant,
            "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps_per_epoch),
            "--rare-fraction", str(args.rare_fraction),
            "--train-images", str(args.train_images),
            "--val-images", str(args.val_images), "--seed", str(args.seed)] + (
            [] if args.min_confidence is None else ["--min-confidence",
                                                    str(args.min_confidence)])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--variant-only", default=None, choices=VARIANTS,
                        help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--rare-fraction", type=float, default=0.05,
                        help="share of the training instances that are triangles")
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--val-images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="keras seed of the training")
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="DETECTION_MIN_CONFIDENCE of the evaluation (default: the "
                             "config's 0.7)")
    parser.add_argument("--checkpoint", default=None,
                        help="with one --variants: evaluate this saved model of it "
                             "instead of training one")
    args = parser.parse_args()
    if not 0 < args.rare_fraction < 1:
        raise SystemExit("--rare-fraction must lie in (0, 1)")
    if args.checkpoint and len(args.variants) != 1:
        raise SystemExit("--checkpoint evaluates one variant: give one --variants")
    if args.variant_only or args.checkpoint:
        run_variant(args, args.variant_only or args.variants[0])
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))
    for variant in args.variants:
        completed = subprocess.run(_child_command(args, variant), env=env)
        if completed.returncode:
            print(json.dumps({"bench": "class_imbalance", "variant": variant,
                              "error": f"exit status {completed.returncode}"}), flush=True)


if __name__ == "__main__":
    main()

"""Train, evaluate and run Mask R-CNN on the synthetic shapes dataset.

Runs offline on a CPU in minutes::

    python samples/shapes/shapes.py demo --out demo_output       # train, evaluate, picture
    python samples/shapes/shapes.py train --epochs 8
    python samples/shapes/shapes.py evaluate --weights last
    python samples/shapes/shapes.py detect --weights last --out detections

Checkpoints go to the repository's logs/ folder (--model-dir to change it), where the
notebooks look for them too; `--weights last` picks the newest checkpoint there.
"""
import argparse
import json
import os
import sys
import time

ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Shared with notebooks/: a checkpoint of `make demo` is the one the notebooks load.
DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")


def _datasets(config, train_count, val_count, seed):
    """Training and held-out shapes datasets (disjoint seeds)."""
    from mrcnn.shapes import ShapesDataset

    height, width = int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])
    train = ShapesDataset()
    train.load_shapes(train_count, height, width, seed=seed)
    train.prepare()
    val = ShapesDataset()
    val.load_shapes(val_count, height, width, seed=seed + 10_000)
    val.prepare()
    return train, val


def train(args):
    """Train from scratch; returns the path of the last checkpoint."""
    import mrcnn.model as modellib
    from mrcnn.shapes import ShapesConfig

    config = ShapesConfig()
    config.STEPS_PER_EPOCH = args.steps
    train_set, val_set = _datasets(config, args.train_images, 20, args.seed)
    model = modellib.MaskRCNN(mode="training", config=config, model_dir=args.model_dir)
    start = time.time()
    model.train(train_set, val_set, learning_rate=config.LEARNING_RATE, epochs=args.epochs,
                layers="all", verbose=args.verbose)
    minutes = (time.time() - start) / 60
    checkpoint = model.find_last()
    print(json.dumps({"event": "trained", "epochs": args.epochs, "minutes": round(minutes, 2),
                      "checkpoint": checkpoint}))
    return checkpoint


def _inference_model(weights, model_dir):
    import mrcnn.model as modellib
    from mrcnn.shapes import ShapesConfig

    class InferenceConfig(ShapesConfig):
        IMAGES_PER_GPU = 4

    model = modellib.MaskRCNN(mode="inference", config=InferenceConfig(), model_dir=model_dir)
    if weights == "last":
        weights = model.find_last()
    model.load_weights(weights, by_name=True, verbose=0)
    return model


def evaluate(args, weights=None):
    """mAP@0.5 (and @[0.5:0.95]) on held-out shapes images; returns the dict it prints."""
    from mrcnn.evaluate import COCO_IOU_THRESHOLDS, evaluate_map

    model = _inference_model(weights or args.weights, args.model_dir)
    _, val_set = _datasets(model.config, 1, args.eval_images, args.seed)
    result = evaluate_map(model, val_set, iou_thresholds=COCO_IOU_THRESHOLDS)
    summary = {"event": "evaluated", "images": args.eval_images,
               "mAP@0.5": round(result["mAP"][0.5], 4),
               "mAP@[0.5:0.95]": round(result["mAP_range"], 4)}
    print(json.dumps(summary))
    return summary


def detect(args, weights=None):
    """Detect on a few held-out images and save one PNG per image with masks drawn."""
    import matplotlib
    matplotlib.use("Agg")
    from mrcnn import visualize

    model = _inference_model(weights or args.weights, args.model_dir)
    _, val_set = _datasets(model.config, 1, args.detect_images, args.seed)
    images = [val_set.load_image(i) for i in val_set.image_ids]
    results = model.detect(images)
    os.makedirs(args.out, exist_ok=True)
    paths = []
    for image_id, image, result in zip(val_set.image_ids, images, results):
        path = os.path.join(args.out, f"shapes_detections_{image_id}.png")
        visualize.display_instances(image, result["rois"], result["masks"],
                                    result["class_ids"], val_set.class_names, result["scores"],
                                    title=f"shapes image {image_id}", figsize=(6, 6),
                                    save_path=path)
        paths.append(path)
    print(json.dumps({"event": "detected", "pictures": paths}))
    return paths


def demo(args):
    """Train, evaluate and save pictures of detections: the README's main job."""
    checkpoint = train(args)
    evaluate(args, weights=checkpoint)
    detect(args, weights=checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["demo", "train", "evaluate", "detect"])
    parser.add_argument("--model-dir", default=DEFAULT_LOGS_DIR,
                        help="where run directories and checkpoints live (default: the "
                             "repository's logs/)")
    parser.add_argument("--weights", default="last",
                        help="checkpoint path, or 'last' for the newest under --model-dir")
    parser.add_argument("--out", default="demo_output", help="folder for pictures")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch")
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--eval-images", type=int, default=100)
    parser.add_argument("--detect-images", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=2, help="Keras fit verbosity")
    args = parser.parse_args(argv)
    from mrcnn.shapes import DEMO_EPOCHS, ShapesConfig
    args.epochs = args.epochs or DEMO_EPOCHS
    args.steps = args.steps or ShapesConfig.STEPS_PER_EPOCH
    return args


def main(argv=None):
    args = parse_args(argv)
    {"demo": demo, "train": train, "evaluate": evaluate, "detect": detect}[args.command](args)
    return 0


if __name__ == "__main__":
    from mrcnn.console import quiet_tensorflow

    quiet_tensorflow()   # before TensorFlow loads: drop its start-up noise from stderr
    sys.exit(main())

"""Mask R-CNN on the balloon dataset: one class, annotated with VIA polygons.

The dataset folder holds `train/` and `val/`, each with its images and the annotations
exported by the VGG Image Annotator as `via_region_data.json`: a dict of records
{"filename", "size", "regions"} where "regions" is a dict (VIA 1.x) or a list (VIA 2.x) of
{"shape_attributes": {"name": "polygon", "all_points_x": [...], "all_points_y": [...]},
"region_attributes": {...}}. Images without regions are skipped.

Usage (from the repository root)::

    # Fine-tune from the COCO weights (downloaded to mask_rcnn_coco.h5 when missing)
    python samples/balloon/balloon.py train --dataset /path/to/balloon --weights coco
    # Resume the newest run of this config, or start from any weights file
    python samples/balloon/balloon.py train --dataset /path/to/balloon --weights last
    python samples/balloon/balloon.py train --dataset /path/to/balloon --weights my.h5
    # Colour splash on an image or a video: grey picture, balloons in colour
    python samples/balloon/balloon.py splash --weights last --image photo.jpg
    python samples/balloon/balloon.py splash --weights last --video clip.mp4
"""
import argparse
import datetime
import json
import os
import sys

import numpy as np
import skimage.color
import skimage.draw
import skimage.io

ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT_DIR not in sys.path:
    sys.path.append(ROOT_DIR)  # run from a checkout without installing the package

from mrcnn.config import Config  # noqa: E402
from mrcnn.dataset import Dataset  # noqa: E402

COCO_WEIGHTS_PATH = os.path.join(ROOT_DIR, "mask_rcnn_coco.h5")
DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")
ANNOTATIONS_FILE = "via_region_data.json"
# Layers whose shapes depend on NUM_CLASSES: not taken from the 81-class COCO weights.
COCO_HEAD_LAYERS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]


############################################################
#  Configuration
############################################################

class BalloonConfig(Config):
    """Fine-tuning on balloons from COCO weights: background + balloon."""
    NAME = "balloon"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 1
    STEPS_PER_EPOCH = 100
    DETECTION_MIN_CONFIDENCE = 0.9


class BalloonInferenceConfig(BalloonConfig):
    """One image at a time for the splash."""
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1


############################################################
#  VIA annotations
############################################################

def read_via_regions(json_path):
    """The annotated images of a VIA export.

    Args:
        json_path: a `via_region_data.json` (VIA 1.x or 2.x project export).
    Returns:
        list of (filename, [shape_attributes dict, ...]) for the images with regions.
    """
    with open(json_path, encoding="utf8") as f:
        records = json.load(f)
    if "_via_img_metadata" in records:  # a whole VIA 2.x project file
        records = records["_via_img_metadata"]
    annotated = []
    for record in records.values():
        regions = record.get("regions") or []
        if isinstance(regions, dict):
            regions = list(regions.values())
        shapes = [region["shape_attributes"] for region in regions]
        if shapes:
            annotated.append((record["filename"], shapes))
    return annotated


def _image_size(path):
    """(height, width) of an image file, read from its header."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    return height, width


def rasterise_region(shape, height, width):
    """Pixels (rows, cols) of one VIA region, clipped to a height x width image.

    Polygons and polylines (all_points_x / all_points_y, pixel centres at integer
    coordinates), "rect" (x, y, width, height), "circle" (cx, cy, r) and "ellipse"
    (cx, cy, rx, ry) are understood.
    """
    name = shape.get("name", "polygon")
    size = (height, width)
    if "all_points_x" in shape:
        return skimage.draw.polygon(shape["all_points_y"], shape["all_points_x"], shape=size)
    if name == "rect":
        x, y = shape["x"], shape["y"]
        corners_y = [y, y, y + shape["height"] - 1, y + shape["height"] - 1]
        corners_x = [x, x + shape["width"] - 1, x + shape["width"] - 1, x]
        return skimage.draw.polygon(corners_y, corners_x, shape=size)
    if name == "circle":
        return skimage.draw.disk((shape["cy"], shape["cx"]), shape["r"], shape=size)
    if name == "ellipse":
        return skimage.draw.ellipse(shape["cy"], shape["cx"], shape["ry"], shape["rx"],
                                    shape=size, rotation=float(shape.get("theta", 0.0)))
    raise ValueError(f"unsupported VIA region shape {name!r}: {shape}")


############################################################
#  Dataset
############################################################

class BalloonDataset(Dataset):
    """Balloon images with one instance mask per VIA region."""

    def load_balloon(self, dataset_dir, subset):
        """Register the images of `dataset_dir/subset` ("train" or "val")."""
        if subset not in ("train", "val"):
            raise ValueError(f"subset must be 'train' or 'val', got {subset!r}")
        self.add_class("balloon", 1, "balloon")
        subset_dir = os.path.join(dataset_dir, subset)
        for filename, shapes in read_via_regions(os.path.join(subset_dir, ANNOTATIONS_FILE)):
            path = os.path.join(subset_dir, filename)
            height, width = _image_size(path)
            self.add_image("balloon", image_id=filename, path=path, width=width,
                           height=height, polygons=shapes)

    def load_mask(self, image_id):
        """bool [H, W, N] masks, one per region, and int32 [N] class ids (all 1)."""
        info = self.image_info[image_id]
        if info["source"] != "balloon":
            return super().load_mask(image_id)
        height, width = info["height"], info["width"]
        masks = np.zeros([height, width, len(info["polygons"])], dtype=bool)
        for i, shape in enumerate(info["polygons"]):
            rows, cols = rasterise_region(shape, height, width)
            masks[rows, cols, i] = True
        return masks, np.ones([masks.shape[-1]], dtype=np.int32)

    def image_reference(self, image_id):
        """The image's file path."""
        info = self.image_info[image_id]
        if info["source"] == "balloon":
            return info["path"]
        return super().image_reference(image_id)


############################################################
#  Colour splash
############################################################

def color_splash(image, mask):
    """The image in grey except where any instance mask is set.

    Args:
        image: uint8 [H, W, 3] RGB.
        mask: bool [H, W, N] instance masks (N may be 0: all grey).
    Returns:
        uint8 [H, W, 3]: original colours inside the union of the masks, elsewhere the
        luminance (0.2125 R + 0.7154 G + 0.0721 B, rounded) in all three channels.
    """
    image = np.asarray(image)
    grey = np.round(skimage.color.rgb2gray(image[..., :3]) * 255).astype(np.uint8)
    grey = np.repeat(grey[..., None], 3, axis=-1)
    mask = np.asarray(mask)
    if mask.ndim != 3 or mask.shape[-1] == 0:
        return grey
    inside = mask.any(axis=-1, keepdims=True)
    return np.where(inside, image[..., :3], grey).astype(np.uint8)


def _read_rgb(path):
    image = skimage.io.imread(path)
    if image.ndim == 2:
        image = skimage.color.gray2rgb(image)
    return np.ascontiguousarray(image[..., :3])


def _timestamp():
    return f"{datetime.datetime.now():%Y%m%dT%H%M%S}"


def splash_image(model, image_path, out_dir="."):
    """Detect balloons in one image and save its splash as PNG; returns the PNG's path."""
    image = _read_rgb(image_path)
    result = model.detect([image], verbose=0)[0]
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"splash_{_timestamp()}.png")
    skimage.io.imsave(path, color_splash(image, result["masks"]), check_contrast=False)
    return path


def splash_video(model, video_path, out_dir="."):
    """Splash every frame of a video into an MJPG .avi; returns its path."""
    import cv2

    capture = cv2.VideoCapture(video_path)
    if not capture.isOpened():
        raise OSError(f"cannot open video {video_path!r}")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"splash_{_timestamp()}.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = frame[..., ::-1]
            result = model.detect([rgb], verbose=0)[0]
            writer.write(np.ascontiguousarray(color_splash(rgb, result["masks"])[..., ::-1]))
    finally:
        capture.release()
        writer.release()
    return path


def detect_and_color_splash(model, image_path=None, video_path=None, out_dir="."):
    """Splash an image or a video (upstream's entry point); returns the output path."""
    if image_path:
        return splash_image(model, image_path, out_dir)
    if video_path:
        return splash_video(model, video_path, out_dir)
    raise ValueError("give image_path or video_path")


############################################################
#  Training
############################################################

def load_datasets(dataset_dir):
    """Prepared (train, val) BalloonDatasets."""
    datasets = []
    for subset in ("train", "val"):
        dataset = BalloonDataset()
        dataset.load_balloon(dataset_dir, subset)
        dataset.prepare()
        datasets.append(dataset)
    return tuple(datasets)


def train(model, dataset_dir, epochs=30, layers="heads", augmentation=None):
    """Train on the balloon dataset; upstream trains the heads for 30 epochs."""
    dataset_train, dataset_val = load_datasets(dataset_dir)
    print(f"Training {layers} on {len(dataset_train.image_ids)} images")
    return model.train(dataset_train, dataset_val, learning_rate=model.config.LEARNING_RATE,
                       epochs=epochs, layers=layers, augmentation=augmentation)


def imagenet_weights(model):
    """Path of ImageNet backbone weights for the model's BACKBONE (downloaded once)."""
    if hasattr(model, "get_imagenet_weights"):
        return model.get_imagenet_weights()
    from mrcnn.imagenet import get_imagenet_weights

    return get_imagenet_weights(model.config.BACKBONE)


def load_starting_weights(model, weights):
    """Load "coco" (without the class-specific heads), "last", "imagenet", "none" or a path.

    Returns the path loaded (None for "none").
    """
    from mrcnn import utils

    choice = weights.lower()
    if choice == "none":
        return None
    exclude = None
    if choice == "coco":
        path = COCO_WEIGHTS_PATH
        if not os.path.exists(path):
            utils.download_trained_weights(path)
        exclude = COCO_HEAD_LAYERS
    elif choice == "last":
        path = model.find_last()
    elif choice == "imagenet":
        path = imagenet_weights(model)
    else:
        path = weights
    model.load_weights(path, by_name=True, exclude=exclude)
    return path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "splash"])
    parser.add_argument("--dataset", help="folder with train/ and val/ (train)")
    parser.add_argument("--weights", required=True,
                        help="'coco', 'last', 'imagenet', 'none' or a weights file")
    parser.add_argument("--logs", default=DEFAULT_LOGS_DIR,
                        help="folder of run directories and checkpoints")
    parser.add_argument("--image", help="image to splash")
    parser.add_argument("--video", help="video to splash")
    parser.add_argument("--out", default=".", help="where the splash is written")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--layers", default="heads",
                        help="'heads', '3+', '4+', '5+', 'all' or a regex of layer names")
    args = parser.parse_args(argv)
    if args.command == "train" and not args.dataset:
        parser.error("train needs --dataset")
    if args.command == "splash" and not (args.image or args.video):
        parser.error("splash needs --image or --video")
    return args


def main(argv=None):
    args = parse_args(argv)
    import mrcnn.model as modellib

    if args.command == "train":
        config = BalloonConfig()
        mode = "training"
    else:
        config = BalloonInferenceConfig()
        mode = "inference"
    config.display()
    model = modellib.MaskRCNN(mode=mode, config=config, model_dir=args.logs)
    load_starting_weights(model, args.weights)
    if args.command == "train":
        train(model, args.dataset, epochs=args.epochs, layers=args.layers)
    else:
        path = detect_and_color_splash(model, image_path=args.image, video_path=args.video,
                                       out_dir=args.out)
        print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    from mrcnn.console import quiet_tensorflow

    quiet_tensorflow()   # before TensorFlow loads: drop its start-up noise from stderr
    sys.exit(main())

"""Mask R-CNN on MS COCO: dataset loading with pycocotools, training and COCO evaluation.

The dataset folder follows COCO's own layout::

    <dataset>/annotations/instances_train2017.json   (instances_<subset><year>.json)
    <dataset>/train2017/*.jpg                         (<subset><year>/)

For 2014, "minival" and "valminusminival" are splits of val2014 whose annotation files
sit in annotations/ and whose images are in val2014/.

Person keypoints (``--keypoints``): COCO's ``annotations/person_keypoints_<subset><year>.json``
holds the person instances with their 17 keypoints, flat [x1, y1, v1, ...] pixel indices;
``load_coco(..., keypoints=True)`` reads it, ``load_keypoints`` returns them
[N, 17, 3] (rows aligned with load_mask's), ``CocoKeypointConfig`` trains the keypoint
head beside the mask head and ``evaluate_coco_keypoints`` scores OKS keypoint AP.

Usage (from the repository root)::

    # Train from the COCO weights, ImageNet weights or the newest checkpoint
    python samples/coco/coco.py train --dataset /path/to/coco --model coco
    python samples/coco/coco.py train --dataset /path/to/coco --model last --year 2017
    # Evaluate (bbox and segm) on the first 500 validation images
    python samples/coco/coco.py evaluate --dataset /path/to/coco --model last --limit 500
    # Person keypoints: train, then evaluate (bbox, segm and keypoint OKS AP)
    python samples/coco/coco.py train --dataset /path/to/coco --model imagenet --keypoints
    python samples/coco/coco.py evaluate --dataset /path/to/coco --model last --keypoints
    # Fetch images and annotations first (needs network access)
    python samples/coco/coco.py train --dataset /path/to/coco --model coco --download
"""
import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT_DIR not in sys.path:
    sys.path.append(ROOT_DIR)  # run from a checkout without installing the package

from mrcnn.coco_eval import coco_metrics, detections_to_coco  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from mrcnn.dataset import Dataset  # noqa: E402
from mrcnn.evaluate import detect_dataset  # noqa: E402
from mrcnn.keypoint_eval import keypoint_metrics, keypoints_to_coco  # noqa: E402
from mrcnn.keypoints import (COCO_PERSON_FLIP_MAP, COCO_PERSON_KEYPOINT_NAMES,  # noqa: E402
                             COCO_PERSON_SKELETON)
from mrcnn.validate import KEYPOINT_TOLERANCE  # noqa: E402

COCO_MODEL_PATH = os.path.join(ROOT_DIR, "mask_rcnn_coco.h5")
DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")
DEFAULT_DATASET_YEAR = "2014"
COCO_DOWNLOAD_URL = "http://images.cocodataset.org"
SPLITS_OF_VAL2014 = ("minival", "valminusminival")


############################################################
#  Configuration
############################################################

class CocoConfig(Config):
    """Training on MS COCO: background + 80 classes."""
    NAME = "coco"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 80


class CocoKeypointConfig(CocoConfig):
    """Person keypoints on MS COCO: background + person, 17 keypoints, with masks."""
    NAME = "coco_keypoints"
    NUM_CLASSES = 1 + 1
    NUM_KEYPOINTS = len(COCO_PERSON_KEYPOINT_NAMES)
    KEYPOINT_NAMES = COCO_PERSON_KEYPOINT_NAMES
    KEYPOINT_FLIP_MAP = COCO_PERSON_FLIP_MAP


############################################################
#  Files
############################################################

def annotation_path(dataset_dir, subset, year, kind="instances"):
    """`<dataset_dir>/annotations/<kind>_<subset><year>.json`; kind "instances" or
    "person_keypoints"."""
    return os.path.join(dataset_dir, "annotations", f"{kind}_{subset}{year}.json")


def image_dir(dataset_dir, subset, year):
    """`<dataset_dir>/<subset><year>`; minival and valminusminival live in val2014."""
    folder = "val" if subset in SPLITS_OF_VAL2014 else subset
    return os.path.join(dataset_dir, f"{folder}{year}")


def _download(url, destination):
    """Fetch `url` to `destination` atomically; a clear RuntimeError when unreachable."""
    directory = os.path.dirname(os.path.abspath(destination))
    os.makedirs(directory, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=directory, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(partial, destination)
    except (urllib.error.URLError, ConnectionError, TimeoutError, EOFError) as error:
        raise RuntimeError(
            f"Could not download {url} ({error}). Download it on a machine with network "
            f"access and unpack it under {directory}, then call again with "
            "auto_download=False.") from error
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _unzip(archive, directory):
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(directory)
    os.remove(archive)


def download_coco(dataset_dir, subset, year):
    """Download and unpack the images and annotations of one split if they are missing.

    Images come from images.cocodataset.org/zips/<subset><year>.zip, annotations from
    annotations/annotations_trainval<year>.zip. The 2014 "minival"/"valminusminival"
    annotation files are not published there: place them in annotations/ yourself.

    Raises:
        RuntimeError: a file could not be downloaded (e.g. no network access).
        FileNotFoundError: a minival/valminusminival annotation file is missing.
    """
    images = image_dir(dataset_dir, subset, year)
    if not os.path.isdir(images) or not os.listdir(images):
        name = os.path.basename(images)
        archive = os.path.join(dataset_dir, f"{name}.zip")
        print(f"Downloading {name} images to {dataset_dir} ...")
        _download(f"{COCO_DOWNLOAD_URL}/zips/{name}.zip", archive)
        _unzip(archive, dataset_dir)
    annotations = annotation_path(dataset_dir, subset, year)
    if os.path.exists(annotations):
        return
    if subset in SPLITS_OF_VAL2014:
        raise FileNotFoundError(
            f"{annotations} is missing: the {subset} split is not on cocodataset.org; "
            "copy instances_minival2014.json / instances_valminusminival2014.json there")
    archive = os.path.join(dataset_dir, f"annotations_trainval{year}.zip")
    print(f"Downloading the {year} annotations to {dataset_dir} ...")
    _download(f"{COCO_DOWNLOAD_URL}/annotations/annotations_trainval{year}.zip", archive)
    _unzip(archive, dataset_dir)


############################################################
#  Dataset
############################################################

class CocoDataset(Dataset):
    """COCO images with instance masks from their polygon or RLE annotations."""

    def load_coco(self, dataset_dir, subset, year=DEFAULT_DATASET_YEAR, class_ids=None,
                  class_map=None, return_coco=False, auto_download=False, keypoints=False):
        """Register a COCO split.

        Args:
            dataset_dir: root of the COCO folder layout (see the module docstring).
            subset: "train", "val", "minival" or "valminusminival".
            year: "2014" or "2017".
            class_ids: COCO category ids to load (all by default); only images holding
                one of them are registered.
            class_map: accepted for compatibility, unused.
            return_coco: also return the pycocotools COCO object.
            auto_download: fetch missing images and annotations first.
            keypoints: read person_keypoints_<subset><year>.json instead (the person
                category and its keypoints); sets ``keypoint_names`` and ``skeleton``
                (0-based index pairs) from the category.
        Returns:
            the COCO object when return_coco.
        """
        del class_map
        year = str(year)
        if auto_download:
            self.auto_download(dataset_dir, subset, year)
        kind = "person_keypoints" if keypoints else "instances"
        path = annotation_path(dataset_dir, subset, year, kind)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} not found: unpack COCO's annotations there, or pass "
                "auto_download=True (needs network access)")
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(path)
        class_ids = sorted(class_ids) if class_ids else sorted(coco.getCatIds())
        if len(class_ids) < len(coco.getCatIds()):
            image_ids = sorted({i for c in class_ids for i in coco.getImgIds(catIds=[c])})
        else:
            image_ids = sorted(coco.imgs)
        for class_id in class_ids:
            self.add_class("coco", class_id, coco.loadCats(class_id)[0]["name"])
        if keypoints:
            self._keypoint_category(coco, class_ids)
        images = image_dir(dataset_dir, subset, year)
        for i in image_ids:
            record = coco.imgs[i]
            self.add_image(
                "coco", image_id=i, path=os.path.join(images, record["file_name"]),
                width=record["width"], height=record["height"],
                annotations=coco.loadAnns(coco.getAnnIds(imgIds=[i], catIds=class_ids,
                                                         iscrowd=None)))
        if return_coco:
            return coco
        return None

    def _keypoint_category(self, coco, class_ids):
        """keypoint_names and skeleton of the (one) keypoint category of the file."""
        categories = [c for c in coco.loadCats(class_ids) if c.get("keypoints")]
        if not categories:
            raise ValueError("the annotation file has no category with 'keypoints'; "
                             "person keypoints come from person_keypoints_*.json")
        category = categories[0]
        self.keypoint_names = tuple(category["keypoints"])
        self.skeleton = tuple((int(a) - 1, int(b) - 1)
                              for a, b in category.get("skeleton", ()))

    @staticmethod
    def auto_download(dataDir, dataType, dataYear):
        """Download the split's images and annotations when missing (see download_coco)."""
        download_coco(dataDir, dataType, dataYear)

    def load_mask(self, image_id):
        """Instance masks of a COCO image.

        Returns:
            masks: bool [H, W, N]; class_ids: int32 [N]. Crowd regions (iscrowd=1) have
            negative class ids, so training and evaluation can leave them out. Annotations
            too small to cover a pixel are dropped; an image without any gives N = 0.
        """
        info = self.image_info[image_id]
        if info["source"] != "coco":
            return super().load_mask(image_id)
        height, width = info["height"], info["width"]
        masks, class_ids = [], []
        for annotation in info["annotations"]:
            class_id = self.map_source_class_id(f"coco.{annotation['category_id']}")
            mask = self.annToMask(annotation, height, width)
            if mask.max() < 1:
                continue
            if annotation.get("iscrowd"):
                class_id = -class_id
                if mask.shape != (height, width):
                    mask = np.ones([height, width], dtype=bool)
            masks.append(mask.astype(bool))
            class_ids.append(class_id)
        if not masks:
            return np.zeros([height, width, 0], dtype=bool), np.zeros([0], dtype=np.int32)
        return np.stack(masks, axis=2), np.array(class_ids, dtype=np.int32)

    def load_keypoints(self, image_id):
        """Keypoints of a COCO image, rows aligned with :meth:`load_mask`.

        Returns:
            float32 [N, K, 3] (x, y, v): COCO's flat [x1, y1, v1, ...] pixel indices
            reshaped; K from the file's keypoint category (17 for people). Annotations
            without keypoints (crowd regions, other categories) give v = 0 rows. A
            labelled point more than KEYPOINT_TOLERANCE pixels outside the image (a
            rare annotation slip) is set to v = 0 rather than stopping training.
        """
        info = self.image_info[image_id]
        if info["source"] != "coco":
            return super().load_keypoints(image_id)
        height, width = info["height"], info["width"]
        count = len(getattr(self, "keypoint_names", COCO_PERSON_KEYPOINT_NAMES))
        rows = []
        for annotation in info["annotations"]:
            if mask_utils.area(self.annToRLE(annotation, height, width)) < 1:
                continue  # load_mask leaves it out too
            row = np.zeros([count, 3], dtype=np.float32)
            flat = annotation.get("keypoints")
            if flat and not annotation.get("iscrowd"):
                row[:] = np.asarray(flat, dtype=np.float32).reshape(count, 3)
            rows.append(row)
        points = np.array(rows, dtype=np.float32).reshape(-1, count, 3)
        x, y = points[..., 0], points[..., 1]
        outside = ((x < -KEYPOINT_TOLERANCE) | (x > width - 1 + KEYPOINT_TOLERANCE)
                   | (y < -KEYPOINT_TOLERANCE) | (y > height - 1 + KEYPOINT_TOLERANCE))
        points[outside] = 0
        return points

    def image_reference(self, image_id):
        """The image's page on cocodataset.org."""
        info = self.image_info[image_id]
        if info["source"] == "coco":
            return f"http://cocodataset.org/#explore?id={info['id']}"
        return super().image_reference(image_id)

    @staticmethod
    def annToRLE(ann, height, width):
        """Compressed RLE of an annotation given as polygons, uncompressed or compressed
        RLE."""
        segmentation = ann["segmentation"]
        if isinstance(segmentation, list):
            return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        if isinstance(segmentation["counts"], list):
            return mask_utils.frPyObjects(segmentation, height, width)
        return segmentation

    def annToMask(self, ann, height, width):
        """uint8 [H, W] mask of an annotation."""
        return mask_utils.decode(self.annToRLE(ann, height, width))


############################################################
#  Evaluation
############################################################

def build_coco_results(dataset, image_ids, rois, class_ids, scores, masks):
    """Detections of one image as COCO result dicts (upstream's signature).

    Args:
        image_ids: [COCO image id] of the image (upstream passes a one-element slice).
        rois: [N, (y1, x1, y2, x2)] px; class_ids, scores: [N]; masks: [H, W, N].
    Returns:
        list of {"image_id", "category_id" (the COCO category), "bbox" [x, y, w, h],
        "score", "segmentation" (compressed RLE)}.
    """
    if rois is None:
        return []
    results = []
    result = {"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks}
    for image_id in image_ids:
        results.extend(detections_to_coco(
            image_id, result,
            category_of=lambda class_id: dataset.get_source_class_id(int(class_id), "coco")))
    return results


def evaluate_coco(model, dataset, coco, eval_type="bbox", limit=0, image_ids=None,
                  verbose=1):
    """Detect on COCO images and print and return COCOeval's summary metrics.

    Args:
        model: a MaskRCNN in inference mode.
        dataset: a CocoDataset loaded from the same annotations as `coco`.
        coco: the pycocotools COCO ground truth (load_coco(..., return_coco=True)).
        eval_type: "bbox" or "segm".
        limit: evaluate only the first `limit` images (0: all).
        image_ids: internal image ids to evaluate (default: all of the dataset).
    Returns:
        dict of the twelve COCO metrics (see mrcnn.coco_eval.METRIC_NAMES).
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    if limit:
        image_ids = image_ids[:limit]
    coco_image_ids = [dataset.image_info[i]["id"] for i in image_ids]
    start = time.time()
    results = []
    for image_id, r in detect_dataset(model, dataset, image_ids, verbose=verbose):
        results.extend(build_coco_results(dataset, [dataset.image_info[image_id]["id"]],
                                          r["rois"], r["class_ids"], r["scores"],
                                          r["masks"]))
    detect_time = time.time() - start
    metrics = coco_metrics(coco, results, eval_type, image_ids=coco_image_ids,
                           verbose=bool(verbose))
    if verbose:
        print(f"Detection: {detect_time:.1f} s for {len(image_ids)} images, "
              f"{detect_time / max(len(image_ids), 1):.3f} s per image; "
              f"total {time.time() - start:.1f} s")
    return metrics


############################################################
#  Command line
############################################################

def evaluate_coco_keypoints(model, dataset, coco, limit=0, image_ids=None, sigmas=None,
                            verbose=1):
    """Detect on COCO images and print and return the OKS keypoint metrics.

    Args:
        model: a MaskRCNN in inference mode with a keypoint head.
        dataset: a CocoDataset loaded with keypoints=True from the same file as `coco`.
        coco: the pycocotools COCO ground truth of person_keypoints_*.json.
        limit: evaluate only the first `limit` images (0: all).
        image_ids: internal image ids to evaluate (default: all of the dataset).
        sigmas: per-keypoint OKS constants (default COCO's 17 person sigmas).
    Returns:
        dict of the ten keypoint metrics (see mrcnn.keypoint_eval.KEYPOINT_METRIC_NAMES).
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    if limit:
        image_ids = image_ids[:limit]
    coco_image_ids = [dataset.image_info[i]["id"] for i in image_ids]
    results = []
    for image_id, r in detect_dataset(model, dataset, image_ids, verbose=verbose):
        results.extend(keypoints_to_coco(
            dataset.image_info[image_id]["id"], r,
            category_of=lambda class_id: dataset.get_source_class_id(int(class_id), "coco")))
    return keypoint_metrics(coco, results, sigmas, image_ids=coco_image_ids,
                            verbose=bool(verbose))


def imagenet_weights(model):
    """Path of ImageNet backbone weights for the model's BACKBONE (downloaded once)."""
    if hasattr(model, "get_imagenet_weights"):
        return model.get_imagenet_weights()
    from mrcnn.imagenet import get_imagenet_weights

    return get_imagenet_weights(model.config.BACKBONE)


def _load_model_weights(model, choice):
    from mrcnn import utils

    if choice.lower() == "coco":
        if not os.path.exists(COCO_MODEL_PATH):
            utils.download_trained_weights(COCO_MODEL_PATH)
        path = COCO_MODEL_PATH
    elif choice.lower() == "last":
        path = model.find_last()
    elif choice.lower() == "imagenet":
        path = imagenet_weights(model)
    else:
        path = choice
    print(f"Loading weights {path}")
    model.load_weights(path, by_name=True)


def train_datasets(dataset_dir, year, download, keypoints=False):
    """(train, val) CocoDatasets: for 2014, train + valminusminival and minival.
    keypoints: person keypoints from person_keypoints_*.json."""
    train = CocoDataset()
    train.load_coco(dataset_dir, "train", year=year, auto_download=download,
                    keypoints=keypoints)
    if str(year) == "2014":
        train.load_coco(dataset_dir, "valminusminival", year=year, auto_download=download,
                        keypoints=keypoints)
    train.prepare()
    val = CocoDataset()
    val_subset = "minival" if str(year) == "2014" else "val"
    val.load_coco(dataset_dir, val_subset, year=year, auto_download=download,
                  keypoints=keypoints)
    val.prepare()
    return train, val


def train(model, dataset_dir, year, download=False):
    """Upstream's schedule: heads to epoch 40, ResNet stage 4+ to 120, all to 160 at LR/10,
    with horizontal flips (keypoint models swap left and right keypoints with them)."""
    from mrcnn.imgaug_compat import iaa

    keypoints = bool(getattr(model.config, "NUM_KEYPOINTS", 0))
    dataset_train, dataset_val = train_datasets(dataset_dir, year, download, keypoints)
    augmentation = iaa.Fliplr(0.5)
    rate = model.config.LEARNING_RATE
    for layers, epochs, learning_rate in (("heads", 40, rate), ("4+", 120, rate),
                                          ("all", 160, rate / 10)):
        print(f"Training {layers} up to epoch {epochs}")
        model.train(dataset_train, dataset_val, learning_rate=learning_rate, epochs=epochs,
                    layers=layers, augmentation=augmentation)


def _flag(text):
    """"true"/"false" (any case), "1"/"0", "yes"/"no" -> bool."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "evaluate"])
    parser.add_argument("--dataset", required=True, help="root of the COCO dataset")
    parser.add_argument("--year", default=DEFAULT_DATASET_YEAR, choices=["2014", "2017"])
    parser.add_argument("--model", required=True,
                        help="'coco', 'last', 'imagenet' or a weights file")
    parser.add_argument("--logs", default=DEFAULT_LOGS_DIR,
                        help="folder of run directories and checkpoints")
    parser.add_argument("--limit", type=int, default=500,
                        help="images to evaluate (0: all)")
    parser.add_argument("--download", nargs="?", const=True, default=False, type=_flag,
                        help="download missing COCO files first (--download or "
                             "--download=True)")
    parser.add_argument("--keypoints", action="store_true",
                        help="person keypoints (person_keypoints_*.json, CocoKeypointConfig)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import mrcnn.model as modellib

    base = CocoKeypointConfig if args.keypoints else CocoConfig
    if args.command == "train":
        config = base()
    else:
        class InferenceConfig(base):
            GPU_COUNT = 1
            IMAGES_PER_GPU = 1
            DETECTION_MIN_CONFIDENCE = 0
        config = InferenceConfig()
    config.display()
    mode = "training" if args.command == "train" else "inference"
    model = modellib.MaskRCNN(mode=mode, config=config, model_dir=args.logs)
    _load_model_weights(model, args.model)
    if args.command == "train":
        train(model, args.dataset, args.year, args.download)
        return 0
    subset = "minival" if args.year == "2014" else "val"
    dataset = CocoDataset()
    coco = dataset.load_coco(args.dataset, subset, year=args.year, return_coco=True,
                             auto_download=args.download, keypoints=args.keypoints)
    dataset.prepare()
    for eval_type in ("bbox", "segm"):
        print(f"Running COCO evaluation ({eval_type}) on {args.limit or 'all'} images.")
        evaluate_coco(model, dataset, coco, eval_type, limit=args.limit)
    if args.keypoints:
        print(f"Running COCO keypoint evaluation (OKS) on {args.limit or 'all'} images.")
        evaluate_coco_keypoints(model, dataset, coco, limit=args.limit)
    return 0


if __name__ == "__main__":
    from mrcnn.console import quiet_tensorflow

    quiet_tensorflow()   # before TensorFlow loads: drop its start-up noise from stderr
    sys.exit(main())

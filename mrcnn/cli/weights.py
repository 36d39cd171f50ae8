"""The starting weights of a command: ``--weights coco|imagenet|last|none|PATH`` and
``--exclude``, resolved to a file (downloaded where the source allows, with an error naming
the file or URL when that fails) and loaded by layer name.
"""
import json
import os
import types

import h5py

from mrcnn.cli.errors import CliError

COCO_WEIGHTS_FILE = "mask_rcnn_coco.h5"
COCO_WEIGHTS_ENV = "MRCNN_COCO_WEIGHTS"
COCO_NUM_CLASSES = 81
# Layers whose shapes depend on NUM_CLASSES: left out when starting from weights of
# another class count (``--exclude heads``; automatic for ``--weights coco``).
CLASS_HEAD_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask")


def add_weights_argument(parser, required=True, training=False):
    choices = "coco|imagenet|last|none|PATH" if training else "coco|last|PATH"
    parser.add_argument(
        "--weights", required=required, metavar=choices,
        help="'coco': mask_rcnn_coco.h5 in the current directory (or $MRCNN_COCO_WEIGHTS), "
             "downloaded when missing; " + ("'imagenet': keras.applications' ResNet-50/101 "
                                            "backbone; 'none': train from scratch; "
                                            if training else "")
             + "'last': the newest checkpoint of the config's NAME under --logs; or a "
             "weights file (.h5)")
    parser.add_argument(
        "--exclude", default="", metavar="LAYERS",
        help="comma-separated layers not to load from --weights; 'heads' stands for the "
             "class-specific layers " + ", ".join(CLASS_HEAD_LAYERS)
             + " (left out of the COCO weights automatically when NUM_CLASSES is not 81)")


def coco_weights_path():
    """Where ``--weights coco`` looks: $MRCNN_COCO_WEIGHTS, else ./mask_rcnn_coco.h5."""
    return os.environ.get(COCO_WEIGHTS_ENV) or os.path.abspath(COCO_WEIGHTS_FILE)


def _download_coco_weights(path):
    from mrcnn import utils

    try:
        utils.download_trained_weights(path)
    except RuntimeError as error:
        raise CliError(f"--weights coco: {path} does not exist and the download failed: "
                       f"{error} Then pass --weights /path/to/{COCO_WEIGHTS_FILE}, or set "
                       f"${COCO_WEIGHTS_ENV} to its path.") from None


def imagenet_weights(config):
    """The converted ImageNet backbone file of config.BACKBONE (downloaded and converted
    once, see mrcnn.imagenet); CliError naming the URL when it cannot be downloaded."""
    from mrcnn.imagenet import ImageNetWeightsError, get_imagenet_weights

    try:
        return get_imagenet_weights(config.BACKBONE)
    except (ImageNetWeightsError, ValueError) as error:
        raise CliError(f"--weights imagenet: {error}") from None


def find_last(config, model_dir):
    """MaskRCNN.find_last for a config and folder, without building a model."""
    from mrcnn.model import MaskRCNN

    holder = types.SimpleNamespace(config=config, model_dir=model_dir)
    try:
        return MaskRCNN.find_last(holder)
    except FileNotFoundError as error:
        raise CliError(f"--weights last: no checkpoint of NAME {config.NAME!r} under "
                       f"{os.path.abspath(model_dir)} ({error}); train one first or give "
                       f"a weights file") from None


def weights_path(choice, config, model_dir, training=False):
    """The file ``--weights`` names (None for 'none', in training only).

    Raises CliError naming the missing file or URL.
    """
    lowered = choice.lower()
    if lowered in ("none", "imagenet") and not training:
        raise CliError(f"--weights {choice}: detection needs trained weights: coco, last "
                       f"or a weights file")
    if lowered == "none":
        return None
    if lowered == "last":
        return find_last(config, model_dir)
    if lowered == "coco":
        path = coco_weights_path()
        if not os.path.isfile(path):
            _download_coco_weights(path)
        return path
    if lowered == "imagenet":
        return imagenet_weights(config)
    if not os.path.isfile(choice):
        raise CliError(f"--weights {choice}: the weights file does not exist")
    return choice


def excluded_layers(text, config, choice):
    """Layer names of --exclude ('heads' expanded); the COCO heads for 81-class weights."""
    names = []
    for part in (p.strip() for p in text.split(",")):
        if part == "heads":
            names.extend(CLASS_HEAD_LAYERS)
        elif part:
            names.append(part)
    if choice.lower() == "coco" and config.NUM_CLASSES != COCO_NUM_CLASSES:
        names.extend(n for n in CLASS_HEAD_LAYERS if n not in names)
    return names or None


def load_weights(model, path, exclude=None):
    """Load weights file ``path`` into ``model`` by layer name; returns the path."""
    from mrcnn.weights_io import WeightsFileError

    print(f"Loading weights {path}")
    try:
        model.load_weights(path, by_name=True, exclude=exclude)
    except WeightsFileError as error:
        raise CliError(f"--weights {path}: {error}") from None
    return path


def checkpoint_config(path):
    """The config dict stored in a checkpoint written by this package, or None."""
    if not path or not os.path.isfile(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            text = f.attrs.get("config")
    except OSError as error:
        raise CliError(f"--weights {path}: cannot open the weights file ({error})") from None
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        return json.loads(str(text))
    except json.JSONDecodeError:
        return None

"""What every subcommand shares: the config (``--config module:Class``, ``--set``), the
starting weights (``--weights coco|imagenet|last|none|PATH``) and the class names a
training run leaves beside its checkpoints.

Nothing here imports TensorFlow at module level, so ``mrcnn --help`` and argument errors
are quick; ``build_model`` imports it when a model is built.
"""
import ast
import difflib
import importlib
import importlib.util
import inspect
import json
import os
import sys
import types

import h5py
import numpy as np

from mrcnn.config import Config, ConfigError

COCO_WEIGHTS_FILE = "mask_rcnn_coco.h5"
COCO_WEIGHTS_ENV = "MRCNN_COCO_WEIGHTS"
COCO_NUM_CLASSES = 81
# Layers whose shapes depend on NUM_CLASSES: left out when starting from weights of
# another class count (``--exclude heads``; automatic for ``--weights coco``).
CLASS_HEAD_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask")
CLASSES_FILE = "classes.json"
WEIGHT_CHOICES = ("coco", "imagenet", "last", "none")


class CliError(Exception):
    """A bad argument or input; main() prints the message (no traceback) and exits 2."""


# --- Arguments shared by the subcommands ---------------------------------------------------

def add_config_arguments(parser):
    parser.add_argument(
        "--config", default="mrcnn.config:Config", metavar="MODULE:CLASS",
        help="the Config subclass: 'module:Class' (a module on the Python path or in the "
             "current directory, or a file 'path/to/file.py:Class'); without ':Class' the "
             "module's one Config subclass (default: mrcnn.config:Config)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", dest="settings",
        help="override a config attribute, e.g. --set STEPS_PER_EPOCH=100 --set "
             "IMAGE_MAX_DIM=512 (VALUE is a Python literal, else a string); repeatable")
    parser.add_argument("--logs", default="logs", metavar="DIR",
                        help="folder of run directories and checkpoints (default: ./logs)")


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


# --- The config ----------------------------------------------------------------------------

def _import_module(spec_text, module_name):
    """The module named by --config: a dotted name or a .py file."""
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = os.path.abspath(module_name)
        if not os.path.isfile(path):
            raise CliError(f"--config {spec_text}: the file {module_name!r} does not exist")
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(name, module)
        spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())   # as `python -m` does: modules of the current folder
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.split(".")[0] == error.name.split(".")[0]:
            raise CliError(f"--config {spec_text}: cannot import module {module_name!r} "
                           f"({error}); is it in the current directory or on PYTHONPATH?"
                           ) from None
        raise


def _config_classes(module):
    return sorted(name for name, value in vars(module).items()
                  if inspect.isclass(value) and issubclass(value, Config)
                  and value.__module__ == module.__name__)


def config_class(spec_text):
    """The Config subclass (or instance) named by ``--config MODULE[:CLASS]``."""
    module_name, _, class_name = spec_text.partition(":")
    if not module_name:
        raise CliError(f"--config {spec_text!r}: expected MODULE:CLASS, e.g. myconfig:MyConfig")
    module = _import_module(spec_text, module_name)
    where = getattr(module, "__file__", module_name)
    if not class_name:
        found = _config_classes(module)
        if len(found) != 1:
            raise CliError(f"--config {spec_text}: module {module_name!r} ({where}) defines "
                           f"{len(found)} Config subclasses {found}; name one as "
                           f"{module_name}:CLASS")
        class_name = found[0]
    if not hasattr(module, class_name):
        raise CliError(f"--config {spec_text}: module {module_name!r} ({where}) has no "
                       f"attribute {class_name!r}; its Config subclasses: "
                       f"{_config_classes(module)}")
    value = getattr(module, class_name)
    is_class = inspect.isclass(value) and issubclass(value, Config)
    if not (is_class or isinstance(value, Config)):
        raise CliError(f"--config {spec_text}: {module_name}.{class_name} is not a Config "
                       f"subclass (it is {type(value).__name__})")
    return value


def parse_setting(text):
    """'NAME=VALUE' -> (NAME, value): VALUE as a Python literal, else the string itself."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise CliError(f"--set {text!r}: expected NAME=VALUE, e.g. --set STEPS_PER_EPOCH=100")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return name, value


def apply_settings(config, settings):
    """Set each 'NAME=VALUE' of ``settings`` on ``config``; names must be config attributes."""
    known = [name for name in dir(config) if name.isupper()]
    for text in settings:
        name, value = parse_setting(text)
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CliError(f"--set {text}: {type(config).__name__} has no attribute "
                           f"{name!r}{hint}")
        if isinstance(getattr(config, name), np.ndarray):
            value = np.array(value)
        try:
            setattr(config, name, value)
        except (ConfigError, AttributeError) as error:   # derived attributes refuse
            raise CliError(f"--set {text}: {error}") from None
    return config


def fixes_num_classes(config, settings):
    """True when the config class (not the base Config) or a --set gives NUM_CLASSES."""
    if any(parse_setting(text)[0] == "NUM_CLASSES" for text in settings):
        return True
    if "NUM_CLASSES" in vars(config):
        return True
    return any("NUM_CLASSES" in vars(cls) for cls in type(config).__mro__
               if cls is not Config and issubclass(cls, Config))


def load_config(args):
    """(config instance, whether it fixes NUM_CLASSES) from --config and --set."""
    value = config_class(args.config)
    try:
        config = value() if inspect.isclass(value) else _copy_config(value)
    except ConfigError as error:
        raise CliError(f"--config {args.config}: {error}") from None
    apply_settings(config, args.settings)
    settings = " ".join(f"--set {text}" for text in args.settings)
    validate_config(config, None, f"--config {args.config}" + (f" {settings}" if settings
                                                                  else ""))
    return config, fixes_num_classes(config, args.settings)


def _copy_config(instance):
    import copy

    return copy.deepcopy(instance)


def validate_config(config, mode, label):
    try:
        config.validate(mode=mode)
    except ConfigError as error:
        raise CliError(f"{label}: {error}") from None


# --- Weights -------------------------------------------------------------------------------

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


# --- Class names ---------------------------------------------------------------------------

def write_classes(directory, dataset):
    """Write ``classes.json`` (class names and COCO category ids) into a run directory."""
    from mrcnn.datasets import coco_category_ids

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CLASSES_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"class_names": list(dataset.class_names),
                   "category_ids": coco_category_ids(dataset)}, f, indent=1)
    return path


def read_classes(path):
    """(class names, category ids or None) from a classes.json or a COCO annotation file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise CliError(f"--classes {path}: the file does not exist") from None
    except json.JSONDecodeError as error:
        raise CliError(f"--classes {path}: not a JSON file ({error})") from None
    if isinstance(data, dict) and "class_names" in data:
        return list(data["class_names"]), data.get("category_ids")
    if isinstance(data, dict) and isinstance(data.get("categories"), list):
        categories = sorted(data["categories"], key=lambda c: c["id"])
        return (["BG"] + [str(c["name"]) for c in categories],
                [None] + [int(c["id"]) for c in categories])
    if isinstance(data, list) and all(isinstance(n, str) for n in data):
        return list(data), None
    raise CliError(f"--classes {path}: expected a classes.json written by 'mrcnn train', "
                   f"a COCO annotation file or a JSON list of names")


def classes_beside(weights):
    """classes.json in the folder of a weights file, or None."""
    if not weights:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(weights)), CLASSES_FILE)
    return path if os.path.isfile(path) else None


# --- Inference models ----------------------------------------------------------------------

def inference_model(args, config, fixed, weights, class_count=None):
    """An inference MaskRCNN with ``weights`` loaded.

    NUM_CLASSES, when the config does not fix it, comes from ``class_count`` (a dataset),
    else from the config stored in the checkpoint, else from classes.json beside it.
    """
    if not fixed:
        count = class_count
        stored = checkpoint_config(weights) if count is None else None
        if count is None and stored and "NUM_CLASSES" in stored:
            count = int(stored["NUM_CLASSES"])
        if count is None and classes_beside(weights):
            count = len(read_classes(classes_beside(weights))[0])
        if count is None and args.weights.lower() == "coco":
            count = COCO_NUM_CLASSES
        if count is None:
            raise CliError(f"NUM_CLASSES: {type(config).__name__} does not set it and "
                           f"{weights} does not record it; pass --set NUM_CLASSES=N "
                           f"(background included)")
        config.NUM_CLASSES = count
    config.GPU_COUNT = 1
    validate_config(config, "inference", f"--config {args.config}")
    import mrcnn.model as modellib

    model = modellib.MaskRCNN(mode="inference", config=config, model_dir=args.logs)
    load_weights(model, weights, excluded_layers(args.exclude, config, args.weights))
    return model


def class_names_for(args, weights, num_classes):
    """(names, category ids or None): --classes, else classes.json beside the weights,
    else 'class 1', 'class 2', ..."""
    path = getattr(args, "classes", None) or classes_beside(weights)
    if path:
        names, categories = read_classes(path)
        if len(names) != num_classes:
            raise CliError(f"--classes {path}: {len(names)} class names (background "
                           f"included) but the model has NUM_CLASSES = {num_classes}")
        return names, categories
    return ["BG"] + [f"class {i}" for i in range(1, num_classes)], None

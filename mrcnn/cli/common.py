"""What the inference subcommands (detect, evaluate, export) share: an inference model
from the config, the weights and, where the config leaves NUM_CLASSES open, the class
count recorded with the weights; where it leaves NUM_KEYPOINTS open, the keypoint head's
settings stored in the checkpoint (KEYPOINT_SETTINGS). The options themselves live in settings.py (--config,
--set), weights.py (--weights, --exclude) and classes.py (classes.json, --classes).

Nothing here imports TensorFlow at module level, so ``mrcnn --help`` and argument errors
are quick; TensorFlow loads when a model is built.
"""
from mrcnn.cli import classes, settings, weights
from mrcnn.cli.errors import CliError

# The config attributes that shape (or name) the keypoint head: taken from the config
# stored in the checkpoint when the config and --set leave them open.
KEYPOINT_SETTINGS = ("NUM_KEYPOINTS", "KEYPOINT_NAMES", "KEYPOINT_FLIP_MAP",
                     "KEYPOINT_POOL_SIZE", "KEYPOINT_MASK_SHAPE", "KEYPOINT_HEAD_CONV_SIZE",
                     "KEYPOINT_HEAD_CONV_COUNT", "KEYPOINT_WITH_MASKS")
# Those that describe the K keypoints: taken only when the checkpoint's K is the config's.
_PER_KEYPOINT = ("KEYPOINT_NAMES", "KEYPOINT_FLIP_MAP")


def inference_model(args, config, fixed, weights_file, class_count=None):
    """An inference MaskRCNN with ``weights_file`` loaded.

    NUM_CLASSES, when the config does not fix it, comes from ``class_count`` (a dataset),
    else from the config stored in the checkpoint, else from classes.json beside it (81
    for the COCO weights). The keypoint head's settings that the config and --set leave
    open come from the checkpoint's stored config (see :func:`stored_keypoint_settings`).
    """
    if not fixed:
        config.NUM_CLASSES = _class_count(args, config, weights_file, class_count)
    stored_keypoint_settings(args, config, weights_file)
    config.GPU_COUNT = 1
    settings.validate_config(config, "inference", f"--config {args.config}")
    import mrcnn.model as modellib

    model = modellib.MaskRCNN(mode="inference", config=config, model_dir=args.logs)
    weights.load_weights(model, weights_file,
                         weights.excluded_layers(args.exclude, config, args.weights))
    return model


def _class_count(args, config, weights_file, class_count):
    if class_count is not None:
        return class_count
    stored = weights.checkpoint_config(weights_file)
    if stored and "NUM_CLASSES" in stored:
        return int(stored["NUM_CLASSES"])
    beside = classes.classes_beside(weights_file)
    if beside:
        return len(classes.read_classes(beside)[0])
    if args.weights.lower() == "coco":
        return weights.COCO_NUM_CLASSES
    raise CliError(f"NUM_CLASSES: {type(config).__name__} does not set it and "
                   f"{weights_file} does not record it; pass --set NUM_CLASSES=N "
                   f"(background included)")


def _setting_value(name, value):
    """A stored (JSON) value as the config holds it: tuples for names and pairs."""
    if name == "KEYPOINT_NAMES" and value is not None:
        return tuple(str(v) for v in value)
    if name == "KEYPOINT_FLIP_MAP":
        return tuple(tuple(pair) for pair in value or ())
    if name == "KEYPOINT_MASK_SHAPE":
        return [int(v) for v in value]
    return value


def stored_keypoint_settings(args, config, weights_file):
    """Set on ``config`` the KEYPOINT_SETTINGS that the checkpoint stores and that neither
    the config class nor --set gives; returns {name: value} of those set.

    KEYPOINT_NAMES and KEYPOINT_FLIP_MAP are taken only when the stored NUM_KEYPOINTS is
    the config's (after this). A checkpoint without a stored config, or without keypoint
    settings (written before the keypoint head existed), changes nothing.
    """
    stored = weights.checkpoint_config(weights_file) or {}
    taken = {}
    for name in KEYPOINT_SETTINGS:
        if name not in stored or settings.fixes_attribute(config, args.settings, name):
            continue
        if name in _PER_KEYPOINT and stored.get("NUM_KEYPOINTS") != config.NUM_KEYPOINTS:
            continue
        value = _setting_value(name, stored[name])
        setattr(config, name, value)
        taken[name] = value
    count = taken.get("NUM_KEYPOINTS")
    if count:
        names = taken.get("KEYPOINT_NAMES")
        print(f"Keypoints: NUM_KEYPOINTS = {count}"
              + (f" ({', '.join(names)})" if names else "")
              + f" and the keypoint head's settings from {weights_file}")
    return taken

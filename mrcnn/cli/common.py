"""What the inference subcommands (detect, evaluate, export) share: an inference model
from the config, the weights and, where the config leaves NUM_CLASSES open, the class
count recorded with the weights. The options themselves live in settings.py (--config,
--set), weights.py (--weights, --exclude) and classes.py (classes.json, --classes).

Nothing here imports TensorFlow at module level, so ``mrcnn --help`` and argument errors
are quick; TensorFlow loads when a model is built.
"""
from mrcnn.cli import classes, settings, weights
from mrcnn.cli.errors import CliError


def inference_model(args, config, fixed, weights_file, class_count=None):
    """An inference MaskRCNN with ``weights_file`` loaded.

    NUM_CLASSES, when the config does not fix it, comes from ``class_count`` (a dataset),
    else from the config stored in the checkpoint, else from classes.json beside it (81
    for the COCO weights).
    """
    if not fixed:
        config.NUM_CLASSES = _class_count(args, config, weights_file, class_count)
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

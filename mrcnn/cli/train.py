"""``mrcnn train``: train on an annotated data set, writing checkpoints as MaskRCNN.train().

    mrcnn train --coco ann.json --images imgs/ --val-fraction 0.1 \\
        --config myconfig:MyConfig --weights coco --layers heads --epochs 10

Checkpoints go to LOGS/<name><YYYYmmddTHHMM>/mask_rcnn_<name>_<epoch>.h5, with
classes.json beside them (the class names and COCO category ids, read by ``mrcnn
detect``). NUM_CLASSES comes from the data set unless the config sets it.

Keypoints: a COCO file whose categories name "keypoints" trains the keypoint head too.
Unless the config (or --set) gives NUM_KEYPOINTS, it comes from the data set with
KEYPOINT_NAMES and, for names following the "left_<part>" / "right_<part>" convention,
KEYPOINT_FLIP_MAP; --set NUM_KEYPOINTS=0 trains without keypoints. The checkpoints store
the config, so detect, evaluate and export read the keypoint settings (these and the
head's sizes, mrcnn.cli.common.KEYPOINT_SETTINGS) from them and the printed "Detect
with:" command leaves them out; classes.json also holds the keypoint names and skeleton
(drawn by ``mrcnn detect``).
"""
import os
import shlex

from mrcnn.cli import classes, data, settings, weights
from mrcnn.cli.errors import CliError

LAYER_CHOICES = ("heads", "all", "3+", "4+", "5+")
HELP = "train on a COCO / VIA / LabelMe / mask-folder data set"


def add_parser(subparsers, formatter):
    parser = subparsers.add_parser("train", help=HELP, description=__doc__,
                                   formatter_class=formatter)
    data.add_dataset_arguments(parser)
    data.add_dataset_arguments(parser, prefix="val-")
    parser.add_argument("--val-fraction", type=float, metavar="F",
                        help="without validation data: hold out this share of the images "
                             "(default 0.1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the --val-fraction split (default 0)")
    settings.add_config_arguments(parser)
    weights.add_weights_argument(parser, training=True)
    parser.add_argument("--layers", default="heads", metavar="|".join(LAYER_CHOICES),
                        help="layers to train: heads, all, 3+, 4+, 5+ (ResNet stage and up) "
                             "or a regex of layer names (default: heads)")
    parser.add_argument("--epochs", type=int, required=True, metavar="N",
                        help="train up to epoch N (cumulative: resuming an epoch-3 "
                             "checkpoint with --epochs 5 trains 2 more)")
    parser.add_argument("--learning-rate", type=float, metavar="LR",
                        help="default: the config's LEARNING_RATE")
    parser.set_defaults(run=run)
    return parser


def _datasets(args):
    train = data.load_dataset(args)
    if train is None:
        raise CliError("no training data: give --coco ANN.json --images DIR, --via "
                              "FILE --images DIR, --labelme DIR or --masks IMAGES_DIR MASKS_DIR")
    val = data.load_dataset(args, prefix="val-")
    if val is not None and args.val_fraction is not None:
        raise CliError("give validation data or --val-fraction, not both")
    if val is None:
        fraction = 0.1 if args.val_fraction is None else args.val_fraction
        try:
            train, val = train.split(fraction, seed=args.seed)
        except ValueError as error:
            raise CliError(f"--val-fraction {fraction}: {error}") from None
        print(f"Validation: {len(val.image_ids)} of the images (--val-fraction {fraction}, "
              f"seed {args.seed})")
    if list(val.class_names) != list(train.class_names):
        raise CliError(f"the validation classes {list(val.class_names)} differ from "
                              f"the training classes {list(train.class_names)}; pass "
                              f"--class-names to fix them")
    if _keypoint_names(val) != _keypoint_names(train):
        raise CliError(f"the validation keypoints {_keypoint_names(val)} differ from the "
                       f"training keypoints {_keypoint_names(train)}")
    return train, val


def _keypoint_names(dataset):
    """The keypoint names of a data set (None without keypoints: only COCO files have)."""
    names = getattr(dataset, "keypoint_names", None)
    return list(names) if names else None


def _configure_keypoints(args, config, train):
    """NUM_KEYPOINTS, KEYPOINT_NAMES (and a left_/right_ KEYPOINT_FLIP_MAP) from the data
    set unless the config gives NUM_KEYPOINTS; returns them as --set options (which
    detect no longer needs: it reads them from the checkpoint's stored config)."""
    names = _keypoint_names(train)
    fixed = settings.fixes_attribute(config, args.settings, "NUM_KEYPOINTS")
    count = config.NUM_KEYPOINTS
    if names is None:
        if count:
            raise CliError(f"NUM_KEYPOINTS is {count} in {args.config} but the data set "
                           f"has no keypoints (COCO categories with 'keypoints' names)")
        return []
    if not fixed:
        values = train.keypoint_settings()
        if list(getattr(config, "KEYPOINT_FLIP_MAP", ()) or ()):
            values.pop("KEYPOINT_FLIP_MAP")      # the config's own pairs stay
        for name, value in values.items():
            setattr(config, name, value)
        flips = values.get("KEYPOINT_FLIP_MAP")
        print(f"Keypoints: NUM_KEYPOINTS = {len(names)} from the data set ({', '.join(names)})"
              + (f"; KEYPOINT_FLIP_MAP from the left_/right_ names: {list(flips)}" if flips
                 else "") + "; --set NUM_KEYPOINTS=0 trains without keypoints")
        return [f"NUM_KEYPOINTS={len(names)}", f"KEYPOINT_NAMES={tuple(names)!r}"]
    if count == 0:
        print(f"Keypoints: the data set has {len(names)} keypoints but NUM_KEYPOINTS = 0 "
              f"in {args.config}: training without them")
    elif count != len(names):
        raise CliError(f"NUM_KEYPOINTS is {count} in {args.config} but the data set has "
                       f"{len(names)} keypoints: {names}")
    elif config.KEYPOINT_NAMES is not None and list(config.KEYPOINT_NAMES) != names:
        raise CliError(f"KEYPOINT_NAMES {list(config.KEYPOINT_NAMES)} in {args.config} "
                       f"differ from the data set's keypoints {names} (same order needed)")
    return []


def _configure(args, config, fixed, train):
    """NUM_CLASSES (and the keypoints) from the data set unless the config fixes them;
    checked for training. Returns (config, the keypoint settings taken from the data set
    as --set options)."""
    if not fixed:
        config.NUM_CLASSES = train.num_classes
    elif config.NUM_CLASSES != train.num_classes:
        raise CliError(
            f"NUM_CLASSES is {config.NUM_CLASSES} in {args.config} but the data set has "
            f"{train.num_classes} classes (background included): {list(train.class_names)}")
    from_data = _configure_keypoints(args, config, train)
    settings.validate_config(config, "training", f"--config {args.config}")
    return config, from_data


def run(args):
    if args.epochs < 1:
        raise CliError(f"--epochs {args.epochs}: must be at least 1")
    config, fixed = settings.load_config(args)
    train, val = _datasets(args)
    print(f"Training data: {data.describe(train)}")
    print(f"Validation data: {len(val.image_ids)} images")
    config, from_data = _configure(args, config, fixed, train)
    config.display()
    weights_file = weights.weights_path(args.weights, config, args.logs, training=True)
    if weights_file is None and args.layers != "all":
        print(f"Note: training from scratch (--weights none) with --layers {args.layers}; "
              f"the untrained backbone stays frozen. --layers all trains it too.")
    import mrcnn.model as modellib

    model = modellib.MaskRCNN(mode="training", config=config, model_dir=args.logs)
    if weights_file is not None:
        weights.load_weights(model, weights_file,
                             weights.excluded_layers(args.exclude, config, args.weights))
    print(f"Class names: {classes.write_classes(model.log_dir, train)}")
    learning_rate = config.LEARNING_RATE if args.learning_rate is None else args.learning_rate
    if model.epoch >= args.epochs:
        print(f"Nothing to train: the checkpoint is at epoch {model.epoch} and --epochs is "
              f"{args.epochs} (the target epoch, not a count)")
        return 0
    model.train(train, val, learning_rate=learning_rate, epochs=args.epochs,
                layers=args.layers)
    last = model.find_last()
    print(f"Last checkpoint: {last}")
    from mrcnn.cli.common import KEYPOINT_SETTINGS

    overrides = "".join(f" --set {shlex.quote(text)}" for text in args.settings
                        if settings.parse_setting(text)[0] not in KEYPOINT_SETTINGS)
    if from_data:
        print(f"Keypoint settings from the data set ({', '.join(from_data)}) are stored in "
              f"the checkpoint; detect, evaluate and export read them from there")
    print(f"Detect with: mrcnn detect --config {args.config}{overrides} --weights {last} "
          f"--output {os.path.join(os.path.dirname(last), 'detections')} IMAGES...")
    return 0

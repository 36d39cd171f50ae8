"""Annotated data sets named on the command line, read with the loaders of mrcnn.datasets.

One of four formats per set (``prefix`` "" for the training or evaluated set, "val-" for
the validation set)::

    --coco ANN.json --images DIR        COCO instances JSON (CocoDataset)
    --via FILE.json --images DIR        VIA 2.x project or export (ViaDataset)
    --labelme DIR                       a folder of LabelMe JSON files (LabelMeDataset)
    --masks IMAGES_DIR MASKS_DIR        per-instance mask PNGs (MaskFolderDataset)
"""
import os

FORMATS = ("coco", "via", "labelme", "masks")


def add_dataset_arguments(parser, prefix="", title=None):
    """Add the four format options (and --images, --class-names, ...) under ``prefix``."""
    group = parser.add_argument_group(title or ("validation data" if prefix else "data"))
    what = "validation" if prefix else "the"
    group.add_argument(f"--{prefix}coco", metavar="ANN.json",
                       help=f"COCO instances JSON of {what} images (with --{prefix}images)")
    group.add_argument(f"--{prefix}via", metavar="FILE.json",
                       help=f"VIA 2.x project/export JSON of {what} images "
                            f"(with --{prefix}images)")
    group.add_argument(f"--{prefix}labelme", metavar="DIR",
                       help=f"folder of LabelMe JSON files of {what} images")
    group.add_argument(f"--{prefix}masks", nargs=2, metavar=("IMAGES_DIR", "MASKS_DIR"),
                       help="images and per-instance mask PNGs (masks/<image>/<class>_<k>.png)"
                            " or instance-id PNGs with --class-map")
    group.add_argument(f"--{prefix}images", metavar="DIR",
                       help=f"folder of the images of --{prefix}coco / --{prefix}via "
                            f"(default: the JSON file's folder)")
    if not prefix:
        group.add_argument("--class-names", metavar="A,B,...",
                           help="load only these classes, in this order (COCO, VIA, LabelMe, "
                                "masks)")
        group.add_argument("--class-attribute", default="class", metavar="NAME",
                           help="VIA region attribute holding the class (default: class)")
        group.add_argument("--class-map", metavar="FILE",
                           help="--masks with instance-id PNGs: JSON or CSV file mapping "
                                "instance values to class names")
    return group


def chosen_format(args, prefix=""):
    """The format given under ``prefix`` (or None); two at once is an error."""
    from mrcnn.cli.errors import CliError

    attribute = prefix.replace("-", "_")
    given = [name for name in FORMATS if getattr(args, attribute + name, None)]
    if len(given) > 1:
        raise CliError("give one data set format, not " + " and ".join(
            f"--{prefix}{name}" for name in given))
    return given[0] if given else None


def _path_must_exist(option, path, folder=False):
    from mrcnn.cli.errors import CliError

    exists = os.path.isdir(path) if folder else os.path.isfile(path)
    if not exists:
        kind = "folder" if folder else "file"
        raise CliError(f"{option} {path}: the {kind} does not exist")


def load_dataset(args, prefix=""):
    """The prepared Dataset given under ``prefix``, or None when no format is given.

    Raises CliError for missing files, AnnotationError (naming the file and annotation)
    for bad annotations.
    """
    from mrcnn import datasets

    kind = chosen_format(args, prefix)
    if kind is None:
        return None
    attribute = prefix.replace("-", "_")
    value = getattr(args, attribute + kind)
    images = getattr(args, attribute + "images", None)
    if images:
        _path_must_exist(f"--{prefix}images", images, folder=True)
    names = _class_names(args)
    if kind == "coco":
        _path_must_exist(f"--{prefix}coco", value)
        return datasets.CocoDataset(value, images, class_names=names)
    if kind == "via":
        _path_must_exist(f"--{prefix}via", value)
        return datasets.ViaDataset(value, images, class_attribute=args.class_attribute,
                                   class_names=names)
    if kind == "labelme":
        _path_must_exist(f"--{prefix}labelme", value, folder=True)
        return datasets.LabelMeDataset(value, class_names=names)
    image_dir, mask_dir = value
    _path_must_exist(f"--{prefix}masks", image_dir, folder=True)
    _path_must_exist(f"--{prefix}masks", mask_dir, folder=True)
    return datasets.MaskFolderDataset(image_dir, mask_dir, class_names=names,
                                      class_map=args.class_map)


def _class_names(args):
    text = getattr(args, "class_names", None)
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def describe(dataset):
    """'N images, K classes: a, b, ...' for the console."""
    names = list(dataset.class_names[1:])
    return (f"{len(dataset.image_ids)} images, {len(names)} classes: "
            + ", ".join(names[:12]) + (" ..." if len(names) > 12 else ""))

"""The class names of a trained model: ``classes.json``, which ``mrcnn train`` writes
into its run directory (class names and COCO category ids), or ``--classes FILE``.
"""
import json
import os

from mrcnn.cli.errors import CliError

CLASSES_FILE = "classes.json"


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

"""The class names of a trained model: ``classes.json``, which ``mrcnn train`` writes
into its run directory (class names and COCO category ids, and for a data set with
keypoints their names and skeleton), or ``--classes FILE``.
"""
import json
import os

from mrcnn.cli.errors import CliError

CLASSES_FILE = "classes.json"


def write_classes(directory, dataset):
    """Write ``classes.json`` into a run directory: class names and COCO category ids, and
    "keypoint_names" with "keypoint_skeleton" (0-based index pairs) when the data set has
    keypoint names (a COCO keypoint file)."""
    from mrcnn.datasets import coco_category_ids

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CLASSES_FILE)
    content = {"class_names": list(dataset.class_names),
               "category_ids": coco_category_ids(dataset)}
    names = getattr(dataset, "keypoint_names", None)
    if names:
        content["keypoint_names"] = [str(n) for n in names]
        content["keypoint_skeleton"] = [[int(a), int(b)] for a, b in
                                        getattr(dataset, "keypoint_skeleton", None) or ()]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=1)
    return path


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise CliError(f"--classes {path}: the file does not exist") from None
    except json.JSONDecodeError as error:
        raise CliError(f"--classes {path}: not a JSON file ({error})") from None


def read_classes(path):
    """(class names, category ids or None) from a classes.json or a COCO annotation file."""
    data = _read_json(path)
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


def read_skeleton(path):
    """0-based keypoint index pairs from a classes.json ("keypoint_skeleton") or a COCO
    file (the first category's 1-based "skeleton"); () when the file has none."""
    data = _read_json(path)
    if not isinstance(data, dict):
        return ()
    if "keypoint_skeleton" in data:
        return tuple((int(a), int(b)) for a, b in data["keypoint_skeleton"] or ())
    for category in data.get("categories") or ():
        if isinstance(category, dict) and category.get("skeleton"):
            return tuple((int(a) - 1, int(b) - 1) for a, b in category["skeleton"])
    return ()


def skeleton_for(args, weights, num_keypoints):
    """The skeleton drawn between detected keypoints: from --classes or the classes.json
    beside the weights; () without one or when it does not fit ``num_keypoints``."""
    path = getattr(args, "classes", None) or classes_beside(weights)
    if not path or not num_keypoints:
        return ()
    pairs = read_skeleton(path)
    if not all(0 <= i < num_keypoints for pair in pairs for i in pair):
        print(f"Note: the keypoint skeleton of {path} names keypoints beyond the model's "
              f"{num_keypoints}; drawing points only")
        return ()
    return pairs

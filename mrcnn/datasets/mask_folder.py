"""Images with their instance masks as image files: a folder per image, or one
instance-id image per image.

Two layouts (the file names decide which image a mask belongs to: its *stem*, the image
file name without its extension)::

    # 1. one binary mask per instance (class_map=None), named <class>_<k>.png:
    images/cell01.jpg      masks/cell01/nucleus_1.png  masks/cell01/nucleus_2.png
                           masks/cell01/mitosis_1.png
    dataset = MaskFolderDataset("images", "masks")

    # 2. one instance-id image per image: 0 is the background, every other value one
    #    instance; class_map gives each value's class:
    images/cell01.jpg      masks/cell01.png   (uint8 or uint16, single channel)
    dataset = MaskFolderDataset("images", "masks", class_map={1: "nucleus", 2: "mitosis"})

* Layout 1: the class is the file name up to its last "_" ("red_cell_3.png" is a
  "red_cell"); ``k`` is any text that tells the instances apart. A pixel belongs to the
  instance when it is not zero (any channel for colour files; alpha is ignored), so
  0/1 and 0/255 masks both work; save masks losslessly (PNG), as JPEG noise adds pixels.
* Layout 2: ``class_map`` is {instance value: class name} for every image, or
  {image stem: {instance value: class name}} per image, or the path of a JSON file
  holding either, or of a CSV file with the columns ``instance_id`` and ``class`` (and
  ``image``, the stem or file name, for per-image maps). A value without a class is an
  error when its image is loaded.
* Classes 1..K: ``class_names`` in that order, else the names found, sorted.
* An image without masks has no instances (a negative with
  ``config.TRAIN_ON_EMPTY_IMAGES``); a mask without an image is an error.
* image_info: "id" is the image's stem, "path" its file.
"""
import csv
import json
import os

import numpy as np
from PIL import Image

from mrcnn.datasets.base import AnnotationDataset, image_size
from mrcnn.datasets.errors import AnnotationError

__all__ = ["MaskFolderDataset", "IMAGE_EXTENSIONS", "MASK_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")


def _files(folder, extensions):
    """{stem: path} of the files of ``folder`` with one of ``extensions`` (any case)."""
    found = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        path = os.path.join(folder, name)
        if ext.lower() in extensions and os.path.isfile(path):
            if stem in found:
                raise AnnotationError(f"two files share the name {stem!r}: "
                                      f"{os.path.basename(found[stem])} and {name}", folder)
            found[stem] = path
    return found


def read_mask_file(path):
    """Pixel values of a mask file: [H, W] (grey, palette indices, 16-bit) or [H, W, C]."""
    try:
        with Image.open(path) as image:
            values = np.asarray(image)
            if image.mode in ("LA", "PA", "RGBA"):     # drop the alpha channel
                values = values[..., :-1]
    except OSError as error:
        raise AnnotationError(f"cannot read the mask: {error}", path) from error
    return values[..., 0] if values.ndim == 3 and values.shape[2] == 1 else values


def binary_mask(path):
    """bool [H, W]: the non-zero pixels of a mask file (any colour channel)."""
    values = read_mask_file(path)
    return values.any(axis=2) if values.ndim == 3 else values != 0


def _instance_id(value, file, where):
    try:
        number = int(str(value).strip())
    except ValueError:
        raise AnnotationError(f"instance value {value!r} is not an integer", file,
                              where) from None
    if number <= 0:
        raise AnnotationError(f"instance value {number} is not positive (0 is the "
                              f"background)", file, where)
    return number


def _id_map(mapping, file, where):
    return {_instance_id(k, file, where): str(v) for k, v in mapping.items()}


def _read_class_map_file(path):
    """A class map from a JSON or CSV file (see the module docstring)."""
    if path.lower().endswith(".json"):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    columns = set(rows[0]) if rows else set()
    if not {"instance_id", "class"} <= columns:
        raise AnnotationError(f"the CSV needs the columns instance_id and class (and image "
                              f"for per-image maps); it has {sorted(columns)}", path)
    if "image" not in columns:
        return {row["instance_id"]: row["class"] for row in rows}
    per_image = {}
    for row in rows:
        per_image.setdefault(row["image"], {})[row["instance_id"]] = row["class"]
    return per_image


def parse_class_map(class_map):
    """(global {id: name} or None, per-image {key: {id: name}} or None) of a class_map."""
    label = "class_map"
    if isinstance(class_map, (str, os.PathLike)):
        label = os.fspath(class_map)
        class_map = _read_class_map_file(label)
    if not isinstance(class_map, dict) or not class_map:
        raise AnnotationError("the class map must be a non-empty dict, JSON or CSV file", label)
    if all(isinstance(v, dict) for v in class_map.values()):
        return None, {str(key): _id_map(v, label, f"image {key!r}")
                      for key, v in class_map.items()}
    return _id_map(class_map, label, None), None


class MaskFolderDataset(AnnotationDataset):
    """Images and instance masks from mask image files (see the module docstring).

    Args:
        image_dir: the folder of the images.
        mask_dir: the folder of the masks.
        class_names: classes 1..K in this order (default: the names found, sorted); a
            mask of another class is an error.
        class_map: None for layout 1 (a folder of binary masks per image); for layout 2
            (one instance-id image per image) the classes of the instance values.
    With no arguments the dataset starts empty: call ``load_annotations`` and ``prepare``.

    Raises:
        AnnotationError naming the file: a mask folder or file without an image, mask
        files not named <class>_<k>, unknown classes, no masks at all; when an image is
        loaded: masks of another size than the image, instance values without a class.
    """

    SOURCE = "masks"

    def __init__(self, image_dir=None, mask_dir=None, class_names=None, class_map=None):
        super().__init__()
        if image_dir is not None:
            self.load_annotations(image_dir, mask_dir, class_names, class_map)
            self.prepare()

    def load_annotations(self, image_dir, mask_dir, class_names=None, class_map=None):
        """Register the classes and images of an image and a mask folder."""
        image_dir, mask_dir = os.fspath(image_dir), os.fspath(mask_dir)
        images = _files(image_dir, IMAGE_EXTENSIONS)
        if not images:
            raise AnnotationError("no image files in the folder", image_dir)
        if class_map is None:
            records, found = self._instance_folders(images, mask_dir)
        else:
            records, found = self._instance_images(images, mask_dir, class_map)
        if not any(record["instances"] or record.get("label_file") for record in records):
            raise AnnotationError(f"no masks for any of the {len(images)} images of "
                                  f"{image_dir!r}", mask_dir)
        if class_names is not None:
            unknown = sorted(set(found) - set(class_names))
            if unknown:
                raise AnnotationError(f"classes {unknown} are not among class_names "
                                      f"{list(class_names)} (first file: {found[unknown[0]]})",
                                      mask_dir)
        ids = self.register_classes(class_names if class_names is not None else sorted(found))
        for record in records:
            for instance in record["instances"]:
                instance["class"] = ids[instance.pop("name")]
            height, width = image_size(record["path"])
            self.add_image(self.SOURCE, height=height, width=width, **record)

    @staticmethod
    def _instance_folders(images, mask_dir):
        """Layout 1: (add_image records, {class name: first file})."""
        found, records = {}, []
        for entry in sorted(os.listdir(mask_dir)):
            full = os.path.join(mask_dir, entry)
            if os.path.isdir(full) and entry not in images:
                raise AnnotationError(f"the mask folder {entry!r} has no image of that name",
                                      mask_dir)
            if os.path.isfile(full) and os.path.splitext(entry)[1].lower() in MASK_EXTENSIONS:
                raise AnnotationError(f"{entry!r} is a mask file directly in the mask folder; "
                                      f"layout 1 wants <image>/<class>_<k>.png (for one "
                                      f"instance-id image per image, pass class_map)", mask_dir)
        for stem, path in images.items():
            folder = os.path.join(mask_dir, stem)
            instances = []
            if os.path.isdir(folder):
                for mask_stem, mask_path in _files(folder, MASK_EXTENSIONS).items():
                    name, sep, _ = mask_stem.rpartition("_")
                    if not sep or not name:
                        raise AnnotationError("the mask file is not named <class>_<k> (e.g. "
                                              "cell_1.png)", mask_path)
                    found.setdefault(name, mask_path)
                    instances.append({"name": name, "crowd": False, "file": mask_path})
            records.append({"image_id": stem, "path": path, "instances": instances})
        return records, found

    @staticmethod
    def _instance_images(images, mask_dir, class_map):
        """Layout 2: (add_image records, {class name: class map label})."""
        global_map, per_image = parse_class_map(class_map)
        labels = _files(mask_dir, MASK_EXTENSIONS)
        stray = sorted(set(labels) - set(images))
        if stray:
            raise AnnotationError(f"the mask file {os.path.basename(labels[stray[0]])!r} has "
                                  f"no image of that name", mask_dir)
        records, found = [], {}
        for stem, path in images.items():
            mapping = global_map
            if per_image is not None:
                mapping = per_image.get(stem, per_image.get(os.path.basename(path), {}))
            for name in mapping.values():
                found.setdefault(name, "class_map")
            records.append({"image_id": stem, "path": path, "instances": [],
                            "label_file": labels.get(stem), "class_map": dict(mapping)})
        return records, found

    def load_mask(self, image_id):
        """bool [H, W, N] masks and int32 [N] class ids, read from the mask files."""
        info = self.image_info[image_id]
        if info["source"] != self.SOURCE:
            return super().load_mask(image_id)
        height, width = int(info["height"]), int(info["width"])
        if info.get("label_file"):
            masks, names = self._split_label_image(info["label_file"], info["class_map"],
                                                   height, width)
        else:
            masks, names = [], []
            for instance in info["instances"]:
                mask = self._sized(binary_mask(instance["file"]), instance["file"], height,
                                   width)
                masks.append(mask)
                names.append(instance["class"])
        keep = [k for k, mask in enumerate(masks) if mask.any()]
        if not keep:
            return np.zeros([height, width, 0], dtype=bool), np.zeros([0], dtype=np.int32)
        class_ids = [self.map_source_class_id(f"{self.SOURCE}.{names[k]}") for k in keep]
        return np.stack([masks[k] for k in keep], axis=2), np.array(class_ids, np.int32)

    @staticmethod
    def _sized(mask, path, height, width):
        if mask.shape[:2] != (height, width):
            raise AnnotationError(f"the mask is {mask.shape[0]}x{mask.shape[1]} but the image "
                                  f"is {height}x{width} (height x width)", path)
        return mask

    def _split_label_image(self, path, class_map, height, width):
        """([bool [H, W] per instance value], [source class id per value])."""
        labels = self._sized(read_mask_file(path), path, height, width)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise AnnotationError(f"an instance-id image must have one integer channel; this "
                                  f"one is {labels.dtype} {labels.shape}", path)
        values = [int(v) for v in np.unique(labels) if v != 0]
        unknown = [v for v in values if v not in class_map]
        if unknown:
            raise AnnotationError(f"instance values {unknown[:10]} have no class in the class "
                                  f"map (it has {sorted(class_map)[:10]})", path)
        names = {name: self.class_source_id(name) for name in set(class_map.values())}
        return [labels == v for v in values], [names[class_map[v]] for v in values]

"""A folder of LabelMe annotation files (one JSON per image, as the labelme tool saves).

    dataset = LabelMeDataset("annotated/")

Each ``<name>.json`` holds::

    {"version": "5.5.0", "flags": {},
     "shapes": [{"label": "cat", "points": [[x, y], ...], "group_id": null,
                 "shape_type": "polygon", "flags": {}, "description": "", "mask": null}, ...],
     "imagePath": "cat.jpg", "imageData": null | "<base64 of the image file>",
     "imageHeight": 480, "imageWidth": 640}

* Shapes: "polygon" (3 or more points); "rectangle" (two opposite corners); "circle"
  (the centre, then a point on the circumference); "mask" (two corners of a box, and
  "mask" a base64 PNG of that box, top-left at the first corner, as labelme 5 writes it).
  "line", "linestrip", "point" and "points" hold no area: they are skipped, with one
  AnnotationWarning per folder. Pixel convention: mrcnn.datasets.raster (COCO's, as
  labelme's own labelme2coco output is rasterised by COCO's tools; labelme's PIL drawing
  counts the outline pixels too, so its masks are about half a pixel wider all round).
* Instances: shapes with the same label and the same non-null group_id form one
  instance (their union); each shape without group_id is an instance of its own.
* Classes: the labels, sorted, as classes 1..K (or ``class_names`` in that order; other
  labels are then an error).
* The image: ``imagePath`` relative to the JSON file (Windows "\\" separators work); if
  that file does not exist, the base64 ``imageData`` embedded in the JSON. Images without
  shapes are kept, with no instances.
* image_info: "id" is the JSON file's name without ".json", "path" the image file (or the
  JSON file for an embedded image, with "embedded": True).
"""
import base64
import glob
import io
import os
import warnings

import numpy as np
from PIL import Image

from mrcnn.datasets import raster
from mrcnn.datasets.base import AnnotationDataset, image_size, read_json_object
from mrcnn.datasets.errors import AnnotationError, AnnotationWarning

__all__ = ["LabelMeDataset"]

NO_AREA_SHAPES = ("line", "linestrip", "point", "points")


def _decode_png(text, path, where, what):
    try:
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))
    except (ValueError, OSError) as error:
        raise AnnotationError(f"cannot decode the base64 {what}: {error}", path, where) from error


def _read_labelme(path):
    data = read_json_object(path, "LabelMe file")
    if not isinstance(data.get("shapes"), list) or "imagePath" not in data:
        raise AnnotationError("not a LabelMe file: it needs 'shapes' and 'imagePath'", path)
    return data


def _embedded_image(path):
    data = _read_labelme(path)
    if not data.get("imageData"):
        raise AnnotationError("the file embeds no imageData", path)
    image = Image.open(io.BytesIO(base64.b64decode(data["imageData"])))
    return np.asarray(image.convert("RGB"))


def _shape(shape, path, where):
    """A raster shape of one LabelMe shape, or None for the shapes without area."""
    kind = shape.get("shape_type") or "polygon"
    points = shape.get("points") or []
    if kind in NO_AREA_SHAPES:
        return None
    if kind == "polygon" or (kind == "rectangle" and len(points) == 4):
        return raster.polygon_shape(points, path, where, what=f"the {kind}")
    if kind in ("rectangle", "circle", "mask") and len(points) != 2:
        raise AnnotationError(f"a {kind} needs 2 points, this one has {len(points)}",
                              path, where)
    if kind == "rectangle":
        (x1, y1), (x2, y2) = points
        return raster.box_shape(x1, y1, x2, y2, path, where)
    if kind == "circle":
        (cx, cy), (px, py) = points
        radius = float(np.hypot(float(px) - float(cx), float(py) - float(cy)))
        return raster.ellipse_shape(cx, cy, radius, radius, file=path, annotation=where,
                                    what="the circle")
    if kind == "mask":
        if not shape.get("mask"):
            raise AnnotationError("a mask shape needs its base64 'mask' PNG", path, where)
        bitmap = _decode_png(shape["mask"], path, where, "mask")
        (x1, y1), (x2, y2) = np.asarray(points, dtype=np.float64).astype(int)
        if bitmap.ndim != 2 or bitmap.shape != (y2 - y1 + 1, x2 - x1 + 1):
            raise AnnotationError(f"the mask PNG is {bitmap.shape} but its box ({x1}, {y1}) - "
                                  f"({x2}, {y2}) is {y2 - y1 + 1}x{x2 - x1 + 1}", path, where)
        return raster.bitmap_shape(bitmap > 0, x1, y1)
    raise AnnotationError(f"unknown shape_type {kind!r}", path, where)


class LabelMeDataset(AnnotationDataset):
    """Images and instance masks of a folder of LabelMe JSON files (see the module
    docstring).

    Args:
        folder: the folder of ``*.json`` files.
        class_names: classes 1..K in this order (default: the labels found, sorted).
        recursive: also read the JSON files of sub-folders.
    With no arguments the dataset starts empty: call ``load_annotations`` and ``prepare``.

    Raises:
        AnnotationError naming the JSON file and the shape ("shape 3 'cat'"): polygons with
        fewer than 3 points, unknown labels, coordinates far outside the image, a missing
        image without imageData, an image whose size is not imageHeight x imageWidth.
    """

    SOURCE = "labelme"

    def __init__(self, folder=None, class_names=None, recursive=False):
        super().__init__()
        if folder is not None:
            self.load_annotations(folder, class_names, recursive)
            self.prepare()

    def load_annotations(self, folder, class_names=None, recursive=False):
        """Register the classes and images of a folder of LabelMe files."""
        folder = os.fspath(folder)
        pattern = os.path.join(folder, "**", "*.json") if recursive else \
            os.path.join(folder, "*.json")
        files = sorted(glob.glob(pattern, recursive=recursive))
        if not files:
            raise AnnotationError("no LabelMe .json files in the folder", folder)
        report, skipped, parsed, found = self._outside_report(folder), [], [], set()
        for path in files:
            record = self._parse_file(path, class_names, report, skipped)
            found.update(instance["name"] for instance in record["instances"])
            parsed.append(record)
        ids = self.register_classes(class_names if class_names is not None else sorted(found))
        for record in parsed:
            for instance in record["instances"]:
                instance["class"] = ids[instance.pop("name")]
            self.add_image(self.SOURCE, **record)
        report.warn()
        if skipped:
            warnings.warn(f"{folder}: skipped {len(skipped)} shape(s) without area (lines, "
                          f"points; first: {skipped[0]})", AnnotationWarning, stacklevel=2)

    def _parse_file(self, path, class_names, report, skipped):
        """add_image keyword arguments of one LabelMe file (classes by "name")."""
        data = _read_labelme(path)
        image_path, embedded, height, width = self._image(data, path)
        instances, by_group = [], {}
        for k, shape in enumerate(data["shapes"]):
            label = str(shape.get("label", ""))
            where = f"shape {k} {label!r}"
            part = _shape(shape, path, where)
            if part is None:
                skipped.append(f"{os.path.basename(path)} {where}")
                continue
            if class_names is not None and label not in class_names:
                raise AnnotationError(f"label {label!r} is not one of {list(class_names)}",
                                      path, where)
            self._check_shapes(report, [part], height, width, where, path)
            group = shape.get("group_id")
            key = (label, group) if group is not None else None
            if key is not None and key in by_group:
                by_group[key]["shapes"].append(part)
                continue
            instance = {"name": label, "crowd": False, "shapes": [part]}
            instances.append(instance)
            if key is not None:
                by_group[key] = instance
        stem = os.path.splitext(os.path.basename(path))[0]
        return {"image_id": stem, "path": image_path, "embedded": embedded, "height": height,
                "width": width, "instances": instances, "annotation_file": path}

    @staticmethod
    def _image(data, path):
        """(image path, embedded, height, width) of one LabelMe file."""
        relative = str(data.get("imagePath") or "").replace("\\", "/")
        image_path = os.path.normpath(os.path.join(os.path.dirname(path), relative))
        declared = (data.get("imageHeight"), data.get("imageWidth"))
        if relative and os.path.isfile(image_path):
            actual = image_size(image_path, path, "imagePath")
            embedded = False
        elif data.get("imageData"):
            image = _decode_png(data["imageData"], path, "imageData", "image")
            actual, image_path, embedded = image.shape[:2], path, True
        else:
            raise AnnotationError(f"the image file {image_path!r} (imagePath) does not exist "
                                  f"and the file embeds no imageData", path)
        if None not in declared and tuple(int(v) for v in declared) != tuple(actual):
            raise AnnotationError(
                f"imageHeight x imageWidth is {declared[0]}x{declared[1]} but the image is "
                f"{actual[0]}x{actual[1]}", path, "image")
        return image_path, embedded, int(actual[0]), int(actual[1])

    def load_image(self, image_id):
        """uint8 [H, W, 3] RGB: the image file, or the image embedded in the JSON."""
        info = self.image_info[image_id]
        if info["source"] == self.SOURCE and info.get("embedded"):
            return _embedded_image(info["path"])
        return super().load_image(image_id)

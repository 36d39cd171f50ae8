"""VGG Image Annotator (VIA) 2.x annotations: a project file or an exported JSON.

    dataset = ViaDataset("via_project.json", "images", class_attribute="class")

Two files hold the same records: the project file that VIA 2.x saves
(``{"_via_settings", "_via_img_metadata": {...}, "_via_attributes": {...}, ...}``) and
"Export Annotations (as json)", which is the ``_via_img_metadata`` dict alone, keyed by
file name + file size::

    {"a.jpg12345": {"filename": "a.jpg", "size": 12345, "file_attributes": {},
                    "regions": [{"shape_attributes": {"name": "polygon",
                                                      "all_points_x": [...],
                                                      "all_points_y": [...]},
                                 "region_attributes": {"class": "cat"}}, ...]}, ...}

(VIA 1.x files, whose "regions" is a dict, load too; VIA 3 project files do not.)

* Shapes: "polygon"; "polyline" (closed into a polygon); "rect" (x, y, width, height);
  "circle" (cx, cy, r); "ellipse" (cx, cy, rx, ry, theta radians). Points hold no
  area: they are skipped with one AnnotationWarning per file; other shapes are an error. Pixel
  convention: mrcnn.datasets.raster (COCO's: pixel (r, c) covers [c, c+1) x [r, r+1)).
  Upstream's balloon sample drew polygons with skimage.draw.polygon, whose pixel centres
  are the integer coordinates, half a pixel away from this convention.
* Classes: the value of the region attribute ``class_attribute`` (a dropdown, radio or
  text attribute; a checkbox attribute with exactly one option ticked). Class ids 1..K
  follow ``class_names`` if given, else the attribute's options in the project file,
  else the names found, sorted. A region without the attribute gets ``default_class``
  (e.g. "balloon" for a one-class project), or is an error.
* Images without regions are kept, with no instances (negatives with
  ``config.TRAIN_ON_EMPTY_IMAGES``). Image sizes are read from the files' headers.
* image_info: "id" is the file name, "path" image_dir/filename.
"""
import os
import warnings

from mrcnn.datasets import raster
from mrcnn.datasets.base import AnnotationDataset, image_size, read_json_object
from mrcnn.datasets.errors import AnnotationError, AnnotationWarning

__all__ = ["ViaDataset"]

AREA_SHAPES = ("polygon", "polyline", "rect", "circle", "ellipse")


def _read_via(path):
    """(records dict, the class options of the project's attribute definitions or None)."""
    data = read_json_object(path, "VIA file")
    if "project" in data and "metadata" in data:
        raise AnnotationError("this is a VIA 3 project file; export the annotations from "
                              "VIA 2.x, or convert them to COCO", path)
    attributes = data.get("_via_attributes") or {}
    records = data.get("_via_img_metadata", data)
    for key, record in records.items():
        if not isinstance(record, dict) or "filename" not in record:
            raise AnnotationError(f"not a VIA file: entry {key!r} has no 'filename'", path)
    return records, attributes.get("region", {})


def _region_list(record):
    regions = record.get("regions") or []
    return list(regions.values()) if isinstance(regions, dict) else list(regions)


def _region_shape(shape, path, where):
    """A raster shape of VIA shape attributes, or None for shapes without area."""
    name = shape.get("name")
    try:
        if name in ("polygon", "polyline"):
            xs, ys = shape["all_points_x"], shape["all_points_y"]
            if len(xs) != len(ys):
                raise AnnotationError(f"the {name} has {len(xs)} x but {len(ys)} y values",
                                      path, where)
            return raster.polygon_shape(list(zip(xs, ys)), path, where, what=f"the {name}")
        if name == "rect":
            x, y = shape["x"], shape["y"]
            return raster.box_shape(x, y, x + shape["width"], y + shape["height"], path, where)
        if name == "circle":
            return raster.ellipse_shape(shape["cx"], shape["cy"], shape["r"], shape["r"],
                                        file=path, annotation=where, what="the circle")
        if name == "ellipse":
            return raster.ellipse_shape(shape["cx"], shape["cy"], shape["rx"], shape["ry"],
                                        shape.get("theta", 0.0), path, where)
    except KeyError as error:
        raise AnnotationError(f"the {name} lacks its {error.args[0]!r} value", path,
                              where) from None
    if name == "point":
        return None
    raise AnnotationError(f"unsupported region shape {name!r}; expected one of "
                          f"{AREA_SHAPES} (points are skipped)", path, where)


class ViaDataset(AnnotationDataset):
    """Images and instance masks of a VIA 2.x JSON (see the module docstring).

    Args:
        via_json: the project file or exported annotations.
        image_dir: folder of the images (default: the JSON file's folder).
        class_attribute: the region attribute that names the class; None: every region
            is ``default_class``.
        class_names: classes 1..K in this order (default: see the module docstring); a
            region of another class is an error.
        default_class: class of regions without the attribute.
    With no arguments the dataset starts empty: call ``load_annotations`` and ``prepare``.

    Raises:
        AnnotationError naming the file and the region ("region 2 of 'a.jpg'"): polygons
        with fewer than 3 points, regions without a class, unknown classes, coordinates
        far outside the image, missing image files.
    """

    SOURCE = "via"

    def __init__(self, via_json=None, image_dir=None, class_attribute="class", class_names=None,
                 default_class=None):
        super().__init__()
        if via_json is not None:
            self.load_annotations(via_json, image_dir, class_attribute, class_names,
                                  default_class)
            self.prepare()

    def load_annotations(self, via_json, image_dir=None, class_attribute="class",
                         class_names=None, default_class=None):
        """Register the classes and images of a VIA JSON (arguments: see the class)."""
        path = os.fspath(via_json)
        records, region_attributes = _read_via(path)
        if image_dir is None:
            image_dir = os.path.dirname(os.path.abspath(path))
        if class_attribute is None and default_class is None:
            raise ValueError("class_attribute=None needs default_class (the one class)")
        options = (region_attributes.get(class_attribute) or {}).get("options") \
            if class_attribute else None
        allowed = list(class_names) if class_names is not None else \
            (list(options) if options else None)
        if class_names is None and allowed is not None and default_class is not None \
                and default_class not in allowed:
            allowed.append(default_class)
        parsed, found = [], set()
        report, skipped = self._outside_report(path), []
        for record in records.values():
            image_path = os.path.join(image_dir, record["filename"])
            where = f"image {record['filename']!r}"
            height, width = image_size(image_path, path, where)
            instances = []
            for k, region in enumerate(_region_list(record)):
                where = f"region {k} of {record['filename']!r}"
                shape = _region_shape(region.get("shape_attributes") or {}, path, where)
                if shape is None:
                    skipped.append((where, (region.get("shape_attributes") or {}).get("name")))
                    continue
                name = self._class_name(region, class_attribute, default_class, path, where)
                if allowed is not None and name not in allowed:
                    raise AnnotationError(f"class {name!r} is not one of {allowed}", path, where)
                found.add(name)
                self._check_shapes(report, [shape], height, width, where)
                instances.append({"name": name, "crowd": False, "shapes": [shape]})
            parsed.append((record["filename"], image_path, height, width, instances))
        ids = self.register_classes(allowed if allowed is not None else sorted(found))
        for filename, image_path, height, width, instances in parsed:
            for instance in instances:
                instance["class"] = ids[instance.pop("name")]
            self.add_image(self.SOURCE, image_id=filename, path=image_path, height=height,
                           width=width, instances=instances, annotation_file=path)
        report.warn()
        if skipped:
            warnings.warn(f"{path}: skipped {len(skipped)} region(s) without area (first: "
                          f"{skipped[0][0]}, a {skipped[0][1]!r})", AnnotationWarning,
                          stacklevel=2)

    @staticmethod
    def _class_name(region, class_attribute, default_class, path, where):
        value = (region.get("region_attributes") or {}).get(class_attribute) \
            if class_attribute else None
        if isinstance(value, dict):            # a checkbox attribute: {option: true}
            ticked = [option for option, on in value.items() if on]
            if len(ticked) != 1:
                raise AnnotationError(f"the {class_attribute!r} checkboxes tick {ticked}; "
                                      f"exactly one class is needed", path, where)
            value = ticked[0]
        if value is None or (isinstance(value, str) and not value.strip()):
            if default_class is None:
                raise AnnotationError(f"the region has no {class_attribute!r} attribute; "
                                      f"set it in VIA, or pass default_class=...", path, where)
            return default_class
        return str(value).strip()

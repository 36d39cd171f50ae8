"""COCO instance-segmentation JSON, as COCO itself and annotation tools (CVAT, Labelbox,
Roboflow, ...) export it.

    dataset = CocoDataset("annotations/instances_default.json", "images")
    dataset.class_names            # ["BG", <categories in category id order>]
    masks, class_ids = dataset.load_mask(0)

The file is COCO's "instances" layout::

    {"images": [{"id", "file_name", "height", "width"}, ...],
     "categories": [{"id", "name", "supercategory"}, ...],
     "annotations": [{"id", "image_id", "category_id", "iscrowd", "bbox",
                      "segmentation": [[x1, y1, x2, y2, ...], ...]   # polygons, or
                                      {"size": [H, W], "counts": [...] | "..."}}, ...]}

* Segmentations: one or several polygons per instance (their union), uncompressed RLE
  (counts a list, COCO's crowd regions) or compressed RLE (counts a str), rasterised and
  decoded with pycocotools, as COCO's evaluation does (see mrcnn.datasets.raster).
* Classes: category ids need not be contiguous. Class ids 1..K are the categories in
  category id order, or in the order of ``class_names``; ``category_to_class`` and
  ``class_to_category`` hold the mapping both ways (also ``map_source_class_id("coco.<id>")``
  and ``get_source_class_id(class_id, "coco")``), and ``mrcnn.datasets.coco_results``
  writes detections back with the file's category ids.
* ``iscrowd`` annotations become crowd regions: negative class ids, as upstream's COCO
  sample (training excludes them from the positives; evaluation ignores detections on them).
* Images without annotations are kept, with no instances: training uses them as negatives
  only with ``config.TRAIN_ON_EMPTY_IMAGES = True`` (otherwise it skips them, as upstream).
* Keypoints: when the kept categories name "keypoints" (COCO's person_keypoints layout,
  see mrcnn.datasets.coco_keypoints), ``load_keypoints(image_id)`` returns float32
  [N, K, 3] (x, y, v) rows aligned with ``load_mask``'s instances, and ``keypoint_names``,
  ``keypoint_skeleton`` (0-based pairs) and ``keypoint_flip_map`` describe them;
  ``keypoint_settings()`` gives the Config attributes (NUM_KEYPOINTS, KEYPOINT_NAMES,
  KEYPOINT_FLIP_MAP). Without keypoints, ``load_keypoints`` raises NotImplementedError
  (as any Dataset) and ``num_keypoints`` is 0.
* image_info: "id" is the COCO image id, "path" image_dir/file_name; also "file_name",
  "height", "width", "instances".
"""
import os

import numpy as np

from mrcnn.datasets import coco_keypoints, raster
from mrcnn.datasets.base import AnnotationDataset, image_size, read_json_object
from mrcnn.datasets.errors import AnnotationError

__all__ = ["CocoDataset"]


def _read_json(annotation_json):
    """(dict, label for messages, folder for relative image names)."""
    if isinstance(annotation_json, dict):
        return annotation_json, "COCO dict", os.getcwd()
    path = os.fspath(annotation_json)
    data = read_json_object(path, "COCO annotation file")
    return data, path, os.path.dirname(os.path.abspath(path))


def _records(data, key, label, required=True):
    records = data.get(key)
    if records is None and not required:
        return []
    if not isinstance(records, list):
        raise AnnotationError(f"not a COCO annotation file: it needs a list {key!r}", label)
    return records


def _annotation_label(annotation, index, image):
    ann_id = annotation.get("id", f"#{index}")
    name = image.get("file_name") if image else None
    return (f"annotation {ann_id} (image {annotation.get('image_id')!r}"
            + (f" {name!r}" if name else "") + ")")


class CocoDataset(AnnotationDataset):
    """Images and instance masks of a COCO instances JSON (see the module docstring).

    Args:
        annotation_json: path of the JSON file, or the dict itself (e.g. from
            mrcnn.datasets.dataset_to_coco).
        image_dir: folder that images' "file_name" is relative to (default: the JSON
            file's folder; the current directory for a dict). Absolute names are kept.
        class_names: load only these categories (by name), as classes 1..K in this order;
            annotations of other categories are left out.
        image_ids: load only the images with these COCO ids (e.g. a split).
        keep_empty_images: keep images without (loaded) annotations, as negatives.
        boxes_as_masks: an annotation without segmentation (box-only exports) becomes a
            filled box from its "bbox"; by default it is an error.
        check_files: check that every image file exists and read the size of images
            whose record lacks height/width.
    With no arguments, the dataset starts empty: call ``load_annotations`` (any number
    of times) and ``prepare()`` as for a hand-written Dataset.

    Keypoint attributes (None / () / () / 0 when the categories name no keypoints):
        keypoint_names: tuple of the K names of the categories' "keypoints".
        keypoint_skeleton: tuple of (i, j) 0-based index pairs (the file's 1-based
            "skeleton", of all kept categories, each pair once).
        keypoint_flip_map: (left, right) name pairs inferred from the names alone, and
            only from the "left_<part>" / "right_<part>" convention (COCO's person
            keypoints follow it); other pairings are not guessed: give
            config.KEYPOINT_FLIP_MAP yourself.
        num_keypoints: K.

    Raises:
        AnnotationError naming the file and the annotation: polygons with fewer than 3
        points, unknown categories or images, RLE of the wrong size, coordinates far
        outside the image, missing image files, keypoint lists whose length is not 3K
        (or not a multiple of 3), visibilities other than 0/1/2, categories naming
        different keypoints. Shapes slightly outside their image are cut off at the
        border with one AnnotationWarning per file; so are labelled keypoints outside
        their image (they become unlabelled).
    """

    SOURCE = "coco"

    def __init__(self, annotation_json=None, image_dir=None, class_names=None, image_ids=None,
                 keep_empty_images=True, boxes_as_masks=False, check_files=True):
        super().__init__()
        self.keypoint_names = None
        self.keypoint_skeleton = ()
        if annotation_json is not None:
            self.load_annotations(annotation_json, image_dir, class_names, image_ids,
                                  keep_empty_images, boxes_as_masks, check_files)
            self.prepare()

    # ------------------------------------------------------------------ mapping
    @property
    def class_to_category(self):
        """{internal class id: COCO category id}."""
        return {i: info["id"] for i, info in enumerate(self.class_info)
                if info["source"] == self.SOURCE}

    @property
    def category_to_class(self):
        """{COCO category id: internal class id}."""
        return {category: i for i, category in self.class_to_category.items()}

    # ------------------------------------------------------------------ keypoints
    @property
    def num_keypoints(self):
        """K, the number of keypoints per instance (0 without keypoints)."""
        return len(self.keypoint_names) if self.keypoint_names else 0

    @property
    def keypoint_flip_map(self):
        """(left, right) pairs of "left_<part>" / "right_<part>" names (see the class)."""
        return coco_keypoints.flip_map_from_names(self.keypoint_names)

    def keypoint_settings(self):
        """{"NUM_KEYPOINTS", "KEYPOINT_NAMES", "KEYPOINT_FLIP_MAP"}: the Config attributes
        of these keypoints (NUM_KEYPOINTS 0 and nothing else without keypoints)::

            for name, value in dataset.keypoint_settings().items():
                setattr(config, name, value)
        """
        if not self.num_keypoints:
            return {"NUM_KEYPOINTS": 0}
        return {"NUM_KEYPOINTS": self.num_keypoints,
                "KEYPOINT_NAMES": tuple(self.keypoint_names),
                "KEYPOINT_FLIP_MAP": self.keypoint_flip_map}

    def load_keypoints(self, image_id):
        """Keypoints of an image's instances, rows aligned with :meth:`load_mask`.

        Returns:
            float32 [N, K, 3] (x, y, v), pixel indices of the image (COCO's frame, see
            mrcnn.keypoints). Instances that load_mask leaves out (shapes covering no
            pixel) are left out here too; crowd regions, instances of categories
            without keypoints and annotations without a "keypoints" list give
            unlabelled rows (0, 0, 0).
        Raises:
            NotImplementedError when the dataset has no keypoints (as any Dataset).
        """
        info = self.image_info[image_id]
        if info["source"] != self.SOURCE or not self.num_keypoints:
            return super().load_keypoints(image_id)
        height, width = int(info["height"]), int(info["width"])
        k = self.num_keypoints
        rows = [instance.get("keypoints") if instance.get("keypoints") is not None
                and not instance.get("crowd") else np.zeros([k, 3], dtype=np.float32)
                for instance in info["instances"] if _covers_pixels(instance, height, width)]
        if not rows:
            return np.zeros([0, k, 3], dtype=np.float32)
        return np.stack(rows).astype(np.float32)

    # ------------------------------------------------------------------ loading
    def load_annotations(self, annotation_json, image_dir=None, class_names=None,
                         image_ids=None, keep_empty_images=True, boxes_as_masks=False,
                         check_files=True):
        """Register the categories and images of a COCO JSON (arguments: see the class)."""
        data, label, folder = _read_json(annotation_json)
        image_dir = folder if image_dir is None else os.fspath(image_dir)
        categories = self._load_categories(data, label, class_names)
        keypoint_counts = self._load_keypoint_categories(data, label, categories)
        images = self._select_images(data, label, image_ids)
        annotations = self._group_annotations(data, label, images, categories)
        report = self._outside_report(label)
        keypoint_report = coco_keypoints.KeypointReport(label)
        for image_id, image in images.items():
            path = os.path.join(image_dir, str(image.get("file_name", "")))
            height, width = self._image_shape(image, path, label, check_files)
            instances = [self._instance(annotation, index, image, height, width, label,
                                        boxes_as_masks, report)
                         for index, annotation in annotations.get(image_id, [])]
            for instance, (index, annotation) in zip(instances,
                                                     annotations.get(image_id, [])):
                instance["keypoints"] = self._instance_keypoints(
                    annotation, keypoint_counts, _annotation_label(annotation, index, image),
                    height, width, label, keypoint_report)
            if not instances and not keep_empty_images:
                continue
            self.add_image(self.SOURCE, image_id=image_id, path=path,
                           file_name=image.get("file_name"), height=height, width=width,
                           instances=instances, annotation_file=label)
        report.warn()
        keypoint_report.warn()

    def _load_categories(self, data, label, class_names):
        """Register the classes; returns {category id: kept (bool)}."""
        records = _records(data, "categories", label, required=bool(data.get("annotations")))
        by_id = {}
        for record in records:
            if not isinstance(record, dict) or "id" not in record or "name" not in record:
                raise AnnotationError(f"a category needs 'id' and 'name': {record!r:.80}", label)
            if record["id"] in by_id:
                raise AnnotationError(f"category id {record['id']!r} appears twice", label)
            by_id[record["id"]] = str(record["name"])
        if class_names is None:
            chosen = sorted(by_id)
        else:
            by_name = {}
            for category, name in by_id.items():
                by_name.setdefault(name, []).append(category)
            chosen = []
            for name in class_names:
                if name not in by_name:
                    raise AnnotationError(f"class {name!r} is not a category of the file; "
                                          f"categories: {sorted(by_name)}", label)
                if len(by_name[name]) > 1:
                    raise AnnotationError(f"class {name!r} names categories "
                                          f"{by_name[name]}; names must be unique", label)
                chosen.append(by_name[name][0])
        for category in chosen:
            self._add_category(category, by_id[category], label)
        kept = set(chosen)
        return {category: category in kept for category in by_id}

    def _load_keypoint_categories(self, data, label, categories):
        """Read the kept categories' "keypoints" and "skeleton" into keypoint_names and
        keypoint_skeleton; returns {category id: K} of the kept categories naming some."""
        counts, skeleton = {}, list(self.keypoint_skeleton)
        for record in _records(data, "categories", label, required=False):
            if not categories.get(record["id"]):
                continue
            found = coco_keypoints.category_keypoints(record, label)
            if found is None:
                continue
            names, pairs = found
            self.keypoint_names = coco_keypoints.merge_keypoint_names(
                self.keypoint_names, names, label,
                f"category {record['id']!r} ({record['name']!r})")
            skeleton.extend(pair for pair in pairs if pair not in skeleton)
            counts[record["id"]] = len(names)
        self.keypoint_skeleton = tuple(skeleton)
        return counts

    @staticmethod
    def _instance_keypoints(annotation, keypoint_counts, where, height, width, label,
                            report):
        """float32 [K, 3] of an annotation (None without keypoints), checked and with
        points outside the image unlabelled."""
        category = annotation.get("category_id")
        if category not in keypoint_counts:
            if annotation.get("keypoints"):
                report.ignore(where)
            return None
        points = coco_keypoints.annotation_keypoints(annotation, keypoint_counts[category],
                                                     label, where)
        if points is None:
            return None
        return report.clip_outside(points, height, width, where)

    def _add_category(self, category, name, label):
        for info in self.class_info:
            if info["source"] == self.SOURCE and info["id"] == category:
                if info["name"] != name:
                    raise AnnotationError(
                        f"category {category} is {name!r} here but {info['name']!r} in "
                        f"files loaded before", label)
                return
        self.add_class(self.SOURCE, category, name)

    @staticmethod
    def _select_images(data, label, image_ids):
        images = {}
        for record in _records(data, "images", label):
            if not isinstance(record, dict) or "id" not in record:
                raise AnnotationError(f"an image needs an 'id': {record!r:.80}", label)
            if record["id"] in images:
                raise AnnotationError(f"image id {record['id']!r} appears twice", label)
            images[record["id"]] = record
        if image_ids is None:
            return images
        unknown = [i for i in image_ids if i not in images]
        if unknown:
            raise AnnotationError(f"image ids {unknown[:10]} are not in the file", label)
        return {i: images[i] for i in image_ids}

    @staticmethod
    def _group_annotations(data, label, images, categories):
        """{image id: [(index, annotation), ...]} of the kept categories and images."""
        all_ids = {record.get("id") for record in data.get("images", [])
                   if isinstance(record, dict)}
        grouped = {}
        for index, annotation in enumerate(_records(data, "annotations", label, False)):
            if not isinstance(annotation, dict):
                raise AnnotationError(f"annotation #{index} is not an object", label)
            image_id = annotation.get("image_id")
            where = _annotation_label(annotation, index, images.get(image_id))
            if image_id not in all_ids:
                raise AnnotationError(f"unknown image id {image_id!r}", label, where)
            category = annotation.get("category_id")
            if category not in categories:
                raise AnnotationError(f"unknown category id {category!r}; the file's "
                                      f"categories are {sorted(categories)}", label, where)
            if categories[category] and image_id in images:
                grouped.setdefault(image_id, []).append((index, annotation))
        return grouped

    @staticmethod
    def _image_shape(image, path, label, check_files):
        where = f"image {image.get('id')!r} {image.get('file_name')!r}"
        if "file_name" not in image:
            raise AnnotationError("the image record has no 'file_name'", label, where)
        if check_files and not os.path.isfile(path):
            raise AnnotationError(f"the image file {path!r} does not exist", label, where)
        if "height" in image and "width" in image:
            return int(image["height"]), int(image["width"])
        if not check_files:
            raise AnnotationError("the image record has no height/width (pass "
                                  "check_files=True to read them from the file)", label, where)
        return image_size(path, label, where)

    def _instance(self, annotation, index, image, height, width, label, boxes_as_masks,
                  report):
        where = _annotation_label(annotation, index, image)
        segmentation = annotation.get("segmentation")
        if isinstance(segmentation, list) and segmentation:
            shapes = [raster.polygon_shape(polygon, label, where, what=f"polygon {k}")
                      for k, polygon in enumerate(segmentation)]
        elif isinstance(segmentation, dict):
            shapes = [raster.rle_shape(segmentation, height, width, label, where)]
        elif segmentation in (None, []) and boxes_as_masks and annotation.get("bbox"):
            x, y, w, h = annotation["bbox"]
            shapes = [raster.box_shape(x, y, x + w, y + h, label, where, what="the bbox")]
        elif segmentation in (None, []):
            raise AnnotationError("no segmentation (a box-only annotation); pass "
                                  "boxes_as_masks=True to use its bbox as the mask",
                                  label, where)
        else:
            raise AnnotationError(f"segmentation is neither polygons nor RLE: "
                                  f"{segmentation!r:.80}", label, where)
        self._check_shapes(report, shapes, height, width, where)
        return {"class": annotation["category_id"], "crowd": bool(annotation.get("iscrowd")),
                "shapes": shapes, "annotation_id": annotation.get("id")}


def _covers_pixels(instance, height, width):
    """Whether load_mask keeps the instance (its shapes cover a pixel); cached in the
    instance record, so each instance is rasterised for this once."""
    covers = instance.get("covers_pixels")
    if covers is None:
        covers = bool(raster.instance_mask(instance["shapes"], height, width).any())
        instance["covers_pixels"] = covers
    return covers

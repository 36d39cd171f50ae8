"""Dataset: the registry of classes and images that training and evaluation read from.

Subclass :class:`Dataset` for your own annotations, exactly as with matterport/Mask_RCNN::

    class BalloonDataset(Dataset):
        def load_balloons(self, dataset_dir, subset):
            self.add_class("balloon", 1, "balloon")
            for record in ...:
                self.add_image("balloon", image_id=record["filename"], path=...,
                               width=w, height=h, polygons=...)

        def load_mask(self, image_id):
            ...
            return mask, class_ids          # bool [H, W, N], int32 [N]

    train = BalloonDataset()
    train.load_balloons(root, "train")
    train.prepare()

Two kinds of id are involved:

* *internal* ids are what the model sees: classes are numbered 0..num_classes-1 (0 is always the
  background, "BG") and images 0..num_images-1 in the order they were added;
* *source* ids are the ids a class or image has in its original data set ("coco" class 12,
  image "IMG_0042.jpg"). A class is named globally by the string "source.id", e.g. "coco.12".
"""
import logging
import operator
import warnings

import numpy as np
import skimage.color
import skimage.io
import skimage.util

logger = logging.getLogger(__name__)

__all__ = ["Dataset"]


class Dataset:
    """Base class for a data set of images with instance masks.

    Attributes:
        class_info: list of dicts {"source", "id", "name"}; index = internal class id.
            Index 0 is the background {"source": "", "id": 0, "name": "BG"}.
        image_info: list of dicts {"id", "source", "path", **extra}; index = internal image id.
            ``extra`` holds whatever keyword arguments were given to :meth:`add_image`.
        source_class_ids: after :meth:`prepare`, dict source -> list of the internal class ids
            that belong to that source (the background id 0 is included in every source).

    Attributes set by :meth:`prepare`: ``num_classes``, ``class_ids`` (int array [num_classes]),
    ``class_names`` (list of str), ``num_images``, ``image_ids`` (int array [num_images]),
    ``class_from_source_map`` ("source.id" -> internal class id), ``image_from_source_map``
    ("source.id" -> internal image id) and ``sources`` (list of source names).
    """

    def __init__(self, class_map=None):
        # ``class_map`` is accepted for compatibility and unused, as in the original API.
        self._image_ids = []
        self.image_info = []
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}

    # ------------------------------------------------------------------ registration
    def add_class(self, source, class_id, class_name):
        """Registers class ``class_id`` of ``source`` under ``class_name``.

        ``source`` must not contain "." (it is the separator of "source.id" keys). Adding a
        (source, class_id) pair that is already registered does nothing.
        """
        if "." in source:
            raise ValueError(f"Source name cannot contain a dot: {source!r}")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        """Registers an image.

        Args:
            source: name of the data set the image comes from, e.g. "coco".
            image_id: the image's id in that source (any hashable value, e.g. a file name).
            path: where :meth:`load_image` reads it (file path or URL); may be None for
                images that a subclass renders itself.
            **kwargs: stored in the image's ``image_info`` dict (annotations, width, height, ...).
        """
        info = {"id": image_id, "source": source, "path": path}
        info.update(kwargs)
        self.image_info.append(info)

    def image_reference(self, image_id):
        """Returns a link to the image in its source (a URL, a path or a spec).

        Override it in a subclass; the default returns "".
        """
        return ""

    # ------------------------------------------------------------------ preparation
    def prepare(self, class_map=None):
        """Builds the lookup tables. Call it after adding classes and images, before use.

        ``class_map`` is accepted for compatibility and unused, as in the original API.
        """

        def clean_name(name):
            """First part of a comma-separated name: "person, human" -> "person"."""
            return ",".join(name.split(",")[:1])

        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)

        self.class_from_source_map = {
            "{}.{}".format(info["source"], info["id"]): internal_id
            for internal_id, info in enumerate(self.class_info)}
        self.image_from_source_map = {
            "{}.{}".format(info["source"], info["id"]): internal_id
            for internal_id, info in enumerate(self.image_info)}

        # Sources in order of first appearance (the background's "" source comes first).
        self.sources = list(dict.fromkeys(c["source"] for c in self.class_info))
        self.source_class_ids = {}
        for source in self.sources:
            self.source_class_ids[source] = [
                i for i, info in enumerate(self.class_info)
                if i == 0 or info["source"] == source]

    def map_source_class_id(self, source_class_id):
        """Internal class id of a "source.id" string, e.g. "coco.12" -> 23."""
        try:
            return self.class_from_source_map[source_class_id]
        except AttributeError:
            raise RuntimeError("Call prepare() before map_source_class_id().") from None
        except KeyError:
            raise KeyError(
                f"Unknown source class {source_class_id!r}; expected a 'source.id' string "
                f"among {sorted(self.class_from_source_map)[:20]}") from None

    def get_source_class_id(self, class_id, source):
        """Id in ``source`` of internal class ``class_id``; the class must belong to ``source``."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(
                f"Class {class_id} ({info['name']!r}) belongs to source {info['source']!r}, "
                f"not {source!r}")
        return info["id"]

    @property
    def image_ids(self):
        """Internal image ids, int array [num_images] (empty until :meth:`prepare`)."""
        return self._image_ids

    def _info(self, image_id):
        """The ``image_info`` dict of internal image id ``image_id``, with a clear error."""
        try:
            index = operator.index(image_id)
        except TypeError:
            raise TypeError(
                f"Image ids are the integers 0..{len(self.image_info) - 1}; got {image_id!r}. "
                "Use image_from_source_map to find the internal id of a source id.") from None
        if not 0 <= index < len(self.image_info):
            raise IndexError(
                f"Unknown image id {image_id}: the dataset has {len(self.image_info)} images "
                f"(ids 0..{len(self.image_info) - 1}).")
        return self.image_info[index]

    def source_image_link(self, image_id):
        """Path or URL of the image (its ``path``), so it can be found in its source."""
        return self._info(image_id)["path"]

    # ------------------------------------------------------------------ loading
    def load_image(self, image_id):
        """Reads the image file of ``image_id``.

        Returns:
            uint8 array [H, W, 3], RGB. Greyscale images are repeated over three channels
            and an alpha channel (of RGBA or grey + alpha images) is dropped; other bit depths are rescaled to 0..255.

        Raises:
            IndexError: ``image_id`` is not an image of this dataset.
            OSError: the file cannot be read (the message names the image id and the path).
        """
        path = self._info(image_id)["path"]
        try:
            image = skimage.io.imread(path)
        except Exception as err:  # noqa: BLE001 - readers raise many types; report one.
            raise OSError(f"Cannot read image {image_id} from {path!r}: {err}") from err
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[-1] in (1, 2):  # grey, or grey + alpha
            image = image[..., 0]
        if image.ndim == 2:
            image = skimage.color.gray2rgb(image)
        if image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise OSError(f"Image {image_id} at {path!r} has unsupported shape {image.shape}; "
                          "expected [H, W], [H, W, 3] or [H, W, 4].")
        image = image[..., :3]
        if image.dtype != np.uint8:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # precision loss is intended here
                image = skimage.util.img_as_ubyte(image)
        return np.ascontiguousarray(image)

    def load_mask(self, image_id):
        """Instance masks of ``image_id``. Override it in a subclass.

        Returns:
            masks: bool array [H, W, N], one channel per instance.
            class_ids: int32 array [N], the internal class id of each instance.

        The default returns no instances (a bool [0, 0, 0] array and an empty int32 array)
        and logs a warning.
        """
        logger.warning("You are using the default load_mask(), maybe you need to define your own one.")
        mask = np.empty([0, 0, 0], dtype=bool)
        class_ids = np.empty([0], dtype=np.int32)
        return mask, class_ids

    def load_keypoints(self, image_id):
        """Keypoints of the instances of ``image_id``. Override it for a keypoint model.

        Returns:
            float32 array [N, K, 3], rows aligned with :meth:`load_mask`'s instances:
            (x, y, v) per keypoint, x the column and y the row of the image's pixel
            index frame (integer x is the centre of pixel column x, as COCO and
            matplotlib's imshow); v = 0 not labelled, 1 labelled but occluded,
            2 visible (COCO's convention). Rows of unlabelled keypoints may hold any
            coordinates; they are ignored.

        Needed when ``config.NUM_KEYPOINTS > 0``; the default raises NotImplementedError.
        """
        raise NotImplementedError(
            f"{type(self).__name__}.load_keypoints is not implemented: a model with "
            f"NUM_KEYPOINTS > 0 needs load_keypoints(image_id) -> float32 [N, K, 3] "
            f"(x, y, visibility), rows aligned with load_mask's instances")

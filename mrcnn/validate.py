"""Checks of what a Dataset returns, with errors that name the image.

Training reads ``dataset.load_image(image_id)`` and ``dataset.load_mask(image_id)``, which
users override. This module checks their results, converts the unambiguous variants and
rejects the rest with a :class:`DatasetError` that names the image id, its source, its id
in the source and its path::

    DatasetError: image 12 (source 'balloon', id 'a.jpg', path '/data/a.jpg'): masks are
    480x640x2 but the image is 960x1280; load_mask must return [H, W, N] masks of the
    image's height and width

What is accepted (and converted) and what is rejected:

* image, with IMAGE_CHANNEL_COUNT = 3: uint8 [H, W, 3] as is; grey [H, W] or [H, W, 1]
  is repeated over three channels; grey + alpha [H, W, 2] and RGBA [H, W, 4] lose their
  alpha channel. With another channel count the image must have exactly that many.
* image dtype: uint8 as is. uint16 is scaled to 0..255 (value // 256), as
  ``Dataset.load_image`` does for 16-bit files (12-bit data comes out dark: stretch it
  in ``load_image``). Floats in [0, 1] are multiplied by
  255, floats in [0, 255] (largest value above 1) are taken as they are, both rounded.
  Other integer types are accepted when every value lies in 0..255. Each conversion is
  reported once per dataset class with a :class:`DataConversionWarning`. Rejected:
  bool images, NaN or infinite values, negative values, floats above 255, integers
  outside 0..255, empty images.
* masks: [H, W, N] with the image's H and W. bool as is; integer or float masks whose
  values are all 0 or 1 become bool. Any other value (e.g. 0/255 masks, or a label
  image holding instance numbers) is rejected. An image without instances may return
  masks of any shape with N = 0 (the default ``load_mask`` returns [0, 0, 0]).
* class ids: N integers (one per mask), each in 1..num_classes-1, or negative (a crowd
  region, upstream's COCO convention) with its absolute value in that range. 0 (the
  background) and ids beyond the dataset's classes are rejected.
* keypoints (models with NUM_KEYPOINTS > 0): ``load_keypoints`` returns [N, K, 3]
  (x, y, v) with N the number of masks and K = NUM_KEYPOINTS, integer or float values
  (converted to float32). v must be 0, 1 or 2. Labelled points (v > 0) must be finite
  and lie in the image, pixel centres from 0 to W - 1 (H - 1), up to
  KEYPOINT_TOLERANCE pixels beyond; points within that tolerance are clamped onto
  the image. Unlabelled points (v = 0) become (0, 0, 0).

A file that cannot be read, or any exception raised by ``load_image``/``load_mask``,
becomes a DatasetError too (the original exception is chained).
"""
import threading
import warnings

import numpy as np

from mrcnn import utils

__all__ = ["DatasetError", "DataConversionWarning", "BadImageWarning", "describe_image",
           "check_image", "check_molded_size", "check_masks", "load_checked",
           "check_keypoints", "load_checked_keypoints", "KEYPOINT_TOLERANCE",
           "validate_dataset", "check_num_classes", "BadImageLog", "BAD_IMAGE_POLICIES"]

BAD_IMAGE_POLICIES = ("raise", "skip")

# Pixels a labelled keypoint may lie beyond the image's outer pixel centres (annotation
# tools often put edge points on the border line, x = W); such points are clamped.
KEYPOINT_TOLERANCE = 1.0


class DatasetError(ValueError):
    """What a Dataset returned for one image is unusable.

    Attributes:
        problem: what is wrong, without the image's description.
        image_id: internal image id (None when the check ran without a dataset).
        source, source_id, path: the image's ``image_info`` entries (None if unknown).
    """

    def __init__(self, problem, image_id=None, source=None, source_id=None, path=None,
                 description=None):
        self.problem = problem
        self.image_id = image_id
        self.source = source
        self.source_id = source_id
        self.path = path
        self.description = description
        super().__init__(f"{description}: {problem}" if description else problem)

    def __reduce__(self):  # keep the attributes when pickled (worker processes)
        return (self.__class__, (self.problem, self.image_id, self.source, self.source_id,
                                 self.path, self.description))

    def for_image(self, dataset, image_id):
        """A copy of this error that names ``image_id`` of ``dataset``."""
        info = _image_info(dataset, image_id)
        return DatasetError(self.problem, image_id=int(image_id), source=info.get("source"),
                            source_id=info.get("id"), path=info.get("path"),
                            description=describe_image(dataset, image_id))


class DataConversionWarning(UserWarning):
    """A Dataset returned data that was converted (e.g. a uint16 or float image)."""


class BadImageWarning(UserWarning):
    """An image was skipped during training (BAD_IMAGE_POLICY = "skip")."""


############################################################
#  Naming an image
############################################################

def _image_info(dataset, image_id):
    try:
        return dict(dataset.image_info[int(image_id)])
    except Exception:  # noqa: BLE001 - describing an image must never fail
        return {}


def describe_image(dataset, image_id):
    """"image 12 (source 'balloon', id 'a.jpg', path '/data/a.jpg')": what errors print.

    Entries that are missing (or a None path) are left out.
    """
    info = _image_info(dataset, image_id)
    parts = []
    if info.get("source") is not None:
        parts.append(f"source {info['source']!r}")
    if info.get("id") is not None:
        parts.append(f"id {info['id']!r}")
    if info.get("path"):
        parts.append(f"path {str(info['path'])!r}")
    return f"image {image_id}" + (f" ({', '.join(parts)})" if parts else "")


############################################################
#  Conversion warnings, once per dataset class and kind
############################################################

_WARNED = set()
_WARNED_LOCK = threading.Lock()


def _warn_once(dataset, kind, message):
    key = (type(dataset).__qualname__, kind)
    with _WARNED_LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    warnings.warn(message + " (reported once per dataset class)", DataConversionWarning,
                  stacklevel=3)


############################################################
#  Images
############################################################

def _shape_text(shape):
    return "x".join(str(int(s)) for s in shape)


def convert_channels(image, channels):
    """An image with `channels` channels, and a note on any conversion.

    image: [H, W] or [H, W, C] array of any dtype (left unchanged).
    channels: config.IMAGE_CHANNEL_COUNT. For 3, grey [H, W] or [H, W, 1] is repeated
        to RGB and the alpha of grey + alpha [H, W, 2] or RGBA [H, W, 4] is dropped;
        other counts must already match.
    Returns:
        (image [H, W, channels], note or None).
    Raises:
        DatasetError (a ValueError) for any other shape.
    """
    if channels != 3:
        if image.ndim == 2 and channels == 1:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] != channels:
            raise DatasetError(
                f"the image is {_shape_text(image.shape)} but IMAGE_CHANNEL_COUNT is "
                f"{channels}: images must be [H, W, {channels}]")
        return image, None
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2), "grey image converted to RGB"
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise DatasetError(
            f"the image is {_shape_text(image.shape)}; images must be RGB [H, W, 3] "
            f"(grey [H, W], grey + alpha [H, W, 2] and RGBA [H, W, 4] are converted)")
    count = image.shape[2]
    if count == 3:
        return image, None
    if count == 4:
        return image[:, :, :3], "RGBA image: alpha channel dropped"
    note = "grey image converted to RGB" if count == 1 else \
        "grey + alpha image: alpha dropped, grey converted to RGB"
    return np.repeat(image[:, :, :1], 3, axis=2), note


def _float_to_uint8(image):
    if not np.all(np.isfinite(image)):
        raise DatasetError("the image holds NaN or infinite values")
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 255:
        raise DatasetError(
            f"the float image has values in [{low:g}, {high:g}]; expected [0, 1] or "
            f"[0, 255] (or return a uint8 image)")
    if high <= 1:
        return np.rint(image * 255).astype(np.uint8), \
            f"float image in [0, 1] scaled to uint8 ({image.dtype})"
    return np.rint(image).astype(np.uint8), f"float image in [0, 255] cast to uint8 ({image.dtype})"


def _to_uint8(image):
    """(uint8 image, conversion note or None); raises DatasetError for other values."""
    dtype = image.dtype
    if dtype == np.uint8:
        return image, None
    if dtype == np.bool_:
        raise DatasetError("the image is boolean; load_image must return a uint8 image")
    if dtype == np.uint16:
        return (image >> 8).astype(np.uint8), \
            "uint16 image scaled to uint8 (value // 256, as Dataset.load_image does): " \
            "stretch images that use fewer than 16 bits in load_image if they look dark"
    if np.issubdtype(dtype, np.floating):
        return _float_to_uint8(image)
    if np.issubdtype(dtype, np.integer):
        low, high = int(image.min()), int(image.max())
        if low < 0 or high > 255:
            raise DatasetError(
                f"the {dtype} image has values in [{low}, {high}]; expected uint8 values "
                f"0..255 (uint16 images are scaled)")
        return image.astype(np.uint8), f"{dtype} image with values 0..255 cast to uint8"
    raise DatasetError(f"the image has dtype {dtype}; load_image must return uint8")


def check_image(image, channels=3):
    """Check and convert one image.

    image: what ``load_image`` returned. channels: config.IMAGE_CHANNEL_COUNT.

    Returns:
        (image uint8 [H, W, channels] C-contiguous, list of conversion notes).
    Raises:
        DatasetError (without the image's description; see :func:`load_checked`).
    """
    if not isinstance(image, np.ndarray):
        raise DatasetError(f"load_image returned a {type(image).__name__}, not a numpy "
                           f"array")
    if image.ndim not in (2, 3) or image.size == 0:
        raise DatasetError(f"the image is {_shape_text(image.shape)}; load_image must "
                           f"return a non-empty [H, W, 3] array")
    image, channel_note = convert_channels(image, channels)
    image, dtype_note = _to_uint8(image)
    notes = [note for note in (channel_note, dtype_note) if note]
    return np.ascontiguousarray(image), notes


def check_molded_size(molded_shape, config, label="image"):
    """Raise ValueError when the feature pyramid cannot take a molded image's size.

    The FPN adds each upsampled level (x2) to the level below it, so the sizes of the
    backbone's levels C2..C5 (``utils.compute_backbone_shapes``: ceil(side / stride))
    must halve exactly; P6 is a subsample of P5 and joins no addition. Sides that are
    multiples of 64 (what "square", "crop" and "pad64" give for a valid config) and of
    32 always pass; e.g. 100 does not (levels 25, 13, 7, 4). "none" (IMAGE_RESIZE_MODE)
    keeps each image's own size, so it needs this check per image before the graph.

    molded_shape: (h, w, ...) of an image after ``utils.resize_image`` with the config's
        settings. config: a Config. label: names the image in the message.
    """
    shapes = np.asarray(utils.compute_backbone_shapes(config, molded_shape))[:-1]
    if np.array_equal(shapes[:-1], 2 * shapes[1:]):
        return
    height, width = int(molded_shape[0]), int(molded_shape[1])
    levels = ", ".join(f"{h}x{w}" for h, w in shapes)
    raise ValueError(
        f"{label} is {height}x{width} pixels after resizing (IMAGE_RESIZE_MODE "
        f"{config.IMAGE_RESIZE_MODE!r}); its pyramid levels would be {levels}, which do not "
        f"halve exactly, so the feature pyramid cannot merge them: use IMAGE_RESIZE_MODE "
        f"'pad64' (pads each side to a multiple of 64) or 'square', or give images whose "
        f"sides are multiples of 64")


############################################################
#  Masks and class ids
############################################################

def _masks_to_bool(masks):
    if masks.dtype == np.bool_:
        return masks
    if not (np.issubdtype(masks.dtype, np.integer) or np.issubdtype(masks.dtype, np.floating)):
        raise DatasetError(f"the masks have dtype {masks.dtype}; load_mask must return bool "
                           f"masks")
    ones = masks == 1
    if not np.all(ones | (masks == 0)):
        values = np.unique(masks)
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        hint = " (for 0/255 masks use `mask > 0`)" if values.max() == 255 else \
            " (a label image must be split into one channel per instance)"
        raise DatasetError(
            f"the {masks.dtype} masks hold the values {shown}; masks must be bool, or "
            f"0/1 integers{hint}")
    return ones


def _class_ids_to_int(class_ids, count):
    """int32 [count] from what load_mask returned as class ids."""
    ids = np.asarray(class_ids)
    if ids.ndim != 1 or ids.shape[0] != count:
        raise DatasetError(
            f"load_mask returned {count} masks but class ids of shape {tuple(ids.shape)}; "
            f"give one class id per mask: int32 [{count}]")
    if count == 0:
        return np.zeros([0], dtype=np.int32)
    if ids.dtype == np.bool_ or not (np.issubdtype(ids.dtype, np.integer)
                                     or np.issubdtype(ids.dtype, np.floating)):
        raise DatasetError(f"the class ids have dtype {ids.dtype}; expected integers")
    if np.issubdtype(ids.dtype, np.floating) and not np.all(np.isfinite(ids)
                                                           & (ids == np.round(ids))):
        raise DatasetError(f"the class ids {ids.tolist()} are not integers")
    return ids.astype(np.int32)


def check_masks(masks, class_ids, image_shape, num_classes):
    """Check and convert the masks and class ids of one image.

    Args:
        masks, class_ids: what ``load_mask`` returned.
        image_shape: (H, W, ...) of the image they belong to (before any resizing).
        num_classes: dataset.num_classes (background included).

    Returns:
        (bool [H, W, N], int32 [N]).
    Raises:
        DatasetError (without the image's description; see :func:`load_checked`).
    """
    if not isinstance(masks, np.ndarray):
        raise DatasetError(f"load_mask returned masks of type {type(masks).__name__}, not a "
                           f"numpy array")
    height, width = int(image_shape[0]), int(image_shape[1])
    if masks.ndim == 3 and masks.shape[2] == 0:
        return np.zeros([height, width, 0], dtype=bool), _class_ids_to_int(class_ids, 0)
    if masks.ndim != 3:
        raise DatasetError(
            f"the masks are {_shape_text(masks.shape)}; load_mask must return [H, W, N] "
            f"masks, one channel per instance (use mask[..., None] for a single instance)")
    if masks.shape[:2] != (height, width):
        raise DatasetError(
            f"masks are {_shape_text(masks.shape)} but the image is "
            f"{_shape_text((height, width))}; load_mask must return [H, W, N] masks of the "
            f"image's height and width")
    ids = _class_ids_to_int(class_ids, masks.shape[2])
    bad = (ids == 0) | (np.abs(ids) >= num_classes)
    if bad.any():
        wrong = sorted(set(ids[bad].tolist()))
        raise DatasetError(
            f"class ids {wrong} are not classes of the dataset: ids must lie in "
            f"1..{num_classes - 1} (0 is the background; negative ids mark crowd regions)")
    return _masks_to_bool(masks), ids


############################################################
#  Keypoints
############################################################

def _keypoints_to_float(keypoints):
    """float32 copy of a numeric keypoint array; DatasetError for other dtypes."""
    if keypoints.dtype == np.bool_ or not (np.issubdtype(keypoints.dtype, np.integer)
                                           or np.issubdtype(keypoints.dtype, np.floating)):
        raise DatasetError(f"the keypoints have dtype {keypoints.dtype}; load_keypoints "
                           f"must return float32 [N, K, 3] (x, y, visibility)")
    return keypoints.astype(np.float32)


def check_keypoints(keypoints, num_instances, image_shape, num_keypoints=None,
                    tolerance=KEYPOINT_TOLERANCE):
    """Check and convert the keypoints of one image.

    Args:
        keypoints: what ``load_keypoints`` returned.
        num_instances: N, the number of masks ``load_mask`` returned.
        image_shape: (H, W, ...) of the image (before any resizing).
        num_keypoints: K expected (config.NUM_KEYPOINTS), or None to accept any K.
        tolerance: pixels a labelled point may lie beyond the outer pixel centres.

    Returns:
        float32 [N, K, 3] (x, y, v) in the image's pixel-index frame; labelled points
        clamped to [0, W - 1] x [0, H - 1], unlabelled points (0, 0, 0).
    Raises:
        DatasetError (without the image's description; see :func:`load_checked_keypoints`).
    """
    if not isinstance(keypoints, np.ndarray):
        raise DatasetError(f"load_keypoints returned a {type(keypoints).__name__}, not a "
                           f"numpy array")
    k_text = "K" if num_keypoints is None else str(int(num_keypoints))
    if keypoints.size == 0 and num_instances == 0:
        k = int(num_keypoints) if num_keypoints is not None else (
            keypoints.shape[1] if keypoints.ndim == 3 else 0)
        return np.zeros([0, k, 3], dtype=np.float32)
    if keypoints.ndim != 3 or keypoints.shape[2] != 3:
        raise DatasetError(
            f"the keypoints are {_shape_text(keypoints.shape)}; load_keypoints must return "
            f"[N, {k_text}, 3] arrays of (x, y, visibility)")
    if keypoints.shape[0] != num_instances:
        raise DatasetError(
            f"load_keypoints returned keypoints for {keypoints.shape[0]} instances but "
            f"load_mask returned {num_instances} masks; their rows must be aligned")
    if num_keypoints is not None and keypoints.shape[1] != num_keypoints:
        raise DatasetError(
            f"the keypoints are {_shape_text(keypoints.shape)}: {keypoints.shape[1]} "
            f"keypoints per instance, but NUM_KEYPOINTS is {num_keypoints}")
    keypoints = _keypoints_to_float(keypoints)
    visibility = keypoints[..., 2]
    bad = ~np.isin(visibility, (0, 1, 2))
    if bad.any():
        values = sorted(set(np.asarray(visibility[bad], dtype=np.float64).tolist()))[:6]
        raise DatasetError(
            f"keypoint visibilities {values} are not 0 (not labelled), 1 (occluded) or "
            f"2 (visible)")
    labelled = visibility > 0
    xy = keypoints[..., :2]
    if not np.all(np.isfinite(xy[labelled])):
        raise DatasetError("labelled keypoints (visibility 1 or 2) hold NaN or infinite "
                           "coordinates")
    height, width = int(image_shape[0]), int(image_shape[1])
    limits = np.array([width - 1, height - 1], dtype=np.float32)
    outside = labelled[..., None] & ((xy < -tolerance) | (xy > limits + tolerance))
    if outside.any():
        instance, point = (int(i) for i in np.argwhere(outside.any(axis=-1))[0])
        x, y = (float(v) for v in keypoints[instance, point, :2])
        raise DatasetError(
            f"keypoint {point} of instance {instance} at (x={x:g}, y={y:g}) lies outside "
            f"the {width}x{height} image (pixel centres x 0..{width - 1}, y 0..{height - 1}, "
            f"(x, y) = (column, row)); {int(outside.any(axis=-1).sum())} labelled keypoint(s) "
            f"are outside")
    keypoints[..., :2] = np.where(labelled[..., None], np.clip(xy, 0, limits), 0)
    return keypoints


def load_checked_keypoints(dataset, image_id, image_shape, num_instances,
                           num_keypoints=None):
    """``dataset.load_keypoints(image_id)``, checked by :func:`check_keypoints`.

    Returns:
        float32 [N, K, 3] (x, y, v), pixel-index frame of the image.
    Raises:
        DatasetError naming the image; a NotImplementedError of the dataset becomes one.
    """
    try:
        keypoints = _call("load_keypoints", dataset.load_keypoints, image_id)
        return check_keypoints(keypoints, num_instances, image_shape, num_keypoints)
    except DatasetError as error:
        raise error.for_image(dataset, image_id) from error.__cause__


############################################################
#  Loading one image through the Dataset
############################################################

def _call(what, function, image_id):
    """function(image_id), with any exception but a DatasetError turned into one."""
    try:
        return function(image_id)
    except DatasetError:
        raise
    except Exception as error:  # noqa: BLE001 - user code may raise anything
        if what == "load_image" and isinstance(error, OSError):
            problem = f"cannot read the image: {error}"
        else:
            problem = f"{what} raised {type(error).__name__}: {error}"
        raise DatasetError(problem) from error


def load_checked(dataset, image_id, channels=3):
    """Load, check and convert one image with its masks.

    Args:
        dataset: a prepared Dataset. image_id: internal image id.
        channels: config.IMAGE_CHANNEL_COUNT.

    Returns:
        image uint8 [H, W, channels], masks bool [H, W, N], class_ids int32 [N].
    Raises:
        DatasetError naming the image (id, source, source id, path); exceptions raised by
        ``load_image``/``load_mask`` are chained to it.
    """
    try:
        image = _call("load_image", dataset.load_image, image_id)
        image, notes = check_image(image, channels)
        masks, class_ids = _call("load_mask", dataset.load_mask, image_id)
        masks, class_ids = check_masks(masks, class_ids, image.shape, dataset.num_classes)
    except DatasetError as error:
        raise error.for_image(dataset, image_id) from error.__cause__
    for note in notes:
        _warn_once(dataset, note, f"{describe_image(dataset, image_id)}: {note}")
    return image, masks, class_ids


############################################################
#  Whole data sets
############################################################

def check_num_classes(config, dataset, label="dataset"):
    """Raise ValueError when config.NUM_CLASSES differs from dataset.num_classes."""
    if dataset.num_classes != config.NUM_CLASSES:
        raise ValueError(
            f"NUM_CLASSES is {config.NUM_CLASSES} in the config but {label} has "
            f"{dataset.num_classes} classes (background included): "
            f"{list(dataset.class_names)}")


def validate_dataset(dataset, config=None, image_ids=None, stop_after=None):
    """Check every image of a prepared dataset before training.

    Args:
        dataset: a prepared Dataset.
        config: optional Config: NUM_CLASSES is compared with the dataset,
            IMAGE_CHANNEL_COUNT is used for the image check, and with NUM_KEYPOINTS > 0
            the keypoints are checked too.
        image_ids: the images to check (default: all).
        stop_after: stop once this many bad images were found (default: check all).

    Returns:
        list of DatasetError, one per bad image, in image id order (empty when all are
        fine). Conversions are reported as DataConversionWarning.
    Raises:
        ValueError: NUM_CLASSES and the dataset disagree.
    """
    channels = 3
    if config is not None:
        check_num_classes(config, dataset)
        channels = int(config.IMAGE_CHANNEL_COUNT)
    ids = dataset.image_ids if image_ids is None else image_ids
    errors = []
    num_keypoints = int(getattr(config, "NUM_KEYPOINTS", 0) or 0)
    for image_id in ids:
        try:
            image, _, class_ids = load_checked(dataset, image_id, channels)
            if num_keypoints:
                load_checked_keypoints(dataset, image_id, image.shape, len(class_ids),
                                       num_keypoints)
        except DatasetError as error:
            errors.append(error)
            if stop_after is not None and len(errors) >= stop_after:
                break
    return errors


############################################################
#  The bad-image policy during training
############################################################

class BadImageLog:
    """What training does with an image that fails its checks: "raise" or "skip".

    "raise": :meth:`handle` re-raises the DatasetError (training stops, the message names
    the image). "skip": the image is skipped and recorded: a BadImageWarning names it
    the first time, :meth:`end_epoch` warns with the list of images skipped in that
    epoch, and :meth:`known_bad` lets later epochs skip it without loading it again.
    Thread-safe: input workers share one log.

    Attributes:
        policy: "raise" or "skip".
        errors: dict image_id -> the DatasetError first seen for it.
        skipped: dict epoch -> sorted list of the image ids skipped in that epoch.
    """

    def __init__(self, policy="raise"):
        if policy not in BAD_IMAGE_POLICIES:
            raise ValueError(f"BAD_IMAGE_POLICY must be one of {BAD_IMAGE_POLICIES}, "
                             f"got {policy!r}")
        self.policy = policy
        self.errors = {}
        self._skipped = {}
        self._lock = threading.Lock()

    def __getstate__(self):  # the lock stays behind (worker processes)
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def skipped(self):
        with self._lock:
            return {epoch: sorted(ids) for epoch, ids in self._skipped.items()}

    def handle(self, error, epoch):
        """Apply the policy to a DatasetError raised while loading an image of ``epoch``."""
        if self.policy == "raise":
            raise error
        with self._lock:
            first = error.image_id not in self.errors
            self.errors.setdefault(error.image_id, error)
            self._skipped.setdefault(epoch, set()).add(error.image_id)
        if first:
            warnings.warn(f"skipping {error} (BAD_IMAGE_POLICY='skip')", BadImageWarning,
                          stacklevel=2)

    def known_bad(self, image_id, epoch):
        """True (and counted as skipped in ``epoch``) if ``image_id`` failed before."""
        if self.policy != "skip":
            return False
        image_id = int(image_id)
        with self._lock:
            if image_id not in self.errors:
                return False
            self._skipped.setdefault(epoch, set()).add(image_id)
        return True

    def summary(self, epoch):
        """One line about the images skipped in ``epoch``, or None when there were none."""
        with self._lock:
            ids = sorted(self._skipped.get(epoch, ()))
            if not ids:
                return None
            lines = [f"  {self.errors[i]}" for i in ids[:20]]
        more = f"\n  ... and {len(ids) - 20} more" if len(ids) > 20 else ""
        return (f"epoch {epoch}: skipped {len(ids)} bad image(s) {ids[:20]}"
                f"{' ...' if len(ids) > 20 else ''} (BAD_IMAGE_POLICY='skip'):\n"
                + "\n".join(lines) + more)

    def end_epoch(self, epoch):
        """Warn with the summary of ``epoch`` if images were skipped; returns it."""
        text = self.summary(epoch)
        if text:
            warnings.warn(text, BadImageWarning, stacklevel=2)
        return text

"""Checks of what a user's Dataset returns: conversions, and errors that name the image."""
import re
import warnings

import numpy as np
import pytest

from mrcnn import data, validate
from mrcnn.config import Config
from mrcnn.dataset import Dataset
from mrcnn.validate import BadImageWarning, DataConversionWarning, DatasetError

GOOD_MASK = np.zeros((32, 32, 1), dtype=bool)
GOOD_MASK[8:20, 4:24, 0] = True
GOOD_IMAGE = np.random.RandomState(0).randint(0, 256, (32, 32, 3)).astype(np.uint8)


def case(image=GOOD_IMAGE, mask=GOOD_MASK, class_ids=(1,)):
    """What load_image / load_mask return for one image (callables raise)."""
    return {"image": image, "mask": mask, "class_ids": class_ids}


class CaseDataset(Dataset):
    """One image per case; load_image/load_mask return the case's values verbatim."""

    def __init__(self, cases, path=None):
        super().__init__()
        self.add_class("toy", 1, "thing")
        self.add_class("toy", 2, "other")
        for name, values in cases.items():
            self.add_image("toy", image_id=name, path=path, case=values)
        self.prepare()

    def load_image(self, image_id):
        value = self.image_info[image_id]["case"]["image"]
        return value() if callable(value) else value

    def load_mask(self, image_id):
        values = self.image_info[image_id]["case"]
        mask = values["mask"]
        if callable(mask):
            return mask()
        return mask, values["class_ids"]


def error_of(values, path=None):
    dataset = CaseDataset({"the_case": values}, path=path)
    with pytest.raises(DatasetError) as info:
        validate.load_checked(dataset, 0)
    error = info.value
    assert error.image_id == 0 and error.source == "toy" and error.source_id == "the_case"
    assert str(error).startswith("image 0 (source 'toy', id 'the_case'")
    return str(error)


def loaded(values):
    dataset = CaseDataset({"the_case": values})
    return validate.load_checked(dataset, 0)


# ----------------------------------------------------------------------------- images
BAD_IMAGES = {
    "float above 255": (np.full((32, 32, 3), 300.0), r"float image has values in \[300, 300\]"),
    "nan": (np.full((32, 32, 3), np.nan, dtype=np.float32), "NaN or infinite"),
    "negative int": (np.full((32, 32, 3), -3, dtype=np.int16), r"values in \[-3, -3\]"),
    "int32 above 255": (np.full((32, 32, 3), 1000, dtype=np.int32), r"values in \[1000, 1000\]"),
    "five channels": (np.zeros((32, 32, 5), np.uint8), "the image is 32x32x5"),
    "4-d": (np.zeros((1, 32, 32, 3), np.uint8), "the image is 1x32x32x3"),
    "empty": (np.zeros((0, 32, 3), np.uint8), "the image is 0x32x3"),
    "bool": (np.ones((32, 32, 3), bool), "the image is boolean"),
    "not an array": ([[1, 2], [3, 4]], "returned a list, not a numpy array"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_images_are_rejected_with_the_image_named(name):
    image, pattern = BAD_IMAGES[name]
    message = error_of(case(image=image))
    assert re.search(pattern, message), message


def test_unreadable_files_name_the_path(tmp_path):
    missing = tmp_path / "missing.png"
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"this is not a jpeg")
    for path in (missing, corrupt):
        dataset = Dataset()
        dataset.add_class("files", 1, "thing")
        dataset.add_image("files", image_id="x", path=str(path))
        dataset.prepare()
        with pytest.raises(DatasetError) as info:
            validate.load_checked(dataset, 0)
        message = str(info.value)
        assert message.startswith(f"image 0 (source 'files', id 'x', path '{path}'): "
                                  f"cannot read the image"), message
        assert info.value.path == str(path)
        assert isinstance(info.value.__cause__, OSError)


def test_exceptions_of_user_code_are_wrapped():
    def broken_mask():
        raise KeyError("regions")

    message = error_of(case(mask=broken_mask))
    assert "load_mask raised KeyError: 'regions'" in message


def test_grey_rgba_and_other_dtypes_are_converted():
    grey = GOOD_IMAGE[:, :, 0]
    rgba = np.concatenate([GOOD_IMAGE, np.full((32, 32, 1), 9, np.uint8)], axis=2)
    grey_alpha = np.stack([grey, np.full_like(grey, 7)], axis=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataConversionWarning)
        for image in (grey, grey[:, :, None], grey_alpha):
            out = loaded(case(image=image))[0]
            assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
            np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))
        np.testing.assert_array_equal(loaded(case(image=rgba))[0], GOOD_IMAGE)

        # uint16: the high byte, value // 256 (as skimage's img_as_ubyte).
        wide = np.zeros((32, 32, 3), np.uint16)
        wide[0, 0] = [65535, 25700, 255]
        wide[0, 1] = [256, 32768, 511]
        out = loaded(case(image=wide))[0]
        np.testing.assert_array_equal(out[0, :2], [[255, 100, 0], [1, 128, 1]])

        unit = np.zeros((32, 32, 3), np.float32)
        unit[0, 0] = [1.0, 0.5, 0.1]                # [0, 1] floats: * 255, rounded
        np.testing.assert_array_equal(loaded(case(image=unit))[0][0, 0], [255, 128, 26])
        full = np.zeros((32, 32, 3), np.float64)
        full[0, 0] = [254.6, 3.0, 2.2]              # [0, 255] floats: rounded
        np.testing.assert_array_equal(loaded(case(image=full))[0][0, 0], [255, 3, 2])
        small_ints = GOOD_IMAGE.astype(np.int64)    # int64 within 0..255: cast
        np.testing.assert_array_equal(loaded(case(image=small_ints))[0], GOOD_IMAGE)


def test_conversions_warn_once_per_dataset_class():
    class WideDataset(CaseDataset):
        pass

    wide = np.full((32, 32, 3), 257 * 3, np.uint16)
    dataset = WideDataset({"a": case(image=wide), "b": case(image=wide)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validate.load_checked(dataset, 0)
        validate.load_checked(dataset, 1)
    conversions = [w for w in caught if issubclass(w.category, DataConversionWarning)]
    assert len(conversions) == 1
    assert "image 0 (source 'toy', id 'a'): uint16 image scaled to uint8" in \
        str(conversions[0].message)


def test_other_channel_counts_must_match_the_config():
    class TwoChannels(Config):
        NAME = "two"
        NUM_CLASSES = 3
        IMAGE_CHANNEL_COUNT = 2
        MEAN_PIXEL = [100.0, 100.0]

    dataset = CaseDataset({"rgb": case(), "two": case(image=GOOD_IMAGE[:, :, :2])})
    with pytest.raises(DatasetError, match="IMAGE_CHANNEL_COUNT is 2"):
        validate.load_checked(dataset, 0, channels=2)
    assert validate.load_checked(dataset, 1, channels=2)[0].shape == (32, 32, 2)
    image = data.load_image_gt(dataset, TwoChannels(), 1)[0]
    assert image.shape == (1024, 1024, 2)


# ----------------------------------------------------------------------------- masks
BAD_MASKS = {
    "wrong size": (case(mask=np.ones((16, 32, 1), bool)),
                   "masks are 16x32x1 but the image is 32x32; load_mask must return"),
    "two-d": (case(mask=GOOD_MASK[:, :, 0]),
              r"masks are 32x32; load_mask must return \[H, W, N\]"),
    "0/255": (case(mask=GOOD_MASK.astype(np.uint8) * 255),
              r"uint8 masks hold the values 0, 255.*use `mask > 0`"),
    "label image": (case(mask=np.arange(4, dtype=np.int32).repeat(256).reshape(32, 32, 1)),
                    "int32 masks hold the values 0, 1, 2, 3.*one channel per instance"),
    "too few ids": (case(mask=np.ones((32, 32, 2), bool), class_ids=[1]),
                    r"returned 2 masks but class ids of shape \(1,\)"),
    "background id": (case(class_ids=[0]), r"class ids \[0\] are not classes of the dataset"),
    "unknown id": (case(class_ids=[3]), r"class ids \[3\] are not classes.*1\.\.2"),
    "unknown crowd id": (case(class_ids=[-5]), r"class ids \[-5\] are not classes"),
    "fractional id": (case(class_ids=[1.5]), r"class ids \[1.5\] are not integers"),
    "not an array": (case(mask=[[0, 1]]), "masks of type list, not a numpy array"),
}


@pytest.mark.parametrize("name", sorted(BAD_MASKS))
def test_bad_masks_and_class_ids_are_rejected_with_the_image_named(name):
    values, pattern = BAD_MASKS[name]
    message = error_of(values)
    assert re.search(pattern, message), message


def test_integer_masks_crowd_ids_and_empty_masks_are_accepted():
    ones = GOOD_MASK.astype(np.int64)
    _, mask, ids = loaded(case(mask=ones, class_ids=np.array([2.0])))
    assert mask.dtype == bool and ids.dtype == np.int32
    np.testing.assert_array_equal(mask, GOOD_MASK)
    np.testing.assert_array_equal(ids, [2])
    _, _, ids = loaded(case(class_ids=[-1]))             # crowd region of class 1
    np.testing.assert_array_equal(ids, [-1])
    _, mask, ids = loaded(case(mask=np.zeros((0, 0, 0), bool), class_ids=[]))
    assert mask.shape == (32, 32, 0) and ids.shape == (0,)


# ----------------------------------------------------------------------------- data sets
def test_validate_dataset_lists_every_bad_image_and_checks_num_classes():
    dataset = CaseDataset({
        "good": case(),
        "bad_size": case(mask=np.ones((8, 8, 1), bool)),
        "good_too": case(class_ids=np.array([2], np.uint8)),
        "bad_id": case(class_ids=[4]),
    }, path="/data/x.png")
    errors = validate.validate_dataset(dataset)
    assert [e.image_id for e in errors] == [1, 3]
    assert str(errors[0]).startswith("image 1 (source 'toy', id 'bad_size', path '/data/x.png')")
    assert validate.validate_dataset(dataset, stop_after=1)[0].image_id == 1

    class ThreeClasses(Config):
        NAME = "three"
        NUM_CLASSES = 3

    assert len(validate.validate_dataset(dataset, ThreeClasses())) == 2
    ThreeClasses.NUM_CLASSES = 5
    with pytest.raises(ValueError, match="NUM_CLASSES is 5 in the config but dataset has 3"):
        validate.validate_dataset(dataset, ThreeClasses())


def test_dataset_error_survives_pickling():
    import pickle

    error = DatasetError("masks are wrong", image_id=3, source="toy", source_id="a",
                         path="/p", description="image 3 (source 'toy')")
    back = pickle.loads(pickle.dumps(error))
    assert str(back) == str(error) and back.image_id == 3 and back.path == "/p"


def test_bad_image_log_policies():
    error = DatasetError("masks are wrong", image_id=4, description="image 4")
    with pytest.raises(DatasetError):
        validate.BadImageLog("raise").handle(error, epoch=0)
    with pytest.raises(ValueError, match="BAD_IMAGE_POLICY must be one of"):
        validate.BadImageLog("ignore")

    log = validate.BadImageLog("skip")
    with pytest.warns(BadImageWarning, match="skipping image 4: masks are wrong"):
        log.handle(error, epoch=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # a second sighting does not warn again
        log.handle(error, epoch=0)
    assert log.known_bad(4, epoch=1) and not log.known_bad(5, epoch=1)
    assert log.skipped == {0: [4], 1: [4]}
    with pytest.warns(BadImageWarning, match=r"epoch 1: skipped 1 bad image\(s\) \[4\]"):
        log.end_epoch(1)
    assert log.end_epoch(2) is None


# ----------------------------------------------------------------------------- molded sizes
# Levels C2..C5 of a side s are ceil(s / 4), ceil(s / 8), ceil(s / 16), ceil(s / 32) (worked
# out by hand below); the FPN adds each level, upsampled x2, to the one below it.
MOLDED_SIDES = {
    64: True,    # 16, 8, 4, 2
    96: True,    # 24, 12, 6, 3 (a multiple of 32, not of 64)
    125: True,   # 32, 16, 8, 4
    478: True,   # 120, 60, 30, 15
    640: True,   # 160, 80, 40, 20
    100: False,  # 25, 13, 7, 4
    124: False,  # 31, 16, 8, 4
    65: False,   # 17, 9, 5, 3
}


class NoneModeConfig(Config):
    NAME = "none"
    IMAGE_RESIZE_MODE = "none"


@pytest.mark.parametrize("side", sorted(MOLDED_SIDES))
def test_check_molded_size_hand_computed(side):
    config = NoneModeConfig()
    for shape in ((side, 128, 3), (128, side, 3)):
        if MOLDED_SIDES[side]:
            validate.check_molded_size(shape, config, "image 3")
            continue
        with pytest.raises(ValueError) as raised:
            validate.check_molded_size(shape, config, "image 3")
        message = str(raised.value)
        assert message.startswith(f"image 3 is {shape[0]}x{shape[1]} pixels")
        assert "IMAGE_RESIZE_MODE 'none'" in message and "'pad64'" in message


def test_check_molded_size_agrees_with_the_inference_graph(tmp_path):
    """Sizes the check accepts run through the graph; sizes it refuses fail inside it."""
    import tensorflow as tf
    import mrcnn.model as modellib
    from conftest import TinyConfig

    class TinyNone(TinyConfig):
        IMAGE_RESIZE_MODE = "none"
        IMAGES_PER_GPU = 1

    config = TinyNone()
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    for shape in ((96, 128, 3), (100, 128, 3), (128, 124, 3)):
        image = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
        # "none" mode molds by subtracting the mean pixel only.
        molded = data.mold_image(image, config)[None]
        meta = data.compose_image_meta(0, shape, shape, (0, 0) + shape[:2], 1.0,
                                       np.ones([config.NUM_CLASSES], np.int32))[None]
        try:
            validate.check_molded_size(shape, config)
            accepted = True
        except ValueError:
            accepted = False
        try:
            model._predict(molded, meta)
            ran = True
        except tf.errors.InvalidArgumentError:
            ran = False
        assert accepted == ran == (shape[:2] == (96, 128)), shape

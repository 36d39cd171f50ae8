"""detect()'s coordinate frame, worked by hand, and what detect() accepts as images.

The frame tests replace the graph with a stub whose detections are given in the graph's
normalised frame of the molded image, (box - [0, 0, 1, 1]) / [h-1, w-1, h-1, w-1] (see
`norm`), so molding (the window) and unmolding (boxes and pasted masks) are checked end to
end. The expected pixels are worked out in the comments: normalised coordinates map pixel
*indices* linearly, the window's first pixel onto the original's first pixel and the
window's last pixel (y2 - 1, x2 - 1) onto the original's last one; an exclusive y2/x2 is
the mapped last index + 1.
"""
import warnings

import keras
import numpy as np
import pytest

import mrcnn.model as modellib
from mrcnn import inference, validate
from mrcnn.callbacks import MeanAveragePrecisionCallback
from mrcnn.data import mold_image
from mrcnn.dataset import Dataset

from conftest import TinyConfig


class Pad64Config(TinyConfig):
    IMAGE_RESIZE_MODE = "pad64"


class CropConfig(TinyConfig):
    IMAGE_RESIZE_MODE = "crop"


def _model(config, tmp_path_factory):
    keras.utils.set_random_seed(0)   # the same random weights in every run
    return modellib.MaskRCNN("inference", config, str(tmp_path_factory.mktemp("frame")))


@pytest.fixture(scope="module")
def square_model(tmp_path_factory):
    return _model(TinyConfig(), tmp_path_factory)


@pytest.fixture(scope="module")
def pad64_model(tmp_path_factory):
    return _model(Pad64Config(), tmp_path_factory)


@pytest.fixture(scope="module")
def crop_model(tmp_path_factory):
    return _model(CropConfig(), tmp_path_factory)


def norm(box, molded_hw):
    """A pixel box (y2, x2 exclusive) of the molded image in the graph's frame."""
    h, w = molded_hw
    y1, x1, y2, x2 = box
    return [y1 / (h - 1), x1 / (w - 1), (y2 - 1) / (h - 1), (x2 - 1) / (w - 1)]


def stub_graph(monkeypatch, model, molded_hw, detections):
    """Make `model`'s graph return `detections` for every image.

    detections: list of (molded pixel box, class id, score, 28x28 mask of that class).
    Returns a dict that receives the molded images and metas the graph was given.
    """
    rows = np.zeros((model.config.DETECTION_MAX_INSTANCES, 6), np.float32)
    # _predict returns each detection's mask of its class (the graph's detection_masks).
    masks = np.zeros((model.config.DETECTION_MAX_INSTANCES, 28, 28), np.float32)
    for i, (box, class_id, score, mask) in enumerate(detections):
        rows[i] = norm(box, molded_hw) + [class_id, score]
        masks[i] = mask
    seen = {}

    def predict(images, metas):
        seen["images"], seen["metas"] = np.array(images), np.array(metas)
        batch = len(images)
        return np.repeat(rows[None], batch, 0), np.repeat(masks[None], batch, 0)

    monkeypatch.setattr(model, "_predict", predict)
    return seen


def box_mask(shape, y1, x1, y2, x2):
    mask = np.zeros(shape, bool)
    mask[y1:y2, x1:x2] = True
    return mask


ONES = np.ones((28, 28), np.float32)
TOP_HALF = np.zeros((28, 28), np.float32)
TOP_HALF[:14] = 1
LEFT_HALF = np.zeros((28, 28), np.float32)
LEFT_HALF[:, :14] = 1


def _grey(shape, seed=0):
    return np.random.RandomState(seed).randint(0, 256, shape + (3,)).astype(np.uint8)


# --- the frame, by hand ------------------------------------------------------------------

def test_square_mode_with_a_non_integer_scale(monkeypatch, square_model):
    # 30x50 into the 64 square: scale 64/50 = 1.28, 38.4 -> 38 rows, 26 rows of padding,
    # 13 above: window (13, 0, 51, 64). Rows: molded index 13..50 -> original 0..29, i.e.
    # (i - 13) * 29/37; columns: 0..63 -> 0..49, i.e. j * 49/63.
    seen = stub_graph(monkeypatch, square_model, (64, 64), [
        ((20, 16, 40, 48), 1, 0.9, TOP_HALF),
        ((13, 0, 51, 64), 2, 0.8, ONES),        # the whole window
    ])
    result = square_model.detect([_grey((30, 50))])[0]
    assert seen["images"].shape[1:] == (64, 64, 3)
    assert list(seen["metas"][0, 7:11]) == [13, 0, 51, 64]
    # y1: 7 * 29/37 = 5.49 -> 5; y2: last index 39 -> 26 * 29/37 = 20.38 -> 20, + 1 = 21.
    # x1: 16 * 49/63 = 12.44 -> 12; x2: last index 47 -> 47 * 49/63 = 36.56 -> 37, + 1 = 38.
    np.testing.assert_array_equal(result["rois"], [[5, 12, 21, 38], [0, 0, 30, 50]])
    np.testing.assert_array_equal(result["class_ids"], [1, 2])
    np.testing.assert_allclose(result["scores"], [0.9, 0.8])
    # The top half of the mask on the 16 rows of the box: row p samples mask row
    # (p + 0.5) * 28/16 - 0.5 = 1.75 p + 0.375, which is <= 13 (value 1) for p <= 7 and
    # >= 14 (value 0) for p >= 8: rows 5..12 of the image, all 26 columns.
    assert result["masks"].shape == (30, 50, 2)
    np.testing.assert_array_equal(result["masks"][..., 0], box_mask((30, 50), 5, 12, 13, 38))
    np.testing.assert_array_equal(result["masks"][..., 1], np.ones((30, 50), bool))


@pytest.mark.parametrize("which", ["pad64", "crop"])
def test_pad64_mode_and_a_crop_config_with_a_non_integer_scale(monkeypatch, which,
                                                               pad64_model, crop_model):
    # 40x100, IMAGE_MIN_DIM 64: scale 64/40 = 1.6 -> 64x160, 32 columns of padding to 192,
    # 16 on the left: window (0, 16, 64, 176). A crop config molds the same way (the scale
    # of its training crops, without the crop). Rows: i * 39/63; columns: (j - 16) * 99/159.
    model = pad64_model if which == "pad64" else crop_model
    seen = stub_graph(monkeypatch, model, (64, 192), [((8, 40, 40, 120), 3, 0.7, LEFT_HALF)])
    np.random.seed(1)
    result = model.detect([_grey((40, 100))])[0]
    np.random.seed(2)
    again = model.detect([_grey((40, 100))])[0]
    assert seen["images"].shape[1:] == (64, 192, 3)
    assert list(seen["metas"][0, 4:11]) == [64, 192, 3, 0, 16, 64, 176]
    assert seen["metas"][0, 11] == pytest.approx(1.6)
    # y1: 8 * 39/63 = 4.95 -> 5; y2: last index 39 -> 24.14 -> 24, + 1 = 25.
    # x1: 24 * 99/159 = 14.94 -> 15; x2: last index 119 -> 103 * 99/159 = 64.13 -> 64, + 1.
    np.testing.assert_array_equal(result["rois"], [[5, 15, 25, 65]])
    np.testing.assert_array_equal(again["rois"], result["rois"])
    # The left half of the mask on the 50 columns of the box: column p samples
    # (p + 0.5) * 28/50 - 0.5 = 0.56 p - 0.22: 13.22 (value 0.78) at p = 24, 13.78 (value
    # 0.22) at p = 25: columns 15..39 of the image.
    np.testing.assert_array_equal(result["masks"][..., 0], box_mask((40, 100), 5, 15, 25, 40))


def test_a_crop_config_keeps_the_whole_image(monkeypatch, crop_model):
    # 800x1200 with a crop config: no scaling (short side 800 >= IMAGE_MIN_DIM), padded to
    # multiples of 64: 832x1216 with 16 rows above and 8 columns on the left. At scale 1
    # the map is a shift by the window's corner. (Molded with the random 64x64 crop and
    # the window (0, 0, 64, 64), this box came back stretched over the whole image.)
    stub_graph(monkeypatch, crop_model, (832, 1216), [
        ((116, 208, 316, 508), 1, 0.9, ONES),
        ((16, 8, 816, 1208), 2, 0.8, ONES),
    ])
    result = crop_model.detect([_grey((800, 1200))])[0]
    np.testing.assert_array_equal(result["rois"], [[100, 200, 300, 500], [0, 0, 800, 1200]])
    np.testing.assert_array_equal(result["masks"][..., 0],
                                  box_mask((800, 1200), 100, 200, 300, 500))
    config = CropConfig()
    config.IMAGE_MIN_DIM = 512
    molded, metas, windows = inference.mold_inputs([_grey((800, 1200))], config)
    assert molded.shape == (1, 832, 1216, 3) and list(windows[0]) == [16, 8, 816, 1208]


class OneRectangle(Dataset):
    """One 200x300 image with one class-1 rectangle at (10, 10, 30, 40)."""

    def __init__(self):
        super().__init__()
        self.add_class("rect", 1, "rect")
        self.add_image("rect", image_id=0, path=None)
        self.prepare()

    def load_image(self, image_id):
        return _grey((200, 300), 7)

    def load_mask(self, image_id):
        return box_mask((200, 300), 10, 10, 30, 40)[..., None], np.array([1], np.int32)


def test_the_map_callback_on_a_crop_config_finds_the_detection(monkeypatch, crop_model):
    # MeanAveragePrecisionCallback builds its inference model from the (crop-mode) training
    # config. 200x300 at scale 1, padded to 256x320: 28 rows above, 10 columns on the
    # left, so the rectangle lies at molded (38, 20, 58, 50) and a detection there is exact.
    seen = stub_graph(monkeypatch, crop_model, (256, 320), [((38, 20, 58, 50), 1, 0.9, ONES)])
    callback = MeanAveragePrecisionCallback(lambda: crop_model, OneRectangle(), verbose=0)
    assert callback.compute_map() == pytest.approx(1.0)
    assert seen["images"].shape[1:] == (256, 320, 3)


@pytest.mark.parametrize("width", [3, 40])
def test_a_very_elongated_image_keeps_its_detections(monkeypatch, square_model, width):
    # 5000 x width into the 64 square: scale 64/5000, width 0.04 or 0.51 pixels, kept at 2
    # (utils.MIN_SCALED_SIDE), 31 columns of padding each side: window (0, 31, 64, 33).
    # Columns 31, 32 -> 0, width - 1; rows i * 4999/63.
    stub_graph(monkeypatch, square_model, (64, 64), [
        ((0, 31, 64, 33), 1, 0.9, ONES),            # the whole window
        ((0, 31, 32, 33), 2, 0.8, ONES),            # its upper half
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.warns(inference.ImageSizeWarning, match=r"image 0 is 5000x\d+ .* 64x2"):
            result = square_model.detect([_grey((5000, width))])[0]
    # Upper half: last index 31 -> 31 * 4999/63 = 2459.8 -> 2460, + 1 = 2461.
    np.testing.assert_array_equal(result["rois"], [[0, 0, 5000, width], [0, 0, 2461, width]])
    np.testing.assert_array_equal(result["masks"][..., 1],
                                  box_mask((5000, width), 0, 0, 2461, width))


def test_a_one_pixel_side_that_is_not_resized(monkeypatch, square_model):
    # 1x64 in the 64 square: min_dim asks for x64, the long side caps it at 1: no resize,
    # window (31, 0, 32, 64), a single row. The graph clips boxes to it, so y1 = y2 there;
    # that row is the image's only row: rois rows 0..1.
    stub_graph(monkeypatch, square_model, (64, 64), [((31, 8, 32, 40), 1, 0.9, ONES)])
    with pytest.warns(inference.ImageSizeWarning):
        result = square_model.detect([_grey((1, 64))])[0]
    np.testing.assert_array_equal(result["rois"], [[0, 8, 1, 40]])
    np.testing.assert_array_equal(result["masks"][..., 0], box_mask((1, 64), 0, 8, 1, 40))


def test_unmold_refuses_an_empty_window():
    detections = np.array([[0.1, 0.1, 0.5, 0.5, 1, 0.9]], np.float32)
    masks = np.ones((1, 28, 28, 2), np.float32)
    with pytest.raises(ValueError, match="window .* is empty"):
        inference.unmold_detections(detections, masks, (10, 10, 3), (64, 64, 3),
                                    (0, 32, 64, 32))


# --- what detect() takes -----------------------------------------------------------------

def _same_results(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["rois"], y["rois"])
        np.testing.assert_array_equal(x["class_ids"], y["class_ids"])
        np.testing.assert_array_equal(x["scores"], y["scores"])
        np.testing.assert_array_equal(x["masks"], y["masks"])


def test_one_image_a_batch_array_and_an_ambiguous_array(square_model):
    first, second = _grey((64, 64), 1), _grey((48, 80), 2)
    as_list = square_model.detect([first])
    assert len(as_list) == 1 and len(as_list[0]["class_ids"]) > 0
    _same_results(square_model.detect(first), as_list)           # one [H, W, 3] image
    _same_results(square_model.detect(first[..., 0]),           # one grey [H, W] image
                  square_model.detect([first[..., 0]]))
    batch = np.stack([first, _grey((64, 64), 3)])
    _same_results(square_model.detect(batch), square_model.detect(list(batch)))
    _same_results(square_model.detect((first, second)), square_model.detect([first, second]))
    assert square_model.detect([]) == []
    with pytest.raises(ValueError, match="ambiguous|no channel count"):
        square_model.detect(np.zeros((5, 64, 64), np.uint8))      # [B, H, W]?
    with pytest.raises(ValueError, match="pass a list"):
        square_model.detect(np.zeros((1, 2, 64, 64, 3), np.uint8))


def test_float_and_uint16_images_are_converted_as_for_training(square_model):
    image = _grey((64, 64), 4)
    expected = square_model.detect([image])
    assert len(expected[0]["class_ids"]) > 0
    with pytest.warns(validate.DataConversionWarning, match=r"image 0: float image in \[0, 1\]"):
        _same_results(square_model.detect([image / 255.0]), expected)
    with pytest.warns(validate.DataConversionWarning, match=r"images 0, 1: .*\[0, 255\]"):
        _same_results(square_model.detect([image.astype(np.float32)] * 2), expected * 2)
    with pytest.warns(validate.DataConversionWarning, match="uint16"):
        _same_results(square_model.detect([image.astype(np.uint16) * 257]), expected)
    with pytest.raises(ValueError, match=r"image 1: the float image has values in \[-1"):
        square_model.detect([image, image / 127.5 - 1.0])


def test_detect_molded_warns_about_a_unit_range_image(square_model):
    config = square_model.config
    image = _grey((64, 64), 5)
    _, metas, _ = inference.mold_inputs([image], config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        square_model.detect_molded(mold_image(image, config)[None], metas)
    with pytest.warns(UserWarning, match="molded image 0 holds pixel values in"):
        square_model.detect_molded(mold_image(image / 255.0, config)[None], metas)


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 0), (0, 0, 3)])
def test_an_empty_image_is_named(square_model, shape):
    with pytest.raises(ValueError, match=r"image 1 is empty"):
        square_model.detect([_grey((64, 64)), np.zeros(shape, np.uint8)])
    with pytest.raises(ValueError, match=r"image 0 is empty"):
        inference.mold_inputs([np.zeros(shape, np.uint8)], square_model.config)


def test_a_very_elongated_image_through_the_graph(square_model):
    # The real graph on a 5000x40 image: no NaN on the way, boxes inside the image.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", inference.ImageSizeWarning)
        result = square_model.detect([_grey((5000, 40), 6)])[0]
    rois = result["rois"]
    assert result["masks"].shape == (5000, 40, len(rois))
    assert np.all(rois[:, :2] >= 0) and np.all(rois[:, 2] <= 5000) and np.all(rois[:, 3] <= 40)
    assert np.all(rois[:, 2] > rois[:, 0]) and np.all(rois[:, 3] > rois[:, 1])


def test_none_mode_names_an_image_the_pyramid_cannot_take(tmp_path):
    """IMAGE_RESIZE_MODE "none" keeps each image's size; 100 rows give pyramid levels
    25, 13, 7, 4 (ceil(100 / 4), ...), which do not halve exactly, so molding refuses the
    image by its index before the graph fails inside the FPN. 128 rows (32, 16, 8, 4) pass."""
    class TinyNone(TinyConfig):
        IMAGE_RESIZE_MODE = "none"
        IMAGES_PER_GPU = 1

    config = TinyNone()
    inference.mold_inputs([np.zeros((128, 64, 3), np.uint8)], config)
    with pytest.raises(ValueError, match=r"^image 1 is 100x128 pixels .*'pad64'"):
        inference.mold_inputs([np.zeros((128, 64, 3), np.uint8),
                               np.zeros((100, 128, 3), np.uint8)], config)

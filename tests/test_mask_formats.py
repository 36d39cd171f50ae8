"""detect()'s mask formats ("full", "box", "rle") and the paste helpers they rest on."""
import json

import keras
import numpy as np
import pytest
from pycocotools import mask as mask_utils

import mrcnn.model as modellib
from mrcnn import inference, utils

from conftest import TinyConfig


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    keras.utils.set_random_seed(0)   # the random weights
    return modellib.MaskRCNN("inference", TinyConfig(), str(tmp_path_factory.mktemp("m")))


def _images():
    rng = np.random.RandomState(3)
    return [rng.randint(0, 256, shape, dtype=np.uint8)
            for shape in ((50, 70, 3), (64, 64, 3), (90, 40, 3))]


# --- paste_mask / paste_masks by hand --------------------------------------------------

def test_paste_mask_resizes_to_the_box_then_thresholds():
    mask = np.zeros((4, 4), np.float32)
    mask[:, 2:] = 0.9                 # right half on
    full = utils.paste_mask(mask, (2, 2, 10, 10), (12, 12, 3))
    expected = np.zeros((12, 12), bool)
    expected[2:10, 6:10] = True       # the right half of the 8x8 box
    np.testing.assert_array_equal(full, expected)
    # Same probabilities with a higher threshold: nothing passes 0.95.
    assert not utils.paste_mask(mask, (2, 2, 10, 10), (12, 12), threshold=0.95).any()


def test_paste_mask_clips_a_box_that_reaches_outside_the_image():
    # A 2x2 mask with only its top-left cell on, resized to an 8x8 box (-2, -2, 6, 6).
    # OpenCV's bilinear resize samples source (i + 0.5) / 4 - 0.5 for output i, so along
    # each axis the weight of source cell 0 is f = [1, 1, .875, .625, .375, .125, 0, 0]
    # and a pixel's value is f[i] * f[j]. The image holds box rows/cols 2..7; >= 0.5 there:
    # (2, 2) .766, (2, 3) and (3, 2) .547; (3, 3) is .39. Box (2, 2) is image pixel (0, 0).
    mask = np.array([[1, 0], [0, 0]], np.float32)
    full = utils.paste_mask(mask, (-2, -2, 6, 6), (5, 5))
    expected = np.zeros((5, 5), bool)
    expected[0, 0] = expected[0, 1] = expected[1, 0] = True
    np.testing.assert_array_equal(full, expected)
    inside, box = utils.paste_mask_in_box(mask, (-2, -2, 6, 6), (5, 5))
    assert box == (0, 0, 5, 5) and inside.shape == (5, 5)
    np.testing.assert_array_equal(inside, expected)


def test_paste_masks_of_empty_and_outside_boxes():
    masks = np.ones((3, 28, 28), np.float32)
    boxes = np.array([[2, 2, 2, 9], [20, 20, 30, 30], [1, 1, 4, 5]])  # empty, outside, in
    full = utils.paste_masks(masks, boxes, (10, 12))
    assert full.shape == (10, 12, 3) and full.dtype == bool
    assert not full[..., 0].any() and not full[..., 1].any()
    assert full[..., 2].sum() == 3 * 4 and full[1:4, 1:5, 2].all()
    inside, box = utils.paste_mask_in_box(masks[1], boxes[1], (10, 12))
    assert inside.size == 0 and box[2] - box[0] == 0


def test_inference_paste_masks_is_the_utils_helper():
    assert inference.paste_masks is utils.paste_masks


# --- RLE without the full mask ---------------------------------------------------------

def _reference_rle(mask):
    """pycocotools' encoding of the full [H, W] mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def _full(box_mask, box, shape):
    full = np.zeros(shape, bool)
    full[box[0]:box[2], box[1]:box[3]] = box_mask
    return full


def test_rle_of_a_box_mask_equals_pycocotools_on_the_full_mask():
    rng = np.random.RandomState(5)
    for _ in range(60):
        height, width = rng.randint(1, 30, 2)
        y1, y2 = np.sort(rng.randint(0, height + 1, 2))
        x1, x2 = np.sort(rng.randint(0, width + 1, 2))
        box_mask = rng.uniform(size=(y2 - y1, x2 - x1)) < rng.uniform(0.1, 0.9)
        got = inference.encode_box_mask(box_mask, (y1, x1, y2, x2), (height, width))
        assert got == _reference_rle(_full(box_mask, (y1, x1, y2, x2), (height, width)))


def test_rle_joins_a_run_that_wraps_from_one_column_into_the_next():
    # A box of the image's full height: column 0 ends with foreground on the last row and
    # column 1 starts with foreground on the first: in COCO's column-major order
    # (0 0 1 1 1 | 1 1 1 0 0) that is one run of 3 + 3 pixels: counts [2, 6, 2].
    box_mask = np.array([[0, 1], [0, 1], [1, 1], [1, 0], [1, 0]], bool)
    got = inference.encode_box_mask(box_mask, (0, 0, 5, 2), (5, 2))
    expected = mask_utils.frPyObjects({"counts": [2, 6, 2], "size": [5, 2]}, 5, 2)
    assert got["counts"] == expected["counts"].decode("ascii")
    assert got == _reference_rle(box_mask)
    # Corners: the first pixel on, the last pixel on, nothing on.
    for full in (np.eye(4, 3, dtype=bool), np.eye(4, 3, dtype=bool)[::-1, ::-1],
                 np.zeros((4, 3), bool)):
        assert inference.encode_box_mask(full, (0, 0, 4, 3), (4, 3)) == _reference_rle(full)


def test_encode_masks_equals_paste_masks():
    rng = np.random.RandomState(6)
    masks = rng.uniform(size=(5, 28, 28)).astype(np.float32)
    boxes = np.array([[0, 0, 40, 30], [5, 7, 9, 30], [-3, 20, 12, 35], [39, 0, 40, 1],
                      [10, 10, 10, 20]])
    full = utils.paste_masks(masks, boxes, (40, 30))
    encoded = inference.encode_masks(masks, boxes, (40, 30))
    assert len(encoded) == 5
    for i, rle in enumerate(encoded):
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), full[..., i])


# --- unmold and detect -----------------------------------------------------------------

def test_unmold_box_format_returns_each_kept_detections_class_mask():
    detections = np.zeros((4, 6), np.float32)
    detections[0] = [8 / 63, 16 / 63, 23 / 63, 47 / 63, 2, 0.9]
    detections[1] = [0.5, 0.5, 0.5, 0.5, 1, 0.8]      # zero area: dropped
    detections[2] = [0.0, 0.0, 0.5, 0.5, 3, 0.7]
    masks = np.random.RandomState(7).uniform(size=(4, 28, 28, 4)).astype(np.float32)
    boxes, class_ids, _, box_masks = inference.unmold_detections(
        detections, masks, (32, 32, 3), (64, 64, 3), (0, 0, 64, 64), mask_format="box")
    np.testing.assert_array_equal(class_ids, [2, 3])
    assert box_masks.dtype == np.float32 and box_masks.shape == (2, 28, 28)
    np.testing.assert_array_equal(box_masks[0], masks[0, :, :, 2])
    np.testing.assert_array_equal(box_masks[1], masks[2, :, :, 3])


def test_detect_formats_agree_with_the_full_masks(model):
    images = _images()
    full = model.detect(images)
    box = model.detect(images, mask_format="box")
    rle = model.detect(images, mask_format="rle")
    mh, mw = TinyConfig.MASK_SHAPE
    pasted_any = 0
    for image, f, b, r in zip(images, full, box, rle):
        count = len(f["class_ids"])
        assert count > 0
        for key in ("rois", "class_ids", "scores"):
            np.testing.assert_array_equal(b[key], f[key])
            np.testing.assert_array_equal(r[key], f[key])
        assert b["masks"].shape == (count, mh, mw) and b["masks"].dtype == np.float32
        assert 0 <= b["masks"].min() and b["masks"].max() <= 1
        np.testing.assert_array_equal(utils.paste_masks(b["masks"], b["rois"], image.shape),
                                      f["masks"])
        assert len(r["masks"]) == count
        json.dumps(r["masks"])
        for i, encoded in enumerate(r["masks"]):
            assert encoded["size"] == list(image.shape[:2])
            decoded = mask_utils.decode(encoded).astype(bool)
            np.testing.assert_array_equal(decoded, f["masks"][..., i])
            pasted_any += int(decoded.any())
    assert pasted_any > 0    # the comparison saw non-empty masks


def test_box_and_rle_never_make_the_full_stack(model, monkeypatch):
    images = _images()[:1]
    expected = model.detect(images, mask_format="box")

    def refuse(*args, **kwargs):
        raise AssertionError("a full [H, W, N] stack was made")

    monkeypatch.setattr(utils, "paste_masks", refuse)
    monkeypatch.setattr(inference, "paste_masks", refuse)
    monkeypatch.setattr(utils, "_zeros_paged", refuse)
    box = model.detect(images, mask_format="box")[0]
    np.testing.assert_array_equal(box["masks"], expected[0]["masks"])
    assert len(model.detect(images, mask_format="rle")[0]["masks"]) == len(box["rois"])
    with pytest.raises(AssertionError, match="full"):
        model.detect(images)


def test_detect_molded_takes_the_mask_format(model):
    images = _images()[1:2]
    molded, metas, _ = model.mold_inputs(images)
    full = model.detect_molded(molded, metas)[0]
    box = model.detect_molded(molded, metas, mask_format="box")[0]
    np.testing.assert_array_equal(box["rois"], full["rois"])
    np.testing.assert_array_equal(
        utils.paste_masks(box["masks"], box["rois"], images[0].shape), full["masks"])


def test_an_unknown_mask_format_is_refused_before_the_graph(model, monkeypatch):
    monkeypatch.setattr(model, "_predict", None)   # the graph must not be reached
    for call in (lambda: model.detect(_images()[:1], mask_format="polygon"),
                 lambda: model.detect_molded(np.zeros((1, 64, 64, 3), np.float32),
                                             np.zeros((1, TinyConfig().IMAGE_META_SIZE)),
                                             mask_format="bool")):
        with pytest.raises(ValueError, match="mask_format must be one of 'full', 'box', 'rle'"):
            call()

"""Dataset: class and image registry, lookup tables, image loading."""
import logging

import numpy as np
import pytest
import skimage.io
from PIL import Image

from mrcnn.dataset import Dataset


@pytest.fixture
def two_sources():
    """Classes from "coco" and "voc" (one repeated), three images; prepared."""
    ds = Dataset()
    ds.add_class("coco", 1, "person")
    ds.add_class("coco", 12, "stop sign, traffic sign")
    ds.add_class("voc", 3, "bird")
    ds.add_class("coco", 12, "ignored: already registered")
    ds.add_class("voc", 7, "car")
    ds.add_image("coco", image_id=139, path="a.jpg", width=640, height=480)
    ds.add_image("voc", image_id="2007_000027", path="b.jpg")
    ds.add_image("coco", image_id=285, path="c.jpg", annotations=[1, 2])
    ds.prepare()
    return ds


def test_prepare_numbers(two_sources):
    ds = two_sources
    assert ds.num_classes == 5
    assert ds.class_info[0] == {"source": "", "id": 0, "name": "BG"}
    np.testing.assert_array_equal(ds.class_ids, [0, 1, 2, 3, 4])
    assert ds.class_names == ["BG", "person", "stop sign", "bird", "car"]
    assert ds.num_images == 3
    np.testing.assert_array_equal(ds.image_ids, [0, 1, 2])
    assert ds.class_from_source_map == {".0": 0, "coco.1": 1, "coco.12": 2, "voc.3": 3, "voc.7": 4}
    assert ds.image_from_source_map == {"coco.139": 0, "voc.2007_000027": 1, "coco.285": 2}
    assert ds.sources == ["", "coco", "voc"]
    assert ds.source_class_ids == {"": [0], "coco": [0, 1, 2], "voc": [0, 3, 4]}
    assert ds.image_info[0] == {"id": 139, "source": "coco", "path": "a.jpg", "width": 640, "height": 480}
    assert ds.image_info[2]["annotations"] == [1, 2]
    assert ds.source_image_link(1) == "b.jpg"
    assert ds.image_reference(0) == ""


def test_source_class_lookups(two_sources):
    ds = two_sources
    assert ds.map_source_class_id("coco.12") == 2
    assert ds.map_source_class_id("voc.7") == 4
    assert ds.get_source_class_id(2, "coco") == 12
    assert ds.get_source_class_id(3, "voc") == 3
    with pytest.raises(ValueError, match="voc"):
        ds.get_source_class_id(3, "coco")
    with pytest.raises(KeyError, match="coco.99"):
        ds.map_source_class_id("coco.99")


def test_add_class_rejects_dot_in_source():
    with pytest.raises(ValueError, match="dot"):
        Dataset().add_class("my.source", 1, "thing")


def test_image_ids_empty_before_prepare():
    ds = Dataset()
    ds.add_image("x", 0, "p.png")
    assert len(ds.image_ids) == 0
    ds.prepare()
    np.testing.assert_array_equal(ds.image_ids, [0])


def test_unknown_image_id_error_names_id(two_sources):
    with pytest.raises(IndexError, match="7"):
        two_sources.load_image(7)
    with pytest.raises(IndexError, match="-1"):
        two_sources.source_image_link(-1)
    with pytest.raises(TypeError, match="139"):
        two_sources.load_image("139")


def _dataset_with(path):
    ds = Dataset()
    ds.add_image("files", image_id="img", path=str(path))
    ds.prepare()
    return ds


def test_load_image_grey_to_rgb(tmp_path):
    grey = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    path = tmp_path / "grey.png"
    skimage.io.imsave(path, grey, check_contrast=False)
    image = _dataset_with(path).load_image(0)
    assert image.dtype == np.uint8 and image.shape == (12, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], grey)


def test_load_image_drops_alpha(tmp_path):
    rng = np.random.RandomState(0)
    rgba = rng.randint(0, 256, (9, 7, 4)).astype(np.uint8)
    rgba[..., 3] = rng.randint(0, 256, (9, 7))  # varying alpha must not change the colours
    path = tmp_path / "rgba.png"
    skimage.io.imsave(path, rgba, check_contrast=False)
    image = _dataset_with(path).load_image(0)
    assert image.dtype == np.uint8 and image.shape == (9, 7, 3)
    np.testing.assert_array_equal(image, rgba[..., :3])


def test_load_image_grey_alpha_to_rgb(tmp_path):
    grey_alpha = np.zeros((6, 5, 2), np.uint8)
    grey_alpha[..., 0] = np.arange(30).reshape(6, 5) * 8
    grey_alpha[..., 1] = 128
    path = tmp_path / "grey_alpha.png"
    Image.fromarray(grey_alpha).save(path)  # an "LA" PNG
    image = _dataset_with(path).load_image(0)
    assert image.shape == (6, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], grey_alpha[..., 0])


def test_load_image_rgb_round_trip(tmp_path):
    rgb = np.random.RandomState(1).randint(0, 256, (5, 6, 3)).astype(np.uint8)
    path = tmp_path / "rgb.png"
    skimage.io.imsave(path, rgb, check_contrast=False)
    np.testing.assert_array_equal(_dataset_with(path).load_image(0), rgb)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio probing its plugins
def test_unreadable_file_error_names_id_and_path(tmp_path):
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"this is not a PNG")
    with pytest.raises(OSError) as err:
        _dataset_with(bad).load_image(0)
    assert "image 0" in str(err.value) and str(bad) in str(err.value)

    missing = tmp_path / "missing.jpg"
    with pytest.raises(OSError) as err:
        _dataset_with(missing).load_image(0)
    assert "image 0" in str(err.value) and str(missing) in str(err.value)


def test_default_load_mask_is_empty_and_warns(caplog):
    ds = Dataset()
    ds.add_image("x", 0, "p.png")
    ds.prepare()
    with caplog.at_level(logging.WARNING):
        mask, class_ids = ds.load_mask(0)
    assert mask.shape == (0, 0, 0) and mask.dtype == bool
    assert class_ids.shape == (0,) and class_ids.dtype == np.int32
    assert "default load_mask()" in caplog.text

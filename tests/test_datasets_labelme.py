"""LabelMeDataset on folders of labelme JSON files written by the tests: shapes against
independent rasterisations, group ids, image paths and embedded images, errors."""
import base64
import io
import json
import warnings

import numpy as np
import pytest
import skimage.draw
from PIL import Image
from pycocotools import mask as mask_utils

from mrcnn.datasets import AnnotationError, AnnotationWarning, LabelMeDataset

H, W = 50, 70
CAT = [[5.5, 4.0], [30.2, 6.5], [25.0, 28.7], [7.1, 22.0]]
CAT_PART_1 = [[40.0, 30.0], [55.0, 30.0], [48.0, 45.0]]
BIRD = [[12.0, 14.0], [60.0, 18.5], [40.0, 44.0]]


def _pixels(seed, height=H, width=W):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png_base64(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _shape(label, points, shape_type="polygon", group_id=None, mask=None):
    return {"label": label, "points": points, "group_id": group_id, "description": "",
            "shape_type": shape_type, "flags": {}, "mask": mask}


def _labelme(shapes, image_path, image_data=None, height=H, width=W):
    """A file as labelme 5 saves it."""
    return {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image_path,
            "imageData": image_data, "imageHeight": height, "imageWidth": width}


def _mask_bitmap():
    bitmap = np.zeros((6, 10), dtype=np.uint8)
    bitmap[1:5, 2:9] = 1
    bitmap[0, 0] = 1
    return bitmap


def _folder(tmp_path):
    folder = tmp_path / "annotations"
    folder.mkdir()
    (tmp_path / "imgs").mkdir()
    Image.fromarray(_pixels(0)).save(folder / "a.png")
    Image.fromarray(_pixels(1)).save(tmp_path / "imgs" / "b.png")
    files = {
        "a.json": _labelme([
            _shape("cat", CAT),
            _shape("cat", CAT_PART_1, group_id=1),
            _shape("cat", [[58.0, 2.0], [68.0, 12.0]], "rectangle", group_id=1),
            _shape("dog", [[60.0, 40.0], [20.0, 10.0]], "rectangle"),
            _shape("dog", [[35.4, 25.2], [35.4 + 6.0, 25.2 + 8.0]], "circle"),   # r = 10
            _shape("cat", [[1.0, 1.0], [20.0, 20.0]], "line"),
        ], "a.png"),
        "b.json": _labelme([_shape("bird", BIRD)], "..\\imgs\\b.png"),
        "c.json": _labelme([
            _shape("bird", [[10.0, 12.0], [19.0, 17.0]], "mask",
                   mask=_png_base64(_mask_bitmap() * 255)),
        ], "not_here.png", image_data=_png_base64(_pixels(2))),
        "d.json": _labelme([], "a.png"),
    }
    for name, data in files.items():
        (folder / name).write_text(json.dumps(data))
    return folder


def _polygon_mask(points):
    flat = np.asarray(points, dtype=float).ravel().tolist()
    return mask_utils.decode(mask_utils.frPyObjects([flat], H, W))[:, :, 0] > 0


def _centre_rule(points):
    points = np.asarray(points)
    mask = np.zeros((H, W), dtype=bool)
    rr, cc = skimage.draw.polygon(points[:, 1] - 0.5, points[:, 0] - 0.5, shape=(H, W))
    mask[rr, cc] = True
    return mask


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.fixture
def dataset(tmp_path):
    with pytest.warns(AnnotationWarning, match="skipped 1 shape"):
        return LabelMeDataset(_folder(tmp_path))


def test_classes_images_and_paths(dataset, tmp_path):
    assert dataset.class_names == ["BG", "bird", "cat", "dog"]
    assert [info["id"] for info in dataset.image_info] == ["a", "b", "c", "d"]
    assert dataset.image_info[1]["path"] == str(tmp_path / "imgs" / "b.png")  # "..\\imgs"
    np.testing.assert_array_equal(dataset.load_image(1), _pixels(1))
    assert dataset.image_info[2]["embedded"]
    np.testing.assert_array_equal(dataset.load_image(2), _pixels(2))          # imageData


def test_shapes_and_group_ids(dataset):
    masks, class_ids = dataset.load_mask(0)
    # cat, cat (group 1: polygon + rectangle), dog rectangle, dog circle; the line skipped.
    assert masks.shape == (H, W, 4) and class_ids.tolist() == [2, 2, 3, 3]
    np.testing.assert_array_equal(masks[..., 0], _polygon_mask(CAT))
    assert _iou(masks[..., 0], _centre_rule(CAT)) >= 0.97                 # measured 0.993
    group = _polygon_mask(CAT_PART_1)
    group[2:12, 58:68] = True
    np.testing.assert_array_equal(masks[..., 1], group)
    box = np.zeros((H, W), dtype=bool)
    box[10:40, 20:60] = True                        # corners given bottom-right first
    np.testing.assert_array_equal(masks[..., 2], box)
    disk = np.zeros((H, W), dtype=bool)
    rr, cc = skimage.draw.disk((25.2 - 0.5, 35.4 - 0.5), 10.0, shape=(H, W))
    disk[rr, cc] = True
    np.testing.assert_array_equal(masks[..., 3], disk)


def test_mask_shape_and_empty_file(dataset):
    masks, class_ids = dataset.load_mask(2)
    assert class_ids.tolist() == [1]
    expected = np.zeros((H, W), dtype=bool)
    expected[12:18, 10:20] = _mask_bitmap() > 0     # top-left at the first corner
    np.testing.assert_array_equal(masks[..., 0], expected)
    masks, class_ids = dataset.load_mask(3)
    assert masks.shape == (H, W, 0) and class_ids.shape == (0,)
    masks, _ = dataset.load_mask(1)
    assert _iou(masks[..., 0], _centre_rule(BIRD)) >= 0.97                # measured 0.991


def _write_one(tmp_path, data, name="x.json", sub="one"):
    folder = tmp_path / sub
    folder.mkdir()
    Image.fromarray(_pixels(0)).save(folder / "a.png")
    (folder / name).write_text(json.dumps(data))
    return folder


def test_polygon_of_two_points_names_file_and_shape(tmp_path):
    folder = _write_one(tmp_path, _labelme([_shape("cat", CAT),
                                            _shape("cat", [[1, 1], [5, 5]])], "a.png"))
    with pytest.raises(AnnotationError, match=r"x\.json: shape 1 'cat': the polygon has 2 "
                                              r"point\(s\); a polygon needs at least 3"):
        LabelMeDataset(folder)


def test_missing_image_and_wrong_size(tmp_path):
    folder = _write_one(tmp_path, _labelme([_shape("cat", CAT)], "gone.png"), "gone.json")
    with pytest.raises(AnnotationError, match=r"gone\.json: the image file .*gone\.png.* "
                                              r"does not exist and the file embeds no"):
        LabelMeDataset(folder)
    folder = _write_one(tmp_path, _labelme([_shape("cat", CAT)], "a.png", height=2 * H),
                        "big.json", sub="two")
    with pytest.raises(AnnotationError, match=r"big\.json: image: imageHeight x imageWidth "
                                              r"is 100x70 but the image is 50x70"):
        LabelMeDataset(folder)


def test_far_outside_and_unknown_label(tmp_path):
    folder = _write_one(tmp_path, _labelme([_shape("cat", [[p[0] * 3, p[1]] for p in CAT])],
                                           "a.png"), "far.json")
    with pytest.raises(AnnotationError, match=r"far\.json: shape 0 'cat': point .* far "
                                              r"outside the 70x50"):
        LabelMeDataset(folder)
    folder = _write_one(tmp_path, _labelme([_shape("cat", CAT)], "a.png"), "label.json",
                        sub="two")
    with pytest.raises(AnnotationError, match=r"label\.json: shape 0 'cat': label 'cat' is "
                                              r"not one of \['dog'\]"):
        LabelMeDataset(folder, class_names=["dog"])


def test_slightly_outside_warns_once_per_folder(tmp_path):
    folder = _write_one(tmp_path, _labelme([_shape("cat", [[-2, -1], [20, -1], [20, 10]]),
                                            _shape("cat", [[60, 40], [71.5, 40], [71.5, 51]])],
                                           "a.png"))
    with pytest.warns(AnnotationWarning) as record:
        dataset = LabelMeDataset(folder)
    messages = [str(w.message) for w in record if issubclass(w.category, AnnotationWarning)]
    assert len(messages) == 1 and "2 annotation(s) reach outside" in messages[0]
    masks, _ = dataset.load_mask(0)
    np.testing.assert_array_equal(masks[..., 1], _polygon_mask([[60, 40], [71.5, 40],
                                                                [71.5, 51]]))
    # Cut at the border, not moved onto it: the hypotenuse passes y = 49.09 at the centre
    # of column 69, so row 49 is out; clamping the vertices to (70, 50) would put it in.
    assert masks[48, 69, 1] and not masks[49, 69, 1]
    assert _iou(masks[..., 1], _centre_rule([[60, 40], [71.5, 40], [71.5, 51]])) >= 0.97


def test_well_formed_folder_loads_without_warnings(tmp_path):
    folder = _write_one(tmp_path, _labelme([_shape("cat", CAT)], "a.png"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LabelMeDataset(folder)

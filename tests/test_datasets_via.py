"""ViaDataset on VIA 2.x project files and exports written by the tests: every region
shape against an independent rasterisation, classes from a region attribute, errors."""
import json
import math
import warnings

import numpy as np
import pytest
import skimage.draw
from PIL import Image
from pycocotools import mask as mask_utils

from mrcnn.datasets import AnnotationError, AnnotationWarning, ViaDataset

H, W = 64, 96
POLYGON_X, POLYGON_Y = [10, 40, 35, 12], [8, 10, 40, 33]
POLYLINE_X, POLYLINE_Y = [50, 90, 70], [5, 20, 45]


def _write_image(path, height=H, width=W):
    Image.fromarray(np.full((height, width, 3), 90, dtype=np.uint8)).save(path)


def _region(shape, **attributes):
    return {"shape_attributes": shape, "region_attributes": attributes}


def _metadata():
    """_via_img_metadata: file name + size keys, as VIA writes them."""
    a_regions = [
        _region({"name": "polygon", "all_points_x": POLYGON_X, "all_points_y": POLYGON_Y},
                **{"class": "cat"}),
        _region({"name": "rect", "x": 60, "y": 30, "width": 20, "height": 15},
                **{"class": "dog"}),
        _region({"name": "polyline", "all_points_x": POLYLINE_X,
                 "all_points_y": POLYLINE_Y}, **{"class": "dog"}),
    ]
    b_regions = [
        _region({"name": "circle", "cx": 40.3, "cy": 30.7, "r": 12.4}, **{"class": "bird"}),
        _region({"name": "ellipse", "cx": 70.2, "cy": 35.6, "rx": 18.5, "ry": 7.3,
                 "theta": 0.6}, **{"class": "cat"}),
    ]
    return {
        "a.png1111": {"filename": "a.png", "size": 1111, "regions": a_regions,
                      "file_attributes": {}},
        "b.png2222": {"filename": "b.png", "size": 2222, "regions": b_regions,
                      "file_attributes": {}},
        "c.png3333": {"filename": "c.png", "size": 3333, "regions": [], "file_attributes": {}},
    }


def _project(metadata):
    """A VIA 2.x project file around the metadata."""
    return {
        "_via_settings": {"ui": {"annotation_editor_height": 25},
                          "core": {"buffer_size": 18, "filepath": {}, "default_filepath": ""},
                          "project": {"name": "test"}},
        "_via_img_metadata": metadata,
        "_via_attributes": {
            "region": {"class": {"type": "dropdown", "description": "",
                                 "options": {"dog": "", "cat": "", "bird": "", "fish": ""},
                                 "default_options": {}}},
            "file": {}},
        "_via_data_format_version": "2.0.10",
        "_via_image_id_list": list(metadata),
    }


def _write(folder, data, name="via_project.json"):
    for record in (data.get("_via_img_metadata") or data).values():
        if not (folder / record["filename"]).exists():
            _write_image(folder / record["filename"])
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def _centre_rule_polygon(xs, ys):
    """Pixels whose centre (c + 0.5, r + 0.5) is inside, by skimage (centres on integers)."""
    mask = np.zeros((H, W), dtype=bool)
    rr, cc = skimage.draw.polygon(np.asarray(ys) - 0.5, np.asarray(xs) - 0.5, shape=(H, W))
    mask[rr, cc] = True
    return mask


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.fixture
def project(tmp_path):
    return _write(tmp_path, _project(_metadata()))


def test_classes_follow_the_attribute_options(project):
    dataset = ViaDataset(project)
    assert dataset.class_names == ["BG", "dog", "cat", "bird", "fish"]
    assert [info["id"] for info in dataset.image_info] == ["a.png", "b.png", "c.png"]
    assert (dataset.image_info[0]["height"], dataset.image_info[0]["width"]) == (H, W)


def test_polygon_rect_and_polyline(project):
    masks, class_ids = ViaDataset(project).load_mask(0)
    assert masks.shape == (H, W, 3) and class_ids.tolist() == [2, 1, 1]
    flat = np.stack([POLYGON_X, POLYGON_Y], axis=1).ravel().astype(float).tolist()
    exact = mask_utils.decode(mask_utils.frPyObjects([flat], H, W))[:, :, 0] > 0
    np.testing.assert_array_equal(masks[..., 0], exact)         # the same rasteriser
    # Measured IoU 0.999 with the centre rule (0.928 with upstream's unshifted skimage).
    assert _iou(masks[..., 0], _centre_rule_polygon(POLYGON_X, POLYGON_Y)) >= 0.97
    rect = np.zeros((H, W), dtype=bool)
    rect[30:45, 60:80] = True                                   # 20 wide, 15 high
    np.testing.assert_array_equal(masks[..., 1], rect)
    # A polyline is closed into a polygon (measured IoU 1.000).
    assert _iou(masks[..., 2], _centre_rule_polygon(POLYLINE_X, POLYLINE_Y)) >= 0.97


def test_circle_and_rotated_ellipse(project):
    masks, class_ids = ViaDataset(project).load_mask(1)
    assert class_ids.tolist() == [3, 2]
    disk = np.zeros((H, W), dtype=bool)
    rr, cc = skimage.draw.disk((30.7 - 0.5, 40.3 - 0.5), 12.4, shape=(H, W))
    disk[rr, cc] = True
    np.testing.assert_array_equal(masks[..., 0], disk)
    # The ellipse as a 720-gon, drawn as an HTML canvas rotates: theta from +x towards +y.
    t = np.linspace(0, 2 * math.pi, 720, endpoint=False)
    xs = 70.2 + 18.5 * np.cos(t) * math.cos(0.6) - 7.3 * np.sin(t) * math.sin(0.6)
    ys = 35.6 + 18.5 * np.cos(t) * math.sin(0.6) + 7.3 * np.sin(t) * math.cos(0.6)
    assert _iou(masks[..., 1], _centre_rule_polygon(xs, ys)) >= 0.98   # measured 1.000
    mirrored = _centre_rule_polygon(xs, 2 * 35.6 - ys)                  # theta = -0.6
    assert _iou(masks[..., 1], mirrored) < 0.6                         # measured 0.335


def test_image_without_regions_is_kept_empty(project):
    masks, class_ids = ViaDataset(project).load_mask(2)
    assert masks.shape == (H, W, 0) and class_ids.shape == (0,)


def test_exported_json_gives_the_same_masks(project, tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    plain = ViaDataset(_write(export, _metadata(), "via_export.json"))
    full = ViaDataset(project)
    assert plain.class_names == ["BG", "bird", "cat", "dog"]   # no options: found, sorted
    for image_id in full.image_ids:
        ours, ours_ids = plain.load_mask(image_id)
        theirs, their_ids = full.load_mask(image_id)
        np.testing.assert_array_equal(ours, theirs)
        assert [plain.class_names[i] for i in ours_ids] == \
            [full.class_names[i] for i in their_ids]


def test_via1_region_dict_and_checkbox_attribute(tmp_path):
    metadata = _metadata()
    regions = metadata["a.png1111"]["regions"]
    regions[0]["region_attributes"] = {"class": {"cat": True, "dog": False}}
    metadata["a.png1111"]["regions"] = {str(k): r for k, r in enumerate(regions)}
    dataset = ViaDataset(_write(tmp_path, metadata, "via1.json"))
    _, class_ids = dataset.load_mask(0)
    assert [dataset.class_names[i] for i in class_ids] == ["cat", "dog", "dog"]


def test_class_names_and_default_class(tmp_path):
    metadata = _metadata()
    metadata["a.png1111"]["regions"][1]["region_attributes"] = {}
    path = _write(tmp_path, metadata, "no_class.json")
    with pytest.raises(AnnotationError, match=r"no_class\.json: region 1 of 'a\.png': the "
                                              r"region has no 'class' attribute"):
        ViaDataset(path)
    dataset = ViaDataset(path, default_class="fish", class_names=["cat", "dog", "bird", "fish"])
    assert dataset.class_names == ["BG", "cat", "dog", "bird", "fish"]
    _, class_ids = dataset.load_mask(0)
    assert class_ids.tolist() == [1, 4, 2]
    one_class = ViaDataset(path, class_attribute=None, default_class="thing")
    assert one_class.class_names == ["BG", "thing"]
    assert one_class.load_mask(1)[1].tolist() == [1, 1]


def test_bad_regions_name_file_and_region(tmp_path):
    metadata = _metadata()
    metadata["b.png2222"]["regions"].append(
        _region({"name": "polygon", "all_points_x": [1, 5], "all_points_y": [1, 5]},
                **{"class": "cat"}))
    with pytest.raises(AnnotationError, match=r"short\.json: region 2 of 'b\.png': the "
                                              r"polygon has 2 point\(s\)"):
        ViaDataset(_write(tmp_path, metadata, "short.json"))
    metadata = _metadata()
    metadata["a.png1111"]["regions"][0]["region_attributes"] = {"class": "horse"}
    with pytest.raises(AnnotationError, match=r"region 0 of 'a\.png': class 'horse' is not "
                                              r"one of \['dog', 'cat', 'bird', 'fish'\]"):
        ViaDataset(_write(tmp_path, _project(metadata), "horse.json"))
    metadata = _metadata()
    metadata["b.png2222"]["regions"][0]["shape_attributes"]["cx"] = 300
    with pytest.raises(AnnotationError, match="region 0 of 'b.png': point .*far outside"):
        ViaDataset(_write(tmp_path, metadata, "far.json"))
    metadata = _metadata()
    metadata["b.png2222"]["regions"][1]["shape_attributes"]["name"] = "spline"
    with pytest.raises(AnnotationError, match="region 1 of 'b.png': unsupported region "
                                              "shape 'spline'"):
        ViaDataset(_write(tmp_path, metadata, "spline.json"))


def test_missing_image_file(project, tmp_path):
    (tmp_path / "b.png").unlink()
    with pytest.raises(AnnotationError, match=r"via_project\.json: image 'b\.png': the image "
                                              r"file .*b\.png.* does not exist"):
        ViaDataset(project)


def test_points_are_skipped_with_one_warning(tmp_path):
    metadata = _metadata()
    for record in metadata.values():
        record["regions"].append(_region({"name": "point", "cx": 5, "cy": 5},
                                         **{"class": "cat"}))
    with pytest.warns(AnnotationWarning) as record:
        dataset = ViaDataset(_write(tmp_path, metadata, "points.json"))
    messages = [str(w.message) for w in record if issubclass(w.category, AnnotationWarning)]
    assert len(messages) == 1 and "skipped 3 region(s) without area" in messages[0]
    assert len(dataset.load_mask(0)[1]) == 3


def test_well_formed_project_loads_without_warnings(project):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ViaDataset(project)

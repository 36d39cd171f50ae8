"""CocoDataset on small COCO instance files written by the tests: masks checked against
pycocotools and skimage, ids, filters and the errors that name the annotation."""
import json
import pickle
import warnings

import numpy as np
import pytest
import skimage.draw
from PIL import Image
from pycocotools import mask as mask_utils

from mrcnn.datasets import AnnotationError, AnnotationWarning, CocoDataset
from mrcnn.validate import DatasetError

H, W = 60, 80
# Two polygons of one "cat" instance (COCO flat lists, corner frame).
CAT_POLYGONS = [[10.3, 5.2, 30.8, 7.1, 26.4, 25.9, 8.2, 21.7],
                [45.5, 30.5, 60.2, 33.0, 55.0, 50.4]]
DOG_POLYGON = [20.0, 10.0, 70.5, 12.2, 66.1, 44.8, 30.3, 52.0, 15.6, 35.5]


def _write_image(path, height=H, width=W, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _dog_mask():
    """A hand-drawn mask: a block and a separate bar."""
    mask = np.zeros((H, W), dtype=bool)
    mask[40:55, 5:25] = True
    mask[2:6, 60:78] = True
    return mask


def _bird_mask():
    mask = np.zeros((H, W), dtype=bool)
    mask[30:60, 50:80] = True
    return mask


def _uncompressed_rle(mask):
    """COCO's crowd format by hand: run lengths in column-major order, zeros first."""
    flat = mask.T.ravel().astype(np.uint8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return {"counts": ([0] + counts) if flat[0] else counts, "size": [H, W]}


def _compressed_rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [H, W], "counts": rle["counts"].decode("ascii")}


def _coco_file():
    return {
        "info": {"description": "test"}, "licenses": [],
        "images": [{"id": 10, "file_name": "a.png", "height": H, "width": W},
                   {"id": 20, "file_name": "b.png", "height": H, "width": W},
                   {"id": 30, "file_name": "sub/c.png", "height": H, "width": W}],
        "categories": [{"id": 7, "name": "dog", "supercategory": "animal"},
                       {"id": 3, "name": "cat", "supercategory": "animal"},
                       {"id": 12, "name": "bird", "supercategory": "animal"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 3, "iscrowd": 0, "area": 0,
             "bbox": [8, 5, 52, 45], "segmentation": CAT_POLYGONS},
            {"id": 2, "image_id": 10, "category_id": 7, "iscrowd": 0, "area": 0,
             "bbox": [5, 2, 73, 53], "segmentation": _compressed_rle(_dog_mask())},
            {"id": 3, "image_id": 10, "category_id": 12, "iscrowd": 1, "area": 0,
             "bbox": [50, 30, 30, 30], "segmentation": _uncompressed_rle(_bird_mask())},
            {"id": 4, "image_id": 30, "category_id": 7, "iscrowd": 0, "area": 0,
             "bbox": [15, 10, 55, 42], "segmentation": [DOG_POLYGON]},
        ],
    }


def _write(folder, data, name="instances.json"):
    (folder / "sub").mkdir(exist_ok=True)
    for i, record in enumerate(data["images"]):
        path = folder / record["file_name"]
        if not path.exists():
            _write_image(path, record["height"], record["width"], seed=i)
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def _pycocotools_mask(polygons):
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, H, W))) > 0


def _centre_rule_mask(polygons):
    """Pixels whose centre (c + 0.5, r + 0.5) lies inside: skimage's rasteriser, which
    puts pixel centres on integers, on the polygons shifted by half a pixel."""
    mask = np.zeros((H, W), dtype=bool)
    for polygon in polygons:
        xs, ys = np.array(polygon[0::2]), np.array(polygon[1::2])
        rr, cc = skimage.draw.polygon(ys - 0.5, xs - 0.5, shape=(H, W))
        mask[rr, cc] = True
    return mask


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.fixture
def coco_json(tmp_path):
    return _write(tmp_path, _coco_file())


def test_classes_are_categories_in_id_order_with_the_mapping_both_ways(coco_json):
    dataset = CocoDataset(coco_json)
    assert dataset.class_names == ["BG", "cat", "dog", "bird"]        # ids 3, 7, 12
    assert dataset.category_to_class == {3: 1, 7: 2, 12: 3}
    assert dataset.class_to_category == {1: 3, 2: 7, 3: 12}
    assert dataset.map_source_class_id("coco.12") == 3
    assert dataset.get_source_class_id(2, "coco") == 7
    assert [info["id"] for info in dataset.image_info] == [10, 20, 30]
    assert dataset.image_info[2]["path"] == str(coco_json.parent / "sub" / "c.png")


def test_polygons_rle_and_crowd_masks(coco_json):
    dataset = CocoDataset(coco_json)
    masks, class_ids = dataset.load_mask(0)
    assert masks.dtype == bool and masks.shape == (H, W, 3)
    assert class_ids.dtype == np.int32 and class_ids.tolist() == [1, 2, -3]  # crowd < 0
    # Several polygons of one instance: their union, exactly as pycocotools draws it.
    np.testing.assert_array_equal(masks[..., 0], _pycocotools_mask(CAT_POLYGONS))
    # ... which is the centre rule up to pycocotools' sub-pixel sampling (IoU 0.990).
    assert _iou(masks[..., 0], _centre_rule_mask(CAT_POLYGONS)) >= 0.97
    np.testing.assert_array_equal(masks[..., 1], _dog_mask())          # compressed RLE
    np.testing.assert_array_equal(masks[..., 2], _bird_mask())         # uncompressed RLE
    masks, class_ids = dataset.load_mask(2)
    assert class_ids.tolist() == [2]
    # measured 0.996; without the half-pixel shift (pixel centres on integers) 0.957
    assert _iou(masks[..., 0], _centre_rule_mask([DOG_POLYGON])) >= 0.97


def test_image_without_annotations_is_kept_with_no_instances(coco_json):
    dataset = CocoDataset(coco_json)
    masks, class_ids = dataset.load_mask(1)
    assert masks.shape == (H, W, 0) and masks.dtype == bool
    assert class_ids.shape == (0,) and class_ids.dtype == np.int32
    assert CocoDataset(coco_json, keep_empty_images=False).num_images == 2


def test_image_ids_and_class_names_filters(coco_json):
    subset = CocoDataset(coco_json, image_ids=[30, 10])
    assert [info["id"] for info in subset.image_info] == [30, 10]
    dogs = CocoDataset(coco_json, class_names=["dog"])
    assert dogs.class_names == ["BG", "dog"] and dogs.category_to_class == {7: 1}
    masks, class_ids = dogs.load_mask(0)
    assert class_ids.tolist() == [1]
    np.testing.assert_array_equal(masks[..., 0], _dog_mask())
    ordered = CocoDataset(coco_json, class_names=["bird", "cat"])
    assert ordered.class_names == ["BG", "bird", "cat"]
    assert ordered.category_to_class == {12: 1, 3: 2}


def test_a_dict_and_an_image_dir(coco_json, tmp_path):
    dataset = CocoDataset(json.loads(coco_json.read_text()), image_dir=tmp_path)
    assert dataset.num_images == 3
    np.testing.assert_array_equal(dataset.load_image(0), np.asarray(Image.open(tmp_path /
                                                                                "a.png")))


def _broken(tmp_path, change):
    data = _coco_file()
    change(data)
    return _write(tmp_path, data, "broken.json")


def test_polygon_of_two_points_names_file_and_annotation(tmp_path):
    def change(data):
        data["annotations"][3]["segmentation"] = [DOG_POLYGON, [1.0, 2.0, 3.0, 4.0]]
    path = _broken(tmp_path, change)
    with pytest.raises(AnnotationError) as error:
        CocoDataset(path)
    message = str(error.value)
    assert "broken.json" in message and "annotation 4" in message and "'sub/c.png'" in message
    assert "polygon 1 has 2 point(s)" in message
    assert isinstance(error.value, DatasetError)


def test_unknown_category_and_unknown_image(tmp_path):
    def category(data):
        data["annotations"][1]["category_id"] = 99
    with pytest.raises(AnnotationError, match=r"broken\.json: annotation 2 .*unknown "
                                              r"category id 99"):
        CocoDataset(_broken(tmp_path, category))

    def image(data):
        data["annotations"][0]["image_id"] = 77
    with pytest.raises(AnnotationError, match="annotation 1 .*unknown image id 77"):
        CocoDataset(_broken(tmp_path, image))


def test_missing_image_file(tmp_path):
    def change(data):
        data["images"].append({"id": 40, "file_name": "gone.png", "height": H, "width": W})
    path = _broken(tmp_path, change)
    (tmp_path / "gone.png").unlink()
    with pytest.raises(AnnotationError, match=r"broken\.json: image 40 'gone.png': the "
                                              r"image file .*gone\.png.* does not exist"):
        CocoDataset(path)


def test_coordinates_far_outside_are_an_error(tmp_path):
    def change(data):   # x up to 2x the width: made for another image size
        data["annotations"][3]["segmentation"] = [[x * 2 for x in DOG_POLYGON]]
    with pytest.raises(AnnotationError, match="annotation 4 .*far outside the 80x60"):
        CocoDataset(_broken(tmp_path, change))


def test_coordinates_slightly_outside_are_cut_off_with_one_warning(tmp_path):
    over = [-3.0, -2.0, 40.0, -2.5, 40.0, 20.0, -3.0, 20.0]     # 3 px left, 2.5 px above
    under = [70.0, 50.0, 83.5, 50.0, 83.5, 62.0, 70.0, 62.0]   # 3.5 px right, 2 px below

    def change(data):
        data["annotations"][3]["segmentation"] = [over]
        data["annotations"][0]["segmentation"] = [under]
    path = _broken(tmp_path, change)
    with pytest.warns(AnnotationWarning) as record:
        dataset = CocoDataset(path)
    ours = [w for w in record if issubclass(w.category, AnnotationWarning)]
    assert len(ours) == 1
    assert "broken.json: 2 annotation(s) reach outside their image by up to 3.5 px" in \
        str(ours[0].message)
    masks, _ = dataset.load_mask(2)
    expected = np.zeros((H, W), dtype=bool)
    expected[0:20, 0:40] = True                                 # the part inside
    np.testing.assert_array_equal(masks[..., 0], expected)
    masks, _ = dataset.load_mask(0)
    expected = np.zeros((H, W), dtype=bool)
    expected[50:60, 70:80] = True
    np.testing.assert_array_equal(masks[..., 0], expected)


def test_box_only_annotation_needs_boxes_as_masks(tmp_path):
    def change(data):
        data["annotations"][3]["segmentation"] = []
        data["annotations"][3]["bbox"] = [12, 8, 30, 20]        # x, y, w, h
    path = _broken(tmp_path, change)
    with pytest.raises(AnnotationError, match="annotation 4 .*no segmentation.*boxes_as_masks"):
        CocoDataset(path)
    masks, _ = CocoDataset(path, boxes_as_masks=True).load_mask(2)
    expected = np.zeros((H, W), dtype=bool)
    expected[8:28, 12:42] = True
    np.testing.assert_array_equal(masks[..., 0], expected)


def test_rle_of_another_size_is_an_error(tmp_path):
    def change(data):
        data["annotations"][1]["segmentation"]["size"] = [W, H]
    with pytest.raises(AnnotationError, match="annotation 2 .*RLE mask is 80x60 but the "
                                              "image is 60x80"):
        CocoDataset(_broken(tmp_path, change))


def test_class_name_not_in_the_file(coco_json):
    with pytest.raises(AnnotationError, match="class 'horse' is not a category"):
        CocoDataset(coco_json, class_names=["horse"])


def test_well_formed_file_loads_without_warnings(coco_json):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CocoDataset(coco_json)


def test_annotation_error_survives_pickling(tmp_path):
    """Worker processes send errors back pickled: the message and attributes stay."""
    def change(data):
        data["annotations"][1]["category_id"] = 99
    with pytest.raises(AnnotationError) as error:
        CocoDataset(_broken(tmp_path, change))
    again = pickle.loads(pickle.dumps(error.value))
    assert type(again) is AnnotationError and str(again) == str(error.value)
    assert (again.file, again.annotation) == (error.value.file, error.value.annotation)
    assert again.annotation == "annotation 2 (image 10 'a.png')"

"""COCO keypoints through CocoDataset, coco_results and dataset_to_coco: rows aligned with
load_mask, the names / skeleton / flip map, errors naming the annotation, the round trip,
and pycocotools' keypoint COCOeval on the files written (AP 1.0 on the ground truth, and
an OKS computed here by hand for a moved keypoint)."""
import contextlib
import copy
import io
import json
import math
import pickle
import warnings

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.config import Config
from mrcnn.datasets import (AnnotationError, AnnotationWarning, CocoDataset, coco_results,
                            dataset_to_coco, has_keypoints)
from mrcnn.keypoint_shapes import KeypointShapesDataset
from mrcnn.validate import load_checked_keypoints

import test_datasets_coco as coco_files

H, W = 40, 50
NAMES = ["nose", "left_eye", "right_eye"]
SIGMAS = np.array([0.1, 0.1, 0.1])


def _box(x1, y1, x2, y2):
    """A rectangle polygon: with COCO's pixel rule it covers rows y1..y2-1, columns x1..x2-1."""
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


def _crowd_rle():
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[30:40, 0:20] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [H, W], "counts": rle["counts"].decode("ascii")}


def _annotation(ann_id, image_id, category, segmentation, keypoints=None, crowd=0):
    record = {"id": ann_id, "image_id": image_id, "category_id": category, "iscrowd": crowd,
              "segmentation": segmentation, "area": 0, "bbox": [0, 0, 1, 1]}
    if keypoints is not None:
        record["keypoints"] = keypoints
    return record


def _keypoint_file():
    """Image 1: a person (2 labelled keypoints), a person covering no pixel (load_mask
    drops it), a ball (no keypoints in its category), a crowd of people (keypoints given,
    loaded unlabelled), a person without "keypoints", a person with one point outside the
    image. Image 2: nothing. Image 3: one person with 3 labelled keypoints."""
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W},
                   {"id": 2, "file_name": "b.png", "height": H, "width": W},
                   {"id": 3, "file_name": "c.png", "height": H, "width": W}],
        "categories": [{"id": 5, "name": "person", "keypoints": NAMES,
                        "skeleton": [[1, 2], [1, 3], [2, 3]]},
                       {"id": 2, "name": "ball"}],
        "annotations": [
            _annotation(11, 1, 5, _box(2, 3, 22, 33), [10, 5, 2, 8, 7, 1, 0, 0, 0]),
            _annotation(12, 1, 5, [[30.1, 30.1, 30.3, 30.1, 30.2, 30.3]],
                        [30, 30, 2, 31, 31, 2, 32, 32, 2]),
            _annotation(13, 1, 2, _box(30, 5, 45, 20)),
            _annotation(14, 1, 5, _crowd_rle(), [1, 35, 2, 2, 36, 2, 3, 37, 2], crowd=1),
            _annotation(15, 1, 5, _box(25, 22, 35, 30)),
            _annotation(16, 1, 5, _box(5, 20, 25, 38), [70, 10, 2, 12, 24, 2, 0, 0, 0]),
            _annotation(31, 3, 5, _box(10, 10, 40, 30), [20, 12, 2, 15, 14, 2, 25, 14, 1]),
        ]}


# load_mask's instances of image 1 (internal image 0), in order: 11, 13, 14 (crowd), 15, 16
# (12 covers no pixel). Classes: ball (category 2) = 1, person (category 5) = 2.
EXPECTED_CLASSES = [2, 1, -2, 2, 2]
EXPECTED_KEYPOINTS = np.array([
    [[10, 5, 2], [8, 7, 1], [0, 0, 0]],      # 11
    [[0, 0, 0], [0, 0, 0], [0, 0, 0]],       # 13 ball: its category names no keypoints
    [[0, 0, 0], [0, 0, 0], [0, 0, 0]],       # 14 crowd: unlabelled, as COCO's crowds
    [[0, 0, 0], [0, 0, 0], [0, 0, 0]],       # 15 no "keypoints" entry
    [[0, 0, 0], [12, 24, 2], [0, 0, 0]],     # 16 x = 70 lies outside the 50 px image
], dtype=np.float32)


def _load(data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnnotationWarning)
        return CocoDataset(copy.deepcopy(data), check_files=False, **kwargs)


@pytest.fixture
def dataset():
    return _load(_keypoint_file())


def _quiet(function, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def test_keypoints_are_aligned_with_load_mask(dataset):
    masks, class_ids = dataset.load_mask(0)
    assert class_ids.tolist() == EXPECTED_CLASSES
    assert masks[..., 0].sum() == 20 * 30           # annotation 11: columns 2..21, rows 3..32
    keypoints = dataset.load_keypoints(0)
    assert keypoints.dtype == np.float32 and keypoints.shape == (5, 3, 3)
    np.testing.assert_array_equal(keypoints, EXPECTED_KEYPOINTS)
    # Image 2 has no instances; image 3 one person.
    assert dataset.load_mask(1)[1].shape == (0,)
    assert dataset.load_keypoints(1).shape == (0, 3, 3)
    np.testing.assert_array_equal(dataset.load_keypoints(2),
                                  [[[20, 12, 2], [15, 14, 2], [25, 14, 1]]])
    # The training pipeline's check accepts them unchanged.
    np.testing.assert_array_equal(
        load_checked_keypoints(dataset, 0, (H, W), len(class_ids), 3), EXPECTED_KEYPOINTS)


def test_a_point_outside_the_image_is_unlabelled_with_one_warning():
    with pytest.warns(AnnotationWarning, match=r"1 labelled keypoint\(s\).*annotation 16"):
        CocoDataset(_keypoint_file(), check_files=False)


def test_names_skeleton_flip_map_and_config_settings(dataset):
    assert dataset.keypoint_names == tuple(NAMES) and dataset.num_keypoints == 3
    assert dataset.keypoint_skeleton == ((0, 1), (0, 2), (1, 2))    # JSON: 1-based
    assert dataset.keypoint_flip_map == (("left_eye", "right_eye"),)
    settings = dataset.keypoint_settings()
    assert settings == {"NUM_KEYPOINTS": 3, "KEYPOINT_NAMES": tuple(NAMES),
                        "KEYPOINT_FLIP_MAP": (("left_eye", "right_eye"),)}

    class PersonConfig(Config):
        NAME = "person"
        NUM_CLASSES = dataset.num_classes
    config = PersonConfig()
    for name, value in settings.items():
        setattr(config, name, value)
    config.validate(mode="training")
    assert config.NUM_KEYPOINTS == 3


def test_a_flip_map_is_inferred_only_from_left_and_right_prefixes():
    data = _keypoint_file()
    data["categories"][0]["keypoints"] = ["eye_l", "eye_r", "left_paw"]
    dataset = _load(data)
    assert dataset.keypoint_names == ("eye_l", "eye_r", "left_paw")
    assert dataset.keypoint_flip_map == ()          # no right_paw, no guessing of _l/_r
    assert dataset.keypoint_settings()["KEYPOINT_FLIP_MAP"] == ()


def test_split_and_pickle_keep_the_keypoints(dataset):
    train, val = dataset.split(1 / 3, seed=0)
    for part in (train, val, pickle.loads(pickle.dumps(dataset))):
        assert part.keypoint_names == tuple(NAMES)
        for image_id in part.image_ids:
            coco_id = part.image_info[image_id]["id"]
            original = [i for i in dataset.image_ids if dataset.image_info[i]["id"] == coco_id]
            np.testing.assert_array_equal(part.load_keypoints(image_id),
                                          dataset.load_keypoints(original[0]))


def test_class_names_keep_only_the_chosen_categories_keypoints():
    ball_only = _load(_keypoint_file(), class_names=["ball"])
    assert ball_only.num_keypoints == 0 and ball_only.keypoint_names is None
    with pytest.raises(NotImplementedError, match="load_keypoints"):
        ball_only.load_keypoints(0)
    person = _load(_keypoint_file(), class_names=["person"])
    np.testing.assert_array_equal(person.load_keypoints(0), EXPECTED_KEYPOINTS[[0, 2, 3, 4]])


def test_a_file_without_keypoints_behaves_as_before(tmp_path):
    path = coco_files._write(tmp_path, coco_files._coco_file())
    dataset = CocoDataset(path)
    assert dataset.num_keypoints == 0 and dataset.keypoint_names is None
    assert dataset.keypoint_skeleton == () and dataset.keypoint_flip_map == ()
    assert dataset.keypoint_settings() == {"NUM_KEYPOINTS": 0}
    assert not has_keypoints(dataset)
    with pytest.raises(NotImplementedError, match="load_keypoints"):
        dataset.load_keypoints(0)
    exported = dataset_to_coco(dataset)
    assert all("keypoints" not in c and "skeleton" not in c for c in exported["categories"])
    assert all("keypoints" not in a and "num_keypoints" not in a
               for a in exported["annotations"])


def _with(change):
    data = _keypoint_file()
    change(data)
    return data


def _set_keypoints(values, index=0):
    def change(data):
        data["annotations"][index]["keypoints"] = values
    return change


@pytest.mark.parametrize("change, expected", [
    (_set_keypoints([10, 5, 2, 8, 7, 1]), ["annotation 11 (image 1 'a.png')",
                                           "2 keypoints (6 values)", "names 3"]),
    (_set_keypoints([10, 5, 2, 8, 7, 1, 0, 0]), ["annotation 11", "8 values",
                                                 "not a multiple of 3"]),
    (_set_keypoints([10, 5, 2, 8, 7, 3, 0, 0, 0]), ["annotation 11", "visibilities [3.0]"]),
    (_set_keypoints([10, "a", 2, 8, 7, 1, 0, 0, 0]), ["annotation 11", "not numbers"]),
    (_set_keypoints([[10, 5, 2], [8, 7, 1], [0, 0, 0]]), ["annotation 11", "flat list"]),
    (_set_keypoints([math.nan, 5, 2, 8, 7, 1, 0, 0, 0]), ["annotation 11", "NaN"]),
    (_set_keypoints({"x": 1}, index=6), ["annotation 31 (image 3 'c.png')", "flat list"]),
    (lambda d: d["categories"][0].update(skeleton=[[1, 4]]),
     ["category 5 ('person')", "[1, 4]", "1-based"]),
    (lambda d: d["categories"][0].update(skeleton=[[0, 1]]), ["category 5", "1-based"]),
    (lambda d: d["categories"][0].update(keypoints=["a", "a", "b"]),
     ["category 5", "twice"]),
    (lambda d: d["categories"][1].update(keypoints=["x", "y", "z"]),
     ["category 2 ('ball')", "['x', 'y', 'z']", "one set of keypoints"]),
])
def test_malformed_keypoints_name_the_annotation(change, expected):
    with pytest.raises(AnnotationError) as raised:
        _load(_with(change))
    for text in expected:
        assert text in str(raised.value), (text, str(raised.value))


def test_keypoints_of_a_category_without_names_are_ignored_with_a_warning():
    data = _with(lambda d: d["annotations"][2].update(keypoints=[1, 2, 2]))   # the ball
    with pytest.warns(AnnotationWarning, match=r"1 annotation\(s\) carry 'keypoints'.*"
                                               r"annotation 13"):
        dataset = CocoDataset(data, check_files=False)
    np.testing.assert_array_equal(dataset.load_keypoints(0)[1], np.zeros((3, 3)))


def test_files_loaded_one_after_the_other_must_agree_on_the_keypoints():
    dataset = CocoDataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnnotationWarning)
        dataset.load_annotations(_keypoint_file(), check_files=False, image_ids=[1])
        other = _with(lambda d: d["categories"][0].update(keypoints=["a", "b", "c"]))
        with pytest.raises(AnnotationError, match="files loaded before"):
            dataset.load_annotations(other, check_files=False, image_ids=[3])


# --- export ------------------------------------------------------------------------------

def test_dataset_to_coco_writes_names_skeleton_keypoints_and_counts(dataset):
    exported = json.loads(json.dumps(dataset_to_coco(dataset)))
    for category in exported["categories"]:
        assert category["keypoints"] == NAMES
        assert category["skeleton"] == [[1, 2], [1, 3], [2, 3]]     # back to 1-based
    first = [a for a in exported["annotations"] if a["image_id"] == 1]
    assert len(first) == 5                                          # 12 has no pixel
    assert first[0]["keypoints"] == [10, 5, 2, 8, 7, 1, 0, 0, 0]
    assert [a["num_keypoints"] for a in first] == [2, 0, 0, 0, 1]
    assert [a["iscrowd"] for a in first] == [0, 0, 1, 0, 0]
    assert first[0]["area"] == 600.0 and first[0]["bbox"] == [2.0, 3.0, 20.0, 30.0]
    assert not has_keypoints(CocoDataset(dataset_to_coco(dataset, keypoints=False),
                                         check_files=False))


def test_round_trip_through_dataset_to_coco_gives_the_same_keypoints(dataset):
    again = CocoDataset(json.loads(json.dumps(dataset_to_coco(dataset))), check_files=False)
    assert again.keypoint_names == dataset.keypoint_names
    assert again.keypoint_skeleton == dataset.keypoint_skeleton
    for image_id in dataset.image_ids:
        np.testing.assert_array_equal(again.load_mask(image_id)[1],
                                      dataset.load_mask(image_id)[1])
        np.testing.assert_array_equal(again.load_keypoints(image_id),
                                      dataset.load_keypoints(image_id))


def test_round_trip_of_a_hand_written_keypoint_dataset():
    shapes = KeypointShapesDataset()
    shapes.load_triangles(3, 48, 64, seed=1)
    shapes.prepare()
    assert has_keypoints(shapes)
    exported = json.loads(json.dumps(dataset_to_coco(shapes, keypoint_names=["a", "b", "c"],
                                                      keypoint_skeleton=[(0, 1), (1, 2)])))
    assert exported["categories"][0]["skeleton"] == [[1, 2], [2, 3]]
    again = CocoDataset(exported, check_files=False)
    assert again.keypoint_names == ("a", "b", "c")
    assert again.keypoint_skeleton == ((0, 1), (1, 2))
    for image_id in shapes.image_ids:
        masks, class_ids = shapes.load_mask(image_id)
        expected = load_checked_keypoints(shapes, image_id, masks.shape, len(class_ids))
        assert expected[..., 2].sum() > 0
        np.testing.assert_allclose(again.load_keypoints(image_id), expected, atol=1e-4)


def _ground_truth_detections(dataset, image_id, keep=None):
    """A detect() dict of an image's non-crowd instances with labelled keypoints: boxes
    and masks of the ground truth, score 0.9, keypoint score 1 where labelled."""
    masks, class_ids = dataset.load_mask(image_id)
    points = dataset.load_keypoints(image_id)
    chosen = (class_ids > 0) & (points[..., 2] > 0).any(axis=1)
    masks, class_ids, points = masks[..., chosen], class_ids[chosen], points[chosen].copy()
    points[..., 2] = (points[..., 2] > 0).astype(np.float32)
    rois = []
    for k in range(masks.shape[2]):
        rows, cols = np.nonzero(masks[..., k])
        rois.append([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1])
    return {"rois": np.array(rois, dtype=np.int32).reshape(-1, 4), "class_ids": class_ids,
            "scores": np.full(len(class_ids), 0.9, dtype=np.float32), "masks": masks,
            "keypoints": points}


def test_coco_results_add_flat_keypoints_with_the_detection_score(dataset):
    result = _ground_truth_detections(dataset, 0)
    listed = coco_results([result], dataset, [0])
    assert len(listed) == 2                                  # annotations 11 and 16
    assert listed[0]["keypoints"] == [10.0, 5.0, 1.0, 8.0, 7.0, 1.0, 0.0, 0.0, 0.0]
    assert listed[0]["score"] == pytest.approx(0.9) and listed[0]["category_id"] == 5
    assert listed[0]["image_id"] == 1 and "segmentation" in listed[0]
    plain = dict(result)
    del plain["keypoints"]
    assert all("keypoints" not in r for r in coco_results([plain], dataset, [0]))
    with pytest.raises(ValueError, match="keypoint rows"):
        coco_results([dict(result, keypoints=result["keypoints"][:1])], dataset, [0])


def _keypoint_eval(ground_truth, results):
    """pycocotools' keypoint COCOeval of a ground-truth dict and a results list, both
    through JSON text as files would be."""
    gt = COCO()
    gt.dataset = json.loads(json.dumps(ground_truth))
    _quiet(gt.createIndex)
    dt = _quiet(gt.loadRes, json.loads(json.dumps(results)))
    evaluator = COCOeval(gt, dt, iouType="keypoints")
    evaluator.params.kpt_oks_sigmas = SIGMAS
    _quiet(evaluator.evaluate)
    _quiet(evaluator.accumulate)
    _quiet(evaluator.summarize)
    return evaluator


def test_cocoeval_keypoints_scores_the_ground_truth_as_results_ap_1(dataset):
    results = coco_results([_ground_truth_detections(dataset, i) for i in dataset.image_ids],
                           dataset, dataset.image_ids)
    assert len(results) == 3                                # 11, 16 and 31
    evaluator = _keypoint_eval(dataset_to_coco(dataset), results)
    assert evaluator.stats[0] == pytest.approx(1.0)         # AP OKS 0.50:0.95
    assert evaluator.stats[1] == pytest.approx(1.0)         # AP50
    assert evaluator.stats[5] == pytest.approx(1.0)         # AR


def test_cocoeval_keypoints_of_a_moved_keypoint_give_the_hand_worked_oks(dataset):
    """Image 3's person: area 30 x 20 = 600 mask pixels, 3 labelled keypoints; the
    detection's nose moves 3 px right. OKS = mean_i exp(-d_i^2 / (2 a (2 sigma)^2)) =
    (exp(-9 / (2 * 600 * 0.04)) + 1 + 1) / 3 = (exp(-0.1875) + 2) / 3 = 0.94301."""
    result = _ground_truth_detections(dataset, 2)
    result["keypoints"][0, 0, 0] += 3
    results = coco_results([result], dataset, [2])
    evaluator = _keypoint_eval(dataset_to_coco(dataset, image_ids=[2]), results)
    expected = (math.exp(-0.1875) + 2) / 3
    assert expected == pytest.approx(0.943010, abs=1e-6)
    oks = evaluator.ious[(3, 5)]
    assert oks.shape == (1, 1) and oks[0, 0] == pytest.approx(expected, abs=1e-9)
    # Matched at OKS thresholds 0.50 .. 0.90 (0.943 >= 0.90), missed at 0.95: AP = 9/10.
    assert evaluator.stats[0] == pytest.approx(0.9, abs=1e-9)
    assert evaluator.stats[2] == pytest.approx(1.0)          # AP75

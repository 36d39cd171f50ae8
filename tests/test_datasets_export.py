"""coco_results and dataset_to_coco: ids mapped back, pycocotools reads the output, and
CocoDataset(dataset_to_coco(d)) gives d's masks and classes back."""
import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.datasets import (CocoDataset, ViaDataset, coco_category_ids, coco_image_ids,
                            coco_results, dataset_to_coco)
from mrcnn.shapes import ShapesDataset

import test_datasets_coco as coco_files
import test_datasets_via as via_files


def _quiet(function, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def _ground_truth_as_detections(dataset, image_id):
    """A detect() dict holding an image's non-crowd ground truth, score 0.9."""
    masks, class_ids = dataset.load_mask(image_id)
    keep = class_ids > 0
    masks, class_ids = masks[..., keep], class_ids[keep]
    rois = []
    for k in range(masks.shape[2]):
        rows, cols = np.nonzero(masks[..., k])
        rois.append([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1])
    return {"rois": np.array(rois, dtype=np.int32).reshape(-1, 4), "class_ids": class_ids,
            "scores": np.full(len(class_ids), 0.9, dtype=np.float32), "masks": masks}


@pytest.fixture
def coco_json(tmp_path):
    return coco_files._write(tmp_path, coco_files._coco_file())


@pytest.fixture
def via_json(tmp_path):
    return via_files._write(tmp_path, via_files._project(via_files._metadata()))


def test_coco_results_use_the_file_ids_and_load(coco_json):
    dataset = CocoDataset(coco_json)
    results = [_ground_truth_as_detections(dataset, i) for i in dataset.image_ids]
    listed = coco_results(results, dataset, dataset.image_ids)
    json.dumps(listed)                                                 # JSON-ready as is
    assert [(r["image_id"], r["category_id"]) for r in listed] == [(10, 3), (10, 7), (30, 7)]
    # The dog of image 10: a block rows 40..54, cols 5..24 and a bar rows 2..5, cols
    # 60..77: box x 5, y 2, 73 wide (5..77), 53 high (2..54).
    assert listed[1]["bbox"] == [5.0, 2.0, 73.0, 53.0]
    ground_truth = _quiet(COCO, str(coco_json))
    detections = _quiet(ground_truth.loadRes, listed)
    evaluator = COCOeval(ground_truth, detections, "segm")
    for step in (evaluator.evaluate, evaluator.accumulate, evaluator.summarize):
        _quiet(step)
    assert evaluator.stats[0] == pytest.approx(1.0)     # AP: every instance found exactly


def test_coco_results_of_a_dataset_with_file_name_ids(via_json):
    dataset = ViaDataset(via_json)
    assert coco_image_ids(dataset) == [0, 1, 2]          # "a.png", ... are not integers
    assert coco_category_ids(dataset) == [None, 1, 2, 3, 4]
    result = _ground_truth_as_detections(dataset, 1)
    listed = coco_results([result], dataset, [1])
    assert [(r["image_id"], r["category_id"]) for r in listed] == [(1, 3), (1, 2)]
    ground_truth = dataset_to_coco(dataset)
    coco = COCO()
    coco.dataset = ground_truth
    _quiet(coco.createIndex)
    assert len(_quiet(coco.loadRes, listed).anns) == 2


def _same_masks_and_classes(original, copy):
    assert copy.class_names == original.class_names
    assert copy.num_images == original.num_images
    for image_id in original.image_ids:
        masks, class_ids = original.load_mask(image_id)
        again, again_ids = copy.load_mask(image_id)
        np.testing.assert_array_equal(again_ids, class_ids)
        np.testing.assert_array_equal(again, masks)


def test_round_trip_of_a_via_dataset(via_json, tmp_path):
    original = ViaDataset(via_json)
    exported = json.loads(json.dumps(dataset_to_coco(original)))
    assert [c["name"] for c in exported["categories"]] == ["dog", "cat", "bird", "fish"]
    _same_masks_and_classes(original, CocoDataset(exported))
    relative = dataset_to_coco(original, image_dir=tmp_path)
    assert [i["file_name"] for i in relative["images"]] == ["a.png", "b.png", "c.png"]
    _same_masks_and_classes(original, CocoDataset(relative, image_dir=tmp_path))


def test_round_trip_of_a_coco_dataset_keeps_ids_and_crowds(coco_json):
    original = CocoDataset(coco_json)
    exported = dataset_to_coco(original)
    assert [i["id"] for i in exported["images"]] == [10, 20, 30]
    assert [c["id"] for c in exported["categories"]] == [3, 7, 12]
    assert [(a["category_id"], a["iscrowd"]) for a in exported["annotations"]] == \
        [(3, 0), (7, 0), (12, 1), (7, 0)]
    copy = CocoDataset(exported)
    assert copy.category_to_class == original.category_to_class
    _same_masks_and_classes(original, copy)             # the crowd stays negative


def test_round_trip_of_a_hand_written_dataset():
    shapes = ShapesDataset()
    shapes.load_shapes(3, 48, 64, seed=3)
    shapes.prepare()
    exported = dataset_to_coco(shapes)                  # no image files: names are ""
    assert [i["file_name"] for i in exported["images"]] == ["", "", ""]
    assert [(i["height"], i["width"]) for i in exported["images"]] == [(48, 64)] * 3
    _same_masks_and_classes(shapes, CocoDataset(exported, check_files=False))


def test_coco_results_of_a_keypoint_only_result_have_boxes_and_keypoints(coco_json):
    # A keypoint-only model's detect() dict: no "masks", "keypoints" [N, K, 3].
    dataset = CocoDataset(coco_json)
    result = _ground_truth_as_detections(dataset, 0)
    result.pop("masks")
    count = len(result["class_ids"])
    result["keypoints"] = np.arange(count * 2 * 3, dtype=np.float32).reshape(count, 2, 3)
    listed = coco_results([result], dataset, [0])
    json.dumps(listed)
    assert [set(r) for r in listed] == [{"image_id", "category_id", "bbox", "score",
                                         "keypoints"}] * count
    assert [(r["image_id"], r["category_id"]) for r in listed] == [(10, 3), (10, 7)]
    assert listed[1]["bbox"] == [5.0, 2.0, 73.0, 53.0]         # as with masks (above)
    assert listed[1]["keypoints"] == [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    # pycocotools reads them as box detections: the ground truth's boxes, box AP 1.
    ground_truth = _quiet(COCO, str(coco_json))
    evaluator = COCOeval(ground_truth, _quiet(ground_truth.loadRes, listed), "bbox")
    evaluator.params.imgIds = [10]
    for step in (evaluator.evaluate, evaluator.accumulate, evaluator.summarize):
        _quiet(step)
    assert evaluator.stats[0] == pytest.approx(1.0)

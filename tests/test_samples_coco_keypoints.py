"""The COCO sample's person keypoints, on a tiny person_keypoints JSON written here."""
import importlib.util
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import skimage.io

from mrcnn import data
from mrcnn.keypoints import COCO_PERSON_KEYPOINT_NAMES, COCO_PERSON_SKELETON

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEIGHT, WIDTH = 48, 64


def _load_sample():
    path = os.path.join(ROOT, "samples", "coco", "coco.py")
    spec = importlib.util.spec_from_file_location("coco_sample_keypoints", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


coco_sample = _load_sample()


def _rect_polygon(x1, y1, x2, y2):
    """COCO polygon of the pixels x1..x2-1, y1..y2-1 (pixel i covers [i, i + 1))."""
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


def _person_keypoints(x1, y1, unlabelled=()):
    """17 keypoints on a grid inside the box at (x1, y1): flat [x, y, v] ints; keypoint k
    at (x1 + k % 6, y1 + 2 * (k // 6)), v = 2 for even k, 1 for odd, 0 for ``unlabelled``."""
    flat = []
    for k in range(17):
        v = 0 if k in unlabelled else (2 if k % 2 == 0 else 1)
        flat += [x1 + k % 6, y1 + 2 * (k // 6), v] if v else [0, 0, 0]
    return flat


# Image 7: two people, a crowd region and an annotation whose polygon covers no pixel.
# Image 9: one person with a keypoint 5 px outside the image (an annotation slip).
ANNOTATIONS = [
    (7, _rect_polygon(4, 4, 20, 30), _person_keypoints(5, 6, unlabelled=(3, 16)), 0),
    (7, _rect_polygon(0.2, 0.2, 0.4, 0.4), [0] * 51, 0),                   # no pixel
    (7, _rect_polygon(40, 10, 60, 40), _person_keypoints(42, 12), 0),
    (7, _rect_polygon(25, 30, 35, 45), [0] * 51, 1),                       # crowd
    (9, _rect_polygon(10, 10, 40, 40), _person_keypoints(12, 12), 0),
]


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_kp")
    os.makedirs(root / "val2017")
    os.makedirs(root / "annotations")
    images, annotations = [], []
    for coco_id in (7, 9):
        filename = f"{coco_id:012d}.png"
        image = np.full((HEIGHT, WIDTH, 3), 30 + coco_id, np.uint8)
        skimage.io.imsave(root / "val2017" / filename, image, check_contrast=False)
        images.append({"id": coco_id, "file_name": filename, "height": HEIGHT,
                       "width": WIDTH})
    for image_id, polygon, keypoints, crowd in ANNOTATIONS:
        if image_id == 9:
            keypoints = list(keypoints)
            keypoints[3 * 5:3 * 5 + 3] = [WIDTH + 4, 20, 2]  # keypoint 5 at x = 68
        x = polygon[0][0::2]
        y = polygon[0][1::2]
        annotations.append({
            "id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
            "iscrowd": crowd, "segmentation": polygon, "keypoints": keypoints,
            "num_keypoints": int(sum(v > 0 for v in keypoints[2::3])),
            "area": float((max(x) - min(x)) * (max(y) - min(y))),
            "bbox": [min(x), min(y), max(x) - min(x), max(y) - min(y)]})
    categories = [{"id": 1, "name": "person", "supercategory": "person",
                   "keypoints": list(COCO_PERSON_KEYPOINT_NAMES),
                   "skeleton": [[a + 1, b + 1] for a, b in COCO_PERSON_SKELETON]}]
    with open(root / "annotations" / "person_keypoints_val2017.json", "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return root


def _load(coco_dir):
    dataset = coco_sample.CocoDataset()
    coco = dataset.load_coco(str(coco_dir), "val", year=2017, return_coco=True,
                             keypoints=True)
    dataset.prepare()
    return dataset, coco


def test_keypoints_load_aligned_with_masks(coco_dir):
    dataset, _ = _load(coco_dir)
    assert dataset.class_names == ["BG", "person"]
    assert dataset.keypoint_names == COCO_PERSON_KEYPOINT_NAMES
    assert dataset.skeleton == COCO_PERSON_SKELETON
    masks, class_ids = dataset.load_mask(0)
    points = dataset.load_keypoints(0)
    # The pixel-less annotation is left out of both; the crowd row has no keypoints.
    assert class_ids.tolist() == [1, 1, -1]
    assert points.shape == (3, 17, 3) and points.dtype == np.float32
    np.testing.assert_array_equal(points[0].ravel(),
                                  _person_keypoints(5, 6, unlabelled=(3, 16)))
    np.testing.assert_array_equal(points[1].ravel(), _person_keypoints(42, 12))
    assert not points[2].any()
    # Every labelled keypoint lies inside its own instance's mask.
    for row in range(2):
        labelled = points[row, :, 2] > 0
        xs, ys = points[row, labelled, 0].astype(int), points[row, labelled, 1].astype(int)
        assert masks[ys, xs, row].all()


def test_keypoint_far_outside_the_image_is_unlabelled(coco_dir):
    dataset, _ = _load(coco_dir)
    points = dataset.load_keypoints(1)
    assert points[0, 5].tolist() == [0, 0, 0]
    expected = np.array(_person_keypoints(12, 12), np.float32).reshape(17, 3)
    expected[5] = 0
    np.testing.assert_array_equal(points[0], expected)


class SmallKeypointConfig(coco_sample.CocoKeypointConfig):
    IMAGES_PER_GPU = 1
    BACKBONE = "resnet18"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    USE_MINI_MASK = False


def test_flips_swap_left_and_right_person_keypoints(coco_dir):
    dataset, _ = _load(coco_dir)
    config = SmallKeypointConfig()
    assert config.NUM_KEYPOINTS == 17 and config.NUM_CLASSES == 2
    plain = data.load_image_gt(dataset, config, 0, with_keypoints=True)[5]
    # 48 x 64 -> 64 x 64: padded by 8 rows on top.
    np.testing.assert_allclose(plain[0, 0], [5, 14, 2])
    flipped = data.load_image_gt(dataset, config, 0, with_keypoints=True,
                                 augmentation=lambda image, masks, rng, keypoints: (
                                     image[:, ::-1], masks[:, ::-1],
                                     np.stack([63 - keypoints[:, 0], keypoints[:, 1]], 1)))[5]
    # left_eye (1) of the mirrored person is the mirrored right_eye (2): x 5 + 2 -> 56.
    np.testing.assert_allclose(flipped[0, 1], [63 - plain[0, 2, 0], plain[0, 2, 1],
                                               plain[0, 2, 2]])
    np.testing.assert_allclose(flipped[0, 2], [63 - plain[0, 1, 0], plain[0, 1, 1],
                                               plain[0, 1, 2]])
    np.testing.assert_allclose(flipped[0, 0], [63 - 5, 14, 2])  # the nose stays the nose


class PerfectModel:
    """detect() returns each image's ground-truth people as detections."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.config = SimpleNamespace(BATCH_SIZE=1)
        self.next_id = 0

    def detect(self, images, verbose=0):
        results = []
        for _ in images:
            masks, class_ids = self.dataset.load_mask(self.next_id)
            points = self.dataset.load_keypoints(self.next_id)
            keep = class_ids > 0
            results.append({"rois": np.zeros((int(keep.sum()), 4), np.int32),
                            "class_ids": class_ids[keep],
                            "scores": np.full(int(keep.sum()), 0.9, np.float32),
                            "masks": masks[..., keep], "keypoints": points[keep]})
            self.next_id += 1
        return results


def test_evaluate_coco_keypoints_of_ground_truth_detections_by_hand(coco_dir):
    dataset, coco = _load(coco_dir)
    metrics = coco_sample.evaluate_coco_keypoints(PerfectModel(dataset), dataset, coco,
                                                  verbose=0)
    # Image 7's two people are exact (OKS 1). Image 9's person has 17 labelled points in
    # the file, keypoint 5 at x = 68 is unlabelled in the dataset and detected at (0, 0):
    # OKS 16/17 = 0.941, a hit at the thresholds 0.50..0.90 and a miss at 0.95. There the
    # three detections (equal scores, in image order) are hit, hit, miss: precision 1 up
    # to recall 2/3, i.e. 67 of COCO's 101 recall points. AP = (9 + 67/101) / 10.
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP75"] == pytest.approx(1.0)
    assert metrics["AP"] == pytest.approx((9 + 67 / 101) / 10)


def test_command_line_takes_keypoints():
    args = coco_sample.parse_args(["evaluate", "--dataset", "d", "--model", "m",
                                   "--keypoints"])
    assert args.keypoints is True
    assert coco_sample.parse_args(["train", "--dataset", "d", "--model", "m"]).keypoints is False

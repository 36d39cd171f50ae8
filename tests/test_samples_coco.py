"""The COCO sample on a tiny COCO-format dataset written from shapes images."""
import importlib.util
import json
import os
import urllib.error
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
import skimage.io
import skimage.measure
from pycocotools import mask as mask_utils

from mrcnn.shapes import SHAPE_NAMES, ShapesDataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEIGHT, WIDTH = 96, 128
CATEGORY_IDS = {"square": 1, "circle": 3, "triangle": 7}   # COCO ids are not contiguous
CROWD_BLOCK = (slice(70, 90), slice(0, 40))                 # rows, cols of the crowd region


def _load_sample():
    path = os.path.join(ROOT, "samples", "coco", "coco.py")
    spec = importlib.util.spec_from_file_location("coco_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


coco_sample = _load_sample()


def _polygon(mask):
    """COCO polygon [x1, y1, x2, y2, ...] of a mask (pixel i covers [i, i+1))."""
    contour = max(skimage.measure.find_contours(np.pad(mask, 1).astype(float), 0.5),
                  key=len) - 1 + 0.5
    return np.stack([contour[:, 1], contour[:, 0]], axis=1).ravel().round(2).tolist()


def _uncompressed_rle(mask):
    """COCO's crowd format: run lengths in column-major order, starting with zeros."""
    flat = mask.T.ravel().astype(np.uint8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": [mask.shape[0], mask.shape[1]]}


def _crowd_mask():
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[CROWD_BLOCK] = True
    return mask


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    """val2017/ with 3 shapes images and annotations/instances_val2017.json."""
    root = tmp_path_factory.mktemp("coco")
    os.makedirs(root / "val2017")
    os.makedirs(root / "annotations")
    shapes = ShapesDataset()
    shapes.load_shapes(3, HEIGHT, WIDTH, seed=1)
    shapes.prepare()
    images, annotations = [], []
    for image_id in shapes.image_ids:
        coco_id = 1000 + int(image_id)
        filename = f"{coco_id:012d}.png"
        skimage.io.imsave(root / "val2017" / filename, shapes.load_image(image_id),
                          check_contrast=False)
        images.append({"id": coco_id, "file_name": filename, "height": HEIGHT,
                       "width": WIDTH})
        masks, class_ids = shapes.load_mask(image_id)
        for i in range(masks.shape[-1]):
            polygon = _polygon(masks[..., i])
            rle = mask_utils.merge(mask_utils.frPyObjects([polygon], HEIGHT, WIDTH))
            annotations.append({
                "id": len(annotations) + 1, "image_id": coco_id, "iscrowd": 0,
                "category_id": CATEGORY_IDS[SHAPE_NAMES[class_ids[i] - 1]],
                "segmentation": [polygon], "area": float(mask_utils.area(rle)),
                "bbox": mask_utils.toBbox(rle).tolist()})
    crowd = _uncompressed_rle(_crowd_mask())
    annotations.append({"id": len(annotations) + 1, "image_id": 1000, "iscrowd": 1,
                        "category_id": CATEGORY_IDS["circle"], "segmentation": crowd,
                        "area": float(_crowd_mask().sum()), "bbox": [0.0, 70.0, 40.0, 20.0]})
    categories = [{"id": i, "name": n, "supercategory": "shape"}
                  for n, i in CATEGORY_IDS.items()]
    with open(root / "annotations" / "instances_val2017.json", "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories},
                  f)
    return root, shapes


def _load(coco_dir, **kwargs):
    root, _ = coco_dir
    dataset = coco_sample.CocoDataset()
    coco = dataset.load_coco(str(root), "val", year=2017, return_coco=True, **kwargs)
    dataset.prepare()
    return dataset, coco


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_load_coco_registers_classes_and_images(coco_dir):
    root, _ = coco_dir
    dataset, coco = _load(coco_dir)
    assert dataset.class_names == ["BG", "square", "circle", "triangle"]
    assert dataset.class_from_source_map == {".0": 0, "coco.1": 1, "coco.3": 2, "coco.7": 3}
    assert [info["id"] for info in dataset.image_info] == [1000, 1001, 1002]
    assert dataset.image_info[1]["path"] == str(root / "val2017" / "000000001001.png")
    assert dataset.image_reference(2) == "http://cocodataset.org/#explore?id=1002"
    assert sorted(coco.getImgIds()) == [1000, 1001, 1002]


def test_masks_match_the_drawn_shapes_and_crowd_is_negative(coco_dir):
    _, shapes = coco_dir
    dataset, _ = _load(coco_dir)
    for image_id in dataset.image_ids:
        np.testing.assert_array_equal(dataset.load_image(image_id), shapes.load_image(image_id))
        masks, class_ids = dataset.load_mask(image_id)
        drawn, drawn_ids = shapes.load_mask(image_id)
        crowd = class_ids < 0
        assert masks.dtype == bool and class_ids.dtype == np.int32
        # Shapes' class ids are 1, 2, 3 for square, circle, triangle: as here.
        assert class_ids[~crowd].tolist() == drawn_ids.tolist()
        for i in range(drawn.shape[-1]):
            assert _iou(masks[..., ~crowd][..., i], drawn[..., i]) >= 0.99
        if image_id == 0:
            assert class_ids[crowd].tolist() == [-2]           # a crowd of circles
            np.testing.assert_array_equal(masks[..., crowd][..., 0], _crowd_mask())
        else:
            assert not crowd.any()


def test_class_ids_select_categories_and_their_images(coco_dir):
    dataset, _ = _load(coco_dir, class_ids=[7])
    assert dataset.class_names == ["BG", "triangle"]
    _, shapes = coco_dir
    with_triangles = [i for i in shapes.image_ids if 3 in shapes.load_mask(i)[1]]
    assert [info["id"] - 1000 for info in dataset.image_info] == with_triangles
    for image_id in dataset.image_ids:
        assert set(dataset.load_mask(image_id)[1].tolist()) == {1}


def test_missing_annotations_and_offline_download_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="auto_download=True"):
        coco_sample.CocoDataset().load_coco(str(tmp_path), "val", year="2017")

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(RuntimeError, match=r"Could not download http://images\.cocodataset"
                                           r"\.org/zips/val2017\.zip"):
        coco_sample.CocoDataset().load_coco(str(tmp_path), "val", year="2017",
                                            auto_download=True)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]


class GroundTruthModel:
    """detect() answers each image with its non-crowd ground truth, score 1."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.config = SimpleNamespace(BATCH_SIZE=2)

    def detect(self, images, verbose=0):
        results = []
        for image in images:
            image_id = next(i for i in self.dataset.image_ids
                            if np.array_equal(self.dataset.load_image(i), image))
            masks, class_ids = self.dataset.load_mask(image_id)
            keep = class_ids > 0
            masks, class_ids = masks[..., keep], class_ids[keep]
            ys = [np.where(masks[..., i].any(axis=1))[0] for i in range(masks.shape[-1])]
            xs = [np.where(masks[..., i].any(axis=0))[0] for i in range(masks.shape[-1])]
            rois = np.array([[y[0], x[0], y[-1] + 1, x[-1] + 1] for y, x in zip(ys, xs)],
                            dtype=np.int32).reshape(-1, 4)
            results.append({"rois": rois, "class_ids": class_ids,
                            "scores": np.ones(len(class_ids), np.float32), "masks": masks})
        return results


@pytest.mark.parametrize("eval_type", ["bbox", "segm"])
def test_evaluate_coco_with_ground_truth_detections_scores_one(coco_dir, eval_type):
    dataset, coco = _load(coco_dir)
    metrics = coco_sample.evaluate_coco(GroundTruthModel(dataset), dataset, coco,
                                        eval_type=eval_type, verbose=0)
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AR100"] == pytest.approx(1.0)


def test_evaluate_coco_limit_and_missed_image(coco_dir):
    dataset, coco = _load(coco_dir)
    model = GroundTruthModel(dataset)
    # Only the first image is evaluated: found exactly.
    assert coco_sample.evaluate_coco(model, dataset, coco, "segm", limit=1,
                                     verbose=0)["AP"] == pytest.approx(1.0)
    # With a model that finds nothing on image 1, recall drops below 1.
    original = model.detect
    model.detect = lambda images, verbose=0: [
        {**r, "rois": r["rois"][:0], "class_ids": r["class_ids"][:0],
         "scores": r["scores"][:0], "masks": r["masks"][..., :0]}
        if np.array_equal(img, dataset.load_image(1)) else r
        for img, r in zip(images, original(images))]
    metrics = coco_sample.evaluate_coco(model, dataset, coco, "segm", verbose=0)
    assert metrics["AR100"] < 1.0


def test_build_coco_results_uses_coco_ids(coco_dir):
    dataset, _ = _load(coco_dir)
    mask = np.zeros((HEIGHT, WIDTH, 1), dtype=bool)
    mask[10:20, 30:45, 0] = True
    results = coco_sample.build_coco_results(
        dataset, [1001], np.array([[10, 30, 20, 45]]), np.array([3]), np.array([0.25]), mask)
    assert len(results) == 1
    result = results[0]
    assert (result["image_id"], result["category_id"], result["score"]) == (1001, 7, 0.25)
    assert result["bbox"] == [30.0, 10.0, 15.0, 10.0]
    np.testing.assert_array_equal(mask_utils.decode(result["segmentation"]), mask[..., 0])
    assert coco_sample.build_coco_results(dataset, [1001], None, None, None, None) == []


def test_config_and_cli():
    config = coco_sample.CocoConfig()
    assert (config.NAME, config.NUM_CLASSES, config.IMAGES_PER_GPU) == ("coco", 81, 2)
    args = coco_sample.parse_args(["evaluate", "--dataset", "d", "--model", "last"])
    assert (args.year, args.limit, args.download) == ("2014", 500, False)
    for flags, expected in ((["--download"], True), (["--download=True"], True),
                            (["--download=false"], False)):
        args = coco_sample.parse_args(["train", "--dataset=d", "--model=coco"] + flags)
        assert args.download is expected
    assert coco_sample.image_dir("d", "minival", "2014") == os.path.join("d", "val2014")
    assert coco_sample.annotation_path("d", "minival", "2014") == os.path.join(
        "d", "annotations", "instances_minival2014.json")

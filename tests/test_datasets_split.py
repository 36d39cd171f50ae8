"""split(): disjoint, covering, seeded parts that are prepared and share the classes."""
import json

import numpy as np
import pytest
from PIL import Image

from mrcnn.datasets import CocoDataset, split_dataset
from mrcnn.shapes import ShapesDataset


def _coco_dataset(folder, count=10):
    images, annotations = [], []
    for k in range(count):
        Image.fromarray(np.full((20, 30, 3), k, dtype=np.uint8)).save(folder / f"{k}.png")
        images.append({"id": 100 + k, "file_name": f"{k}.png", "height": 20, "width": 30})
        annotations.append({"id": k + 1, "image_id": 100 + k, "category_id": 5 + k % 2,
                            "iscrowd": 0, "bbox": [2, 2, k + 5, 10],
                            "segmentation": [[2, 2, 7 + k, 2, 7 + k, 12, 2, 12]]})
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 5, "name": "odd"}, {"id": 6, "name": "even"}]}
    (folder / "instances.json").write_text(json.dumps(data))
    return CocoDataset(folder / "instances.json")


def test_parts_are_disjoint_cover_and_keep_classes(tmp_path):
    dataset = _coco_dataset(tmp_path)
    train, val = dataset.split(0.3, seed=1)
    assert (train.num_images, val.num_images) == (7, 3)
    train_ids = [info["id"] for info in train.image_info]
    val_ids = [info["id"] for info in val.image_info]
    assert sorted(train_ids + val_ids) == list(range(100, 110))
    assert train_ids == sorted(train_ids) and val_ids == sorted(val_ids)   # original order
    for part in (train, val):
        assert type(part) is CocoDataset
        assert part.class_names == dataset.class_names
        assert part.class_info == dataset.class_info
        np.testing.assert_array_equal(part.image_ids, np.arange(part.num_images))
        for image_id in part.image_ids:               # each image keeps its masks
            original = dataset.image_from_source_map[f"coco.{part.image_info[image_id]['id']}"]
            masks, class_ids = part.load_mask(image_id)
            expected, expected_ids = dataset.load_mask(original)
            np.testing.assert_array_equal(masks, expected)
            np.testing.assert_array_equal(class_ids, expected_ids)
    assert dataset.num_images == 10                  # the original is unchanged


def test_the_seed_decides_the_parts(tmp_path):
    dataset = _coco_dataset(tmp_path)

    def val_ids(seed):
        return [info["id"] for info in dataset.split(0.3, seed=seed)[1].image_info]

    assert val_ids(1) == val_ids(1)
    assert len({tuple(val_ids(seed)) for seed in range(6)}) > 1


def test_sizes_are_at_least_one_image(tmp_path):
    dataset = _coco_dataset(tmp_path, count=3)
    assert [p.num_images for p in dataset.split(0.01)] == [2, 1]
    assert [p.num_images for p in dataset.split(0.99)] == [1, 2]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        dataset.split(1.0)
    with pytest.raises(ValueError, match="cannot split a dataset of 1 image"):
        _coco_dataset(tmp_path, count=1).split(0.5)


def test_split_dataset_takes_a_hand_written_dataset():
    shapes = ShapesDataset()
    shapes.load_shapes(8, 32, 32, seed=0)
    shapes.prepare()
    train, val = split_dataset(shapes, 0.25, seed=0)
    assert (train.num_images, val.num_images) == (6, 2)
    assert train.class_names == shapes.class_names
    spec = val.image_info[0]
    original = next(i for i, info in enumerate(shapes.image_info) if info["id"] == spec["id"])
    np.testing.assert_array_equal(val.load_image(0), shapes.load_image(original))

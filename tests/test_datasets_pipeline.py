"""Every loader feeds the training input pipeline (DataGenerator -> load_image_gt) as a
hand-written Dataset does; images without instances are negatives only on request."""
import numpy as np
import pytest
from PIL import Image

from mrcnn.data import DataGenerator
from mrcnn.datasets import CocoDataset, LabelMeDataset, MaskFolderDataset, ViaDataset

from conftest import TinyConfig
import test_datasets_coco as coco_files
import test_datasets_labelme as labelme_files
import test_datasets_via as via_files


def _config(dataset):
    config = TinyConfig()
    config.NUM_CLASSES = dataset.num_classes
    return config


def _batch(dataset, **options):
    generator = DataGenerator(dataset, _config(dataset), shuffle=False, workers=1, **options)
    (inputs,) = generator[0]
    return inputs


def _instances(inputs, row):
    """Sorted class ids of batch row ``row``; each instance's mini mask has pixels."""
    ids = inputs["input_gt_class_ids"][row]
    present = ids != 0
    for k in np.flatnonzero(present):
        assert inputs["input_gt_masks"][row, :, :, k].any()
    return sorted(ids[present].tolist())


def _image_ids(inputs):
    return inputs["input_image_meta"][:, 0].astype(int).tolist()


def test_coco_batch_with_a_crowd_and_an_empty_image(tmp_path):
    dataset = CocoDataset(coco_files._write(tmp_path, coco_files._coco_file()))
    inputs = _batch(dataset)
    assert inputs["input_image"].shape == (2, 64, 64, 3)
    assert _image_ids(inputs) == [0, 2]           # image 1 has no instances: skipped
    assert _instances(inputs, 0) == [-3, 1, 2]    # the crowd region stays negative
    assert _instances(inputs, 1) == [2]
    negatives = _batch(dataset, train_on_empty_images=True)
    assert _image_ids(negatives) == [0, 1]
    assert _instances(negatives, 1) == []
    assert not np.any(negatives["input_rpn_match"][1] == 1)   # no positive anchor


def test_via_batch(tmp_path):
    dataset = ViaDataset(via_files._write(tmp_path, via_files._project(via_files._metadata())))
    inputs = _batch(dataset)
    assert _image_ids(inputs) == [0, 1]
    assert _instances(inputs, 0) == [1, 1, 2] and _instances(inputs, 1) == [2, 3]


def test_labelme_batch(tmp_path):
    with pytest.warns(UserWarning, match="skipped 1 shape"):
        dataset = LabelMeDataset(labelme_files._folder(tmp_path))
    inputs = _batch(dataset)
    assert _image_ids(inputs) == [0, 1]
    assert _instances(inputs, 0) == [2, 2, 3, 3] and _instances(inputs, 1) == [1]


def test_mask_folder_batch(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks" / "a").mkdir(parents=True)
    Image.fromarray(np.full((48, 64, 3), 120, dtype=np.uint8)).save(tmp_path / "images" / "a.png")
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[10:30, 5:40] = 255
    Image.fromarray(mask).save(tmp_path / "masks" / "a" / "leaf_1.png")
    dataset = MaskFolderDataset(tmp_path / "images", tmp_path / "masks")
    inputs = _batch(dataset)
    assert _image_ids(inputs) == [0, 0] and _instances(inputs, 0) == [1]
    # Square mode keeps the 48x64 image at scale 1 in a 64x64 square, 8 rows of padding
    # above: the mask's rows 10..29 become 18..37; cols 5..39 (y2/x2 exclusive).
    np.testing.assert_array_equal(inputs["input_gt_boxes"][0, 0], [18, 5, 38, 40])

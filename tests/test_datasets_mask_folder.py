"""MaskFolderDataset: a mask folder per image, or one instance-id image per image with a
class map (dict, JSON, CSV); masks compared with the arrays the tests wrote."""
import json

import numpy as np
import pytest
from PIL import Image

from mrcnn import validate
from mrcnn.datasets import AnnotationError, MaskFolderDataset

H, W = 40, 56


def _blob(rows, cols):
    mask = np.zeros((H, W), dtype=bool)
    mask[rows, cols] = True
    return mask


A_CELL = _blob(slice(2, 12), slice(3, 20))
A_RED = _blob(slice(20, 35), slice(30, 50))
B_CELL = _blob(slice(5, 30), slice(10, 15))


def _images(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg", "c.png"):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.fixture
def folders(tmp_path):
    images = _images(tmp_path / "images")
    masks = tmp_path / "masks"
    (masks / "a").mkdir(parents=True)
    (masks / "b").mkdir()
    Image.fromarray(A_CELL.astype(np.uint8) * 255).save(masks / "a" / "cell_1.png")  # 0/255
    Image.fromarray(A_RED.astype(np.uint8)).save(masks / "a" / "red_cell_2.png")     # 0/1
    rgb = np.repeat(B_CELL[..., None], 3, axis=2).astype(np.uint8) * 200
    Image.fromarray(rgb).save(masks / "b" / "cell_x.png")                            # RGB
    return images, masks


def test_one_mask_file_per_instance(folders):
    dataset = MaskFolderDataset(*folders)
    assert dataset.class_names == ["BG", "cell", "red_cell"]
    assert [info["id"] for info in dataset.image_info] == ["a", "b", "c"]
    masks, class_ids = dataset.load_mask(0)
    assert masks.dtype == bool and class_ids.tolist() == [1, 2]
    np.testing.assert_array_equal(masks[..., 0], A_CELL)
    np.testing.assert_array_equal(masks[..., 1], A_RED)
    masks, class_ids = dataset.load_mask(1)
    assert class_ids.tolist() == [1]
    np.testing.assert_array_equal(masks[..., 0], B_CELL)
    masks, class_ids = dataset.load_mask(2)                       # no folder: no instances
    assert masks.shape == (H, W, 0) and class_ids.shape == (0,)
    ordered = MaskFolderDataset(*folders, class_names=["red_cell", "cell", "other"])
    assert ordered.load_mask(0)[1].tolist() == [2, 1]


def test_layout_errors_name_the_file(folders):
    images, masks = folders
    (masks / "a" / "cell.png").write_bytes((masks / "a" / "cell_1.png").read_bytes())
    with pytest.raises(AnnotationError, match=r"a/cell\.png: the mask file is not named "
                                              r"<class>_<k>"):
        MaskFolderDataset(images, masks)
    (masks / "a" / "cell.png").unlink()
    (masks / "zz").mkdir()
    with pytest.raises(AnnotationError, match="the mask folder 'zz' has no image"):
        MaskFolderDataset(images, masks)
    (masks / "zz").rmdir()
    with pytest.raises(AnnotationError, match=r"classes \['red_cell'\] are not among "
                                              r"class_names \['cell'\]"):
        MaskFolderDataset(images, masks, class_names=["cell"])
    (images.parent / "empty").mkdir()
    with pytest.raises(AnnotationError, match=r"empty: no masks for any of the 3 images"):
        MaskFolderDataset(images, images.parent / "empty")


def test_mask_of_another_size_is_named_when_loaded(folders):
    images, masks = folders
    Image.fromarray(np.ones((H // 2, W), dtype=np.uint8)).save(masks / "b" / "cell_y.png")
    dataset = MaskFolderDataset(images, masks)
    with pytest.raises(validate.DatasetError, match=r"image 1 \(source 'masks', id 'b'.*\): "
                                                    r".*b/cell_y\.png: the mask is 20x56 but "
                                                    r"the image is 40x56"):
        validate.load_checked(dataset, 1)


def _instance_images(tmp_path, dtype=np.uint8, big=0):
    images = _images(tmp_path / "images")
    masks = tmp_path / "labels"
    masks.mkdir()
    a = np.zeros((H, W), dtype=dtype)
    a[A_CELL] = 1
    a[A_RED] = 2 + big
    b = np.zeros((H, W), dtype=dtype)
    b[B_CELL] = 3
    Image.fromarray(a).save(masks / "a.png")
    Image.fromarray(b).save(masks / "b.png")
    return images, masks


def test_instance_id_images_with_a_global_class_map(tmp_path):
    dataset = MaskFolderDataset(*_instance_images(tmp_path),
                                class_map={1: "cell", 2: "red_cell", 3: "cell"})
    assert dataset.class_names == ["BG", "cell", "red_cell"]
    masks, class_ids = dataset.load_mask(0)
    assert class_ids.tolist() == [1, 2]
    np.testing.assert_array_equal(masks[..., 0], A_CELL)
    np.testing.assert_array_equal(masks[..., 1], A_RED)
    masks, class_ids = dataset.load_mask(1)
    assert class_ids.tolist() == [1]
    np.testing.assert_array_equal(masks[..., 0], B_CELL)
    assert dataset.load_mask(2)[0].shape == (H, W, 0)             # no label image


def test_sixteen_bit_ids_and_per_image_json_map(tmp_path):
    images, masks = _instance_images(tmp_path, np.uint16, big=298)     # value 300
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({"a": {"1": "cell", "300": "red_cell"}, "b.jpg": {"3": "dust"}}))
    dataset = MaskFolderDataset(images, masks, class_map=path)
    assert dataset.class_names == ["BG", "cell", "dust", "red_cell"]
    assert dataset.load_mask(0)[1].tolist() == [1, 3]
    assert dataset.load_mask(1)[1].tolist() == [2]
    np.testing.assert_array_equal(dataset.load_mask(0)[0][..., 1], A_RED)


def test_csv_class_map_and_unknown_value(tmp_path):
    images, masks = _instance_images(tmp_path)
    path = tmp_path / "classes.csv"
    path.write_text("instance_id,class\n1,cell\n2,red_cell\n")
    dataset = MaskFolderDataset(images, masks, class_map=path)
    assert dataset.load_mask(0)[1].tolist() == [1, 2]
    with pytest.raises(AnnotationError, match=r"labels/b\.png: instance values \[3\] have no "
                                              r"class in the class map"):
        dataset.load_mask(1)
    per_image = tmp_path / "per_image.csv"
    per_image.write_text("image,instance_id,class\na,1,cell\na,2,cell\nb,3,red_cell\n")
    dataset = MaskFolderDataset(images, masks, class_map=per_image)
    assert dataset.load_mask(0)[1].tolist() == [1, 1]
    assert dataset.load_mask(1)[1].tolist() == [2]


def test_label_image_without_image_is_an_error(tmp_path):
    images, masks = _instance_images(tmp_path)
    Image.fromarray(np.zeros((H, W), dtype=np.uint8)).save(masks / "stray.png")
    with pytest.raises(AnnotationError, match="the mask file 'stray.png' has no image"):
        MaskFolderDataset(images, masks, class_map={1: "cell"})

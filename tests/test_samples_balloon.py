"""The balloon sample: VIA polygon JSON in, masks out; the colour splash."""
import importlib.util
import json
import os
import urllib.error
from types import SimpleNamespace

import numpy as np
import pytest
import skimage.io
import skimage.measure

from mrcnn.shapes import ShapesDataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_sample():
    path = os.path.join(ROOT, "samples", "balloon", "balloon.py")
    spec = importlib.util.spec_from_file_location("balloon_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


balloon = _load_sample()

HEIGHT, WIDTH = 96, 128


def _outline(mask):
    """The mask's boundary as a VIA polygon (pixel centres at integer coordinates)."""
    contours = skimage.measure.find_contours(np.pad(mask, 1).astype(float), 0.5)
    contour = max(contours, key=len) - 1
    return {"name": "polygon",
            "all_points_x": [round(float(v), 1) for v in contour[:, 1]],
            "all_points_y": [round(float(v), 1) for v in contour[:, 0]]}


@pytest.fixture(scope="module")
def via_dataset(tmp_path_factory):
    """train/ with 3 shapes images (regions as a dict, as a list, and none) and val/."""
    root = tmp_path_factory.mktemp("balloon")
    shapes = ShapesDataset()
    shapes.load_shapes(3, HEIGHT, WIDTH, seed=0)
    shapes.prepare()
    for subset in ("train", "val"):
        os.makedirs(root / subset)
        records = {}
        for image_id in shapes.image_ids:
            filename = f"shapes_{image_id}.png"
            skimage.io.imsave(root / subset / filename, shapes.load_image(image_id),
                              check_contrast=False)
            masks, _ = shapes.load_mask(image_id)
            regions = [{"shape_attributes": _outline(masks[..., i]),
                        "region_attributes": {}} for i in range(masks.shape[-1])]
            if image_id == 0:
                regions = {str(i): region for i, region in enumerate(regions)}  # VIA 1.x
            if image_id == 2:
                regions = []                                                # not annotated
            records[f"{filename}1234"] = {"filename": filename, "size": 1234,
                                          "regions": regions, "file_attributes": {}}
        with open(root / subset / "via_region_data.json", "w") as f:
            json.dump(records, f)
    return root, shapes


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_load_balloon_reads_dict_and_list_regions_and_skips_empty(via_dataset):
    root, shapes = via_dataset
    dataset = balloon.BalloonDataset()
    dataset.load_balloon(str(root), "train")
    dataset.prepare()
    assert dataset.class_names == ["BG", "balloon"]
    assert [info["id"] for info in dataset.image_info] == ["shapes_0.png", "shapes_1.png"]
    for image_id, shapes_id in zip(dataset.image_ids, (0, 1)):
        info = dataset.image_info[image_id]
        assert (info["height"], info["width"]) == (HEIGHT, WIDTH)
        assert dataset.image_reference(image_id) == str(root / "train" / info["id"])
        np.testing.assert_array_equal(dataset.load_image(image_id), shapes.load_image(shapes_id))
        masks, class_ids = dataset.load_mask(image_id)
        drawn, _ = shapes.load_mask(shapes_id)
        assert masks.dtype == bool and masks.shape == drawn.shape
        assert class_ids.dtype == np.int32 and class_ids.tolist() == [1] * drawn.shape[-1]
        for i in range(drawn.shape[-1]):
            assert _iou(masks[..., i], drawn[..., i]) >= 0.98


def test_val_subset_and_bad_subset(via_dataset):
    root, _ = via_dataset
    train, val = balloon.load_datasets(str(root))
    assert len(train.image_ids) == len(val.image_ids) == 2
    with pytest.raises(ValueError, match="subset"):
        balloon.BalloonDataset().load_balloon(str(root), "test")


def test_regions_outside_the_image_are_clipped():
    # A square from (-5, -5) to (9, 9) in a 10 x 12 image keeps rows/cols 0..9 of it.
    square = {"name": "polygon", "all_points_x": [-5, 9, 9, -5],
              "all_points_y": [-5, -5, 9, 9]}
    rows, cols = balloon.rasterise_region(square, 8, 12)
    mask = np.zeros((8, 12), dtype=bool)
    mask[rows, cols] = True
    expected = np.zeros((8, 12), dtype=bool)
    expected[0:8, 0:10] = True
    np.testing.assert_array_equal(mask, expected)
    rect = {"name": "rect", "x": 2, "y": 1, "width": 3, "height": 2}
    rows, cols = balloon.rasterise_region(rect, 8, 12)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [
        (1, 2), (1, 3), (1, 4), (2, 2), (2, 3), (2, 4)]
    with pytest.raises(ValueError, match="unsupported"):
        balloon.rasterise_region({"name": "point", "cx": 1, "cy": 1}, 8, 12)


def _splash_case():
    image = np.zeros((6, 8, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 200, 40, 10
    mask = np.zeros((6, 8, 2), dtype=bool)
    mask[1:3, 1:4, 0] = True
    mask[4:6, 5:8, 1] = True
    return image, mask


def test_color_splash_pixels():
    image, mask = _splash_case()
    splash = balloon.color_splash(image, mask)
    # Luminance 0.2125 * 200 + 0.7154 * 40 + 0.0721 * 10 = 71.837 -> 72.
    inside = mask.any(axis=-1)
    assert splash.dtype == np.uint8
    np.testing.assert_array_equal(splash[inside], np.tile([200, 40, 10], (inside.sum(), 1)))
    np.testing.assert_array_equal(splash[~inside], np.full(((~inside).sum(), 3), 72))
    all_grey = balloon.color_splash(image, np.zeros((6, 8, 0), dtype=bool))
    np.testing.assert_array_equal(all_grey, np.full((6, 8, 3), 72))


def test_splash_image_writes_png(tmp_path):
    image, mask = _splash_case()
    source = tmp_path / "photo.png"
    skimage.io.imsave(source, image, check_contrast=False)
    seen = []

    def detect(images, verbose=0):
        seen.append(images[0].copy())
        return [{"rois": np.zeros((2, 4), np.int32), "class_ids": np.ones(2, np.int32),
                 "scores": np.ones(2, np.float32), "masks": mask}]

    path = balloon.detect_and_color_splash(SimpleNamespace(detect=detect),
                                           image_path=str(source), out_dir=str(tmp_path))
    assert path.endswith(".png") and os.path.dirname(path) == str(tmp_path)
    np.testing.assert_array_equal(seen[0], image)
    np.testing.assert_array_equal(skimage.io.imread(path), balloon.color_splash(image, mask))


def test_coco_weights_offline_error_is_clear(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(balloon, "COCO_WEIGHTS_PATH", str(tmp_path / "mask_rcnn_coco.h5"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(RuntimeError, match="Could not download the COCO weights"):
        balloon.load_starting_weights(SimpleNamespace(), "coco")
    assert not os.listdir(tmp_path)


def test_load_starting_weights_passes_heads_to_exclude(tmp_path, monkeypatch):
    calls = []
    model = SimpleNamespace(load_weights=lambda path, by_name, exclude: calls.append(
        (path, by_name, exclude)), find_last=lambda: "last.h5",
        get_imagenet_weights=lambda: "imagenet.h5")
    weights = tmp_path / "mask_rcnn_coco.h5"
    weights.write_bytes(b"")
    monkeypatch.setattr(balloon, "COCO_WEIGHTS_PATH", str(weights))
    balloon.load_starting_weights(model, "coco")
    balloon.load_starting_weights(model, "last")
    balloon.load_starting_weights(model, "imagenet")
    balloon.load_starting_weights(model, "other.h5")
    assert balloon.load_starting_weights(model, "none") is None
    assert calls == [(str(weights), True, balloon.COCO_HEAD_LAYERS), ("last.h5", True, None),
                     ("imagenet.h5", True, None), ("other.h5", True, None)]


def test_cli_arguments():
    args = balloon.parse_args(["train", "--dataset", "d", "--weights", "coco"])
    assert (args.command, args.dataset, args.epochs, args.layers) == ("train", "d", 30, "heads")
    with pytest.raises(SystemExit):
        balloon.parse_args(["splash", "--weights", "last"])


def test_dataset_feeds_the_input_pipeline(via_dataset):
    from mrcnn.data import load_image_gt

    class SmallBalloonConfig(balloon.BalloonConfig):
        IMAGE_MIN_DIM = 64
        IMAGE_MAX_DIM = 64

    root, shapes = via_dataset
    dataset = balloon.BalloonDataset()
    dataset.load_balloon(str(root), "train")
    dataset.prepare()
    image, meta, class_ids, boxes, masks = load_image_gt(dataset, SmallBalloonConfig(), 1,
                                                         use_mini_mask=False)
    drawn, _ = shapes.load_mask(1)
    assert image.shape == (64, 64, 3) and masks.shape == (64, 64, drawn.shape[-1])
    assert class_ids.tolist() == [1] * drawn.shape[-1]
    assert meta[-2:].tolist() == [1, 1]          # active classes: BG and balloon

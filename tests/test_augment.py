"""Augmentation adapters: imgaug and albumentations move masks with the image, exactly."""
import threading

import albumentations as A
import numpy as np
import pytest

from mrcnn import augment, data
from mrcnn.config import Config
from mrcnn.dataset import Dataset
from mrcnn.imgaug_compat import iaa


class BoxesDataset(Dataset):
    """64 x 64 images with rectangular instances given in image_info["rects"].

    rects: list of (y1, x1, y2, x2, class_id), pixels, y2/x2 exclusive. The image is a
    fixed random texture (seeded by the image id) so any pixel move is visible.
    """

    def load(self, images, source="toy"):
        self.add_class("toy", 1, "a")
        self.add_class("toy", 2, "b")
        for i, rects in enumerate(images):
            self.add_image(source, image_id=i, path=None, rects=rects)
        return self

    def load_image(self, image_id):
        rng = np.random.RandomState(image_id)
        return rng.randint(0, 256, (64, 64, 3)).astype(np.uint8)

    def load_mask(self, image_id):
        rects = self.image_info[image_id]["rects"]
        mask = np.zeros((64, 64, len(rects)), dtype=bool)
        for i, (y1, x1, y2, x2, _) in enumerate(rects):
            mask[y1:y2, x1:x2, i] = True
        return mask, np.array([r[4] for r in rects], dtype=np.int32)


class Config64(Config):
    """64 x 64 in, 64 x 64 out: no resizing, so pixels can be compared exactly."""
    NAME = "aug"
    NUM_CLASSES = 3
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 24, 32, 48)
    IMAGES_PER_GPU = 2
    MAX_GT_INSTANCES = 4
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    USE_MINI_MASK = False


RECTS = [(10, 2, 20, 9, 1), (30, 20, 50, 44, 2)]  # a thin box at the left edge, one inside


@pytest.fixture
def dataset():
    ds = BoxesDataset().load([RECTS, RECTS[1:]])
    ds.prepare()
    return ds


def load(dataset, augmentation, image_id=0, seed=0):
    return data.load_image_gt(dataset, Config64(), image_id, augmentation=augmentation,
                              rng=np.random.default_rng(seed))


FLIPS = {
    "imgaug": lambda: iaa.Fliplr(1.0),
    "imgaug_sequential": lambda: iaa.Sequential([iaa.Fliplr(1.0)]),
    "albumentations_compose": lambda: A.Compose([A.HorizontalFlip(p=1.0)]),
    "albumentations_transform": lambda: A.HorizontalFlip(p=1.0),
}


@pytest.mark.parametrize("name", sorted(FLIPS))
def test_horizontal_flip_moves_image_masks_and_boxes_together(dataset, name):
    plain_image = dataset.load_image(0)
    image, meta, class_ids, boxes, masks = load(dataset, FLIPS[name]())
    np.testing.assert_array_equal(image, plain_image[:, ::-1])
    np.testing.assert_array_equal(class_ids, [1, 2])
    # Column x goes to 63 - x, so [x1, x2) becomes [64 - x2, 64 - x1).
    np.testing.assert_array_equal(boxes, [[10, 55, 20, 62], [30, 20, 50, 44]])
    expected = np.zeros((64, 64, 2), dtype=bool)
    expected[10:20, 55:62, 0] = True
    expected[30:50, 20:44, 1] = True
    np.testing.assert_array_equal(masks, expected)


COLOUR = {
    "imgaug_add": lambda: iaa.Add(40),
    "imgaug_multiply_blur": lambda: iaa.Sequential([iaa.Multiply(1.3),
                                                    iaa.GaussianBlur(sigma=1.0)]),
    "albumentations_brightness": lambda: A.Compose(
        [A.RandomBrightnessContrast(brightness_limit=(0.3, 0.3), p=1.0)]),
    "albumentations_invert": lambda: A.InvertImg(p=1.0),
}


@pytest.mark.parametrize("name", sorted(COLOUR))
def test_colour_augmenters_change_the_image_only(dataset, name):
    plain = load(dataset, None)
    changed = load(dataset, COLOUR[name]())
    assert not np.array_equal(changed[0], plain[0])
    for before, after in zip(plain[2:], changed[2:]):   # class ids, boxes, masks
        np.testing.assert_array_equal(after, before)
    if name == "albumentations_invert":
        np.testing.assert_array_equal(changed[0], 255 - plain[0])
    if name == "imgaug_add":
        expected = np.minimum(plain[0].astype(int) + 40, 255)
        np.testing.assert_array_equal(changed[0], expected)


TRANSLATIONS = {
    "imgaug": lambda: iaa.TranslateX(px=-12),
    "albumentations": lambda: A.Affine(translate_px={"x": -12, "y": 0}, p=1.0),
}


@pytest.mark.parametrize("name", sorted(TRANSLATIONS))
def test_instance_pushed_out_by_a_translation_is_dropped(dataset, name):
    image, _, class_ids, boxes, masks = load(dataset, TRANSLATIONS[name]())
    # The first box spans columns 2..8: 12 pixels to the left it is gone.
    np.testing.assert_array_equal(class_ids, [2])
    np.testing.assert_array_equal(boxes, [[30, 8, 50, 32]])
    expected = np.zeros((64, 64, 1), dtype=bool)
    expected[30:50, 8:32, 0] = True
    np.testing.assert_array_equal(masks, expected)
    np.testing.assert_array_equal(image[:, :52], dataset.load_image(0)[:, 12:])


def test_rotation_by_90_degrees_moves_masks_too(dataset):
    # Upstream only moved masks for a fixed list of augmenter names; Rot90 was not in it.
    image, _, class_ids, boxes, masks = load(dataset, iaa.Rot90(1))
    original = dataset.load_image(0)
    _, _, _, _, plain_masks = load(dataset, None)
    np.testing.assert_array_equal(image, np.rot90(original, k=-1))
    np.testing.assert_array_equal(masks, np.rot90(plain_masks, k=-1))
    # Clockwise: row y -> column 63 - y, column x -> row x.
    np.testing.assert_array_equal(boxes[0], [2, 44, 9, 54])


def test_random_augmenters_are_reproducible_per_seed(dataset):
    imgaug_aug = iaa.Sequential([iaa.Fliplr(0.5), iaa.Affine(rotate=(-30, 30)),
                                 iaa.Multiply((0.7, 1.3))])
    album = A.Compose([A.HorizontalFlip(p=0.5), A.Affine(rotate=(-30, 30), p=1.0),
                       A.RandomBrightnessContrast(p=1.0)])
    for aug in (imgaug_aug, album):
        first, again = load(dataset, aug, seed=5), load(dataset, aug, seed=5)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)
        others = [load(dataset, aug, seed=s)[0] for s in range(6, 10)]
        assert any(not np.array_equal(first[0], other) for other in others)


def test_threads_give_the_results_of_sequential_calls():
    """Each thread uses its own copy of the augmenter: the seed alone decides the result."""
    adapter = augment.as_augmentation(iaa.Sequential([iaa.Affine(rotate=(-40, 40)),
                                                      iaa.Add((-30, 30))]))
    image = np.random.RandomState(0).randint(0, 256, (48, 48, 3)).astype(np.uint8)
    masks = np.zeros((48, 48, 2), dtype=bool)
    masks[10:30, 5:20, 0] = masks[25:40, 20:45, 1] = True
    seeds = list(range(24))
    expected = {s: adapter(image, masks, s) for s in seeds}
    results, errors = {}, []

    def work(part):
        try:
            for s in part:
                results[s] = adapter(image, masks, s)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seeds[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(results) == len(seeds)
    for s in seeds:
        np.testing.assert_array_equal(results[s][0], expected[s][0])
        np.testing.assert_array_equal(results[s][1], expected[s][1])


def test_function_augmentation_gets_a_seeded_generator(dataset):
    calls = []

    def shift_down(image, masks, rng):
        calls.append(rng.integers(1000))
        return np.roll(image, 3, axis=0), np.roll(masks, 3, axis=0)

    image, _, _, boxes, _ = load(dataset, shift_down, seed=1)
    np.testing.assert_array_equal(image, np.roll(dataset.load_image(0), 3, axis=0))
    np.testing.assert_array_equal(boxes, [[13, 2, 23, 9], [33, 20, 53, 44]])
    load(dataset, shift_down, seed=1)
    assert calls[0] == calls[1]


def test_size_changing_and_unknown_augmentations_are_rejected(dataset):
    with pytest.raises(ValueError, match="keep the image size"):
        load(dataset, iaa.Resize(0.5))
    with pytest.raises(ValueError, match="keep the image size"):
        load(dataset, A.Resize(32, 32))
    with pytest.raises(TypeError, match="imgaug augmenter, an albumentations transform"):
        augment.as_augmentation("fliplr")
    with pytest.raises(TypeError, match="imgaug augmenter"):
        data.DataGenerator(dataset, Config64(), augmentation=3)


def test_no_augmentation_sources_are_left_alone():
    ds = BoxesDataset().load([RECTS[1:]], source="toy")
    ds.add_image("other", image_id=0, path=None, rects=[RECTS[1]])
    ds.add_class("other", 1, "c")
    ds.prepare()
    generator = data.DataGenerator(ds, Config64(), shuffle=False, seed=0, workers=1,
                                   augmentation=iaa.Fliplr(1.0),
                                   no_augmentation_sources=["other"])
    inputs = generator[0][0]
    images = inputs["input_image"] + np.asarray(Config64.MEAN_PIXEL, dtype=np.float32)
    np.testing.assert_allclose(images[0], ds.load_image(0)[:, ::-1], atol=1e-3)  # flipped
    np.testing.assert_allclose(images[1], ds.load_image(1), atol=1e-3)           # as is


def test_imgaug_and_albumentations_import_on_numpy_2():
    import imgaug

    from mrcnn import imgaug_compat

    assert int(np.__version__.split(".")[0]) >= 2
    assert imgaug.__version__ == "0.4.0"
    assert np.uint16 in np.sctypes["uint"] and np.float64 in np.sctypes["float"]
    sctypes = np.sctypes
    imgaug_compat.restore_numpy_aliases()          # idempotent: existing names are kept
    assert np.sctypes is sctypes
    # Augmenters that used the removed names run (AddElementwise reads np.sctypes paths).
    image = np.full((8, 8, 3), 100, dtype=np.uint8)
    out = iaa.AddElementwise((-5, 5), seed=1)(image=image)
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - 100).max() <= 5
    assert A.HorizontalFlip(p=1.0)(image=image)["image"].shape == (8, 8, 3)

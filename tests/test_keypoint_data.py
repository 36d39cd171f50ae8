"""Keypoints on the data side: Dataset.load_keypoints, its checks, and how load_image_gt and
DataGenerator move keypoints with the image (resize, pad, crop, flips, augmentation,
instance dropping). Frame: (x, y) = (column, row), integer x the centre of column x."""
import re

import numpy as np
import pytest

from mrcnn import data, keypoints, validate
from mrcnn.config import Config
from mrcnn.dataset import Dataset
from mrcnn.validate import DatasetError

NAMES = ("left", "right", "middle")
FLIP_MAP = (("left", "right"),)


class BoxKeypointDataset(Dataset):
    """Rectangles on a black image; each has three keypoints: its top-left corner pixel
    ("left", visible), its top-right corner pixel ("right", visible) and its centre
    ("middle", occluded, v = 1). ``boxes`` per image: list of (y1, x1, y2, x2, class)."""

    def __init__(self, images, shape=(48, 64), crowd=()):
        super().__init__()
        self.add_class("box", 1, "box")
        for index, boxes in enumerate(images):
            self.add_image("box", image_id=f"img{index}", path=None, boxes=boxes,
                           shape=shape, crowd=crowd)
        self.prepare()

    def load_image(self, image_id):
        info = self.image_info[image_id]
        image = np.zeros(info["shape"] + (3,), dtype=np.uint8)
        for y1, x1, y2, x2 in info["boxes"]:
            image[y1:y2, x1:x2] = 200
        return image

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        masks = np.zeros(info["shape"] + (len(info["boxes"]),), dtype=bool)
        for i, (y1, x1, y2, x2) in enumerate(info["boxes"]):
            masks[y1:y2, x1:x2, i] = True
        ids = np.array([-1 if i in info["crowd"] else 1 for i in range(len(info["boxes"]))],
                       dtype=np.int32)
        return masks, ids

    def load_keypoints(self, image_id):
        rows = [[[x1, y1, 2], [x2 - 1, y1, 2], [(x1 + x2 - 1) / 2, (y1 + y2 - 1) / 2, 1]]
                for y1, x1, y2, x2 in self.image_info[image_id]["boxes"]]
        return np.array(rows, dtype=np.float32).reshape(-1, 3, 3)


class KeypointConfig(Config):
    NAME = "kp_data"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 2
    BACKBONE = "resnet18"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 24, 32, 48)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 4
    USE_MINI_MASK = False
    NUM_KEYPOINTS = 3
    KEYPOINT_NAMES = NAMES
    KEYPOINT_FLIP_MAP = FLIP_MAP


def config(**overrides):
    cfg = KeypointConfig()
    for name, value in overrides.items():
        setattr(cfg, name, value)
    return cfg


############################################################
#  Dataset.load_keypoints and its checks
############################################################

class FixedKeypoints(BoxKeypointDataset):
    """One 48x64 image with one box; load_keypoints returns ``value`` verbatim."""

    def __init__(self, value):
        super().__init__([[(10, 20, 30, 40)]])
        self.value = value

    def load_keypoints(self, image_id):
        return self.value


def keypoint_error(value, num_keypoints=3):
    dataset = FixedKeypoints(value)
    with pytest.raises(DatasetError) as info:
        validate.load_checked_keypoints(dataset, 0, (48, 64, 3), 1, num_keypoints)
    assert info.value.image_id == 0 and info.value.source_id == "img0"
    assert str(info.value).startswith("image 0 (source 'box', id 'img0')")
    return str(info.value)


def test_base_dataset_load_keypoints_names_the_class():
    class NoKeypoints(Dataset):
        pass

    with pytest.raises(NotImplementedError, match="NoKeypoints.load_keypoints"):
        NoKeypoints().load_keypoints(0)


def test_missing_load_keypoints_is_an_error_naming_the_image():
    dataset = BoxKeypointDataset([[(10, 20, 30, 40)]])
    dataset.load_keypoints = Dataset.load_keypoints.__get__(dataset)
    with pytest.raises(DatasetError, match=r"image 0 \(source 'box', id 'img0'\).*"
                                           r"BoxKeypointDataset.load_keypoints"):
        validate.load_checked_keypoints(dataset, 0, (48, 64, 3), 1, 3)


@pytest.mark.parametrize("value, message", [
    (np.zeros((1, 3, 2), np.float32), r"keypoints are 1x3x2; .* \[N, 3, 3\]"),
    (np.zeros((3, 3), np.float32), r"keypoints are 3x3;"),
    (np.zeros((2, 3, 3), np.float32), r"for 2 instances but load_mask returned 1 masks"),
    (np.zeros((1, 4, 3), np.float32), r"4 keypoints per instance, but NUM_KEYPOINTS is 3"),
    (np.zeros((1, 3, 3), bool), r"dtype bool"),
    (np.full((1, 3, 3), "a"), r"dtype <U1"),
    ([[[1, 2, 2]] * 3], r"returned a list, not a numpy array"),
])
def test_wrong_shape_or_dtype_is_rejected(value, message):
    text = keypoint_error(value)
    assert re.search(message, text), text


def test_visibility_outside_0_1_2_is_rejected():
    value = np.array([[[21, 11, 2], [30, 11, 3], [25, 15, -1]]], np.float32)
    assert "visibilities [-1.0, 3.0] are not 0" in keypoint_error(value)


def test_labelled_keypoint_outside_the_image_is_rejected_with_its_position():
    # The image is 48 rows x 64 columns: x = 66 is 3 columns past the last centre (63).
    value = np.array([[[21, 11, 2], [66, 11, 1], [25, 15, 2]]], np.float32)
    text = keypoint_error(value)
    assert "keypoint 1 of instance 0 at (x=66, y=11) lies outside the 64x48 image" in text
    value = np.array([[[21, 11, 2], [30, -2, 2], [25, 15, 2]]], np.float32)
    assert "(x=30, y=-2)" in keypoint_error(value)
    value = np.array([[[np.nan, 11, 2], [30, 11, 2], [25, 15, 2]]], np.float32)
    assert "NaN or infinite" in keypoint_error(value)


def test_points_within_the_tolerance_are_clamped_and_unlabelled_ones_zeroed():
    # x = 64 (the border line, as annotation tools put edge points) -> 63; y = -1 -> 0;
    # an unlabelled point far outside (and NaN) is no error and becomes (0, 0, 0).
    value = np.array([[[64, -1, 2], [500, np.nan, 0], [7, 9, 1]]], np.float64)
    dataset = FixedKeypoints(value)
    checked = validate.load_checked_keypoints(dataset, 0, (48, 64, 3), 1, 3)
    assert checked.dtype == np.float32
    np.testing.assert_array_equal(checked, [[[63, 0, 2], [0, 0, 0], [7, 9, 1]]])
    # Integer keypoints are accepted as well.
    checked = validate.check_keypoints(np.array([[[1, 2, 2]]], np.int32), 1, (48, 64))
    assert checked.dtype == np.float32 and checked.tolist() == [[[1, 2, 2]]]


def test_no_instances_accepts_any_empty_array():
    checked = validate.check_keypoints(np.zeros((0,), np.float32), 0, (48, 64), 3)
    assert checked.shape == (0, 3, 3) and checked.dtype == np.float32


def test_validate_dataset_checks_keypoints_when_the_config_has_them():
    bad = FixedKeypoints(np.zeros((2, 3, 3), np.float32))
    errors = validate.validate_dataset(bad, config())
    assert len(errors) == 1 and "for 2 instances" in str(errors[0])
    assert validate.validate_dataset(bad, config(NUM_KEYPOINTS=0, KEYPOINT_NAMES=None,
                                                 KEYPOINT_FLIP_MAP=())) == []


############################################################
#  Geometry (mrcnn.keypoints), worked by hand
############################################################

def test_resize_and_pad_hand_worked():
    # A 32 x 16 (H x W) image in square mode to 64: scale 2 -> 64 x 32, padded by 16
    # columns on the left. x -> (x + 0.5) * 2 - 0.5 + 16, y -> (y + 0.5) * 2 - 0.5.
    points = np.array([[[0, 0, 2], [15, 31, 1], [3, 5, 2]]], np.float32)
    moved = keypoints.resize_keypoints(points, (32, 16, 3), 2, [(0, 0), (16, 16), (0, 0)])
    np.testing.assert_allclose(moved, [[[16.5, 0.5, 2], [46.5, 62.5, 1], [22.5, 10.5, 2]]])


def test_resize_follows_the_image_content():
    # One bright pixel at (x=3, y=5) of a 30 x 20 image; after resize_image the
    # intensity-weighted centre of its blob is where the keypoint maps to.
    image = np.zeros((30, 20, 3), np.uint8)
    image[5, 3] = 255
    molded, window, scale, padding, crop = data.utils.resize_image(image, 64, 64, 0,
                                                                   "square")
    assert scale == 64 / 30 and padding[1][0] > 0
    moved = keypoints.resize_keypoints(np.array([[[3, 5, 2]]], np.float32), image.shape,
                                       scale, padding, crop)
    weight = molded[..., 0].astype(np.float64)
    rows, cols = np.indices(weight.shape)
    centre = ((cols * weight).sum() / weight.sum(), (rows * weight).sum() / weight.sum())
    np.testing.assert_allclose(moved[0, 0, :2], centre, atol=0.05)


def test_crop_subtracts_the_offset_and_marks_cut_off_points():
    points = np.array([[[10, 20, 2], [3, 4, 1]]], np.float32)
    moved = keypoints.resize_keypoints(points, (100, 100, 3), 1, None, crop=(8, 5, 64, 64))
    np.testing.assert_allclose(moved, [[[5, 12, 2], [-2, -4, 1]]])
    np.testing.assert_allclose(keypoints.mark_outside(moved, (64, 64)),
                               [[[5, 12, 2], [0, 0, 0]]])


def test_mark_outside_bounds_are_the_pixel_squares():
    points = np.array([[[-0.5, 0, 2], [-0.51, 0, 2], [63.49, 47.49, 1], [63.5, 0, 2],
                        [5, 47.5, 2]]], np.float32)
    out = keypoints.mark_outside(points, (48, 64, 3))
    assert out[0, :, 2].tolist() == [2, 0, 1, 0, 0]


def test_horizontal_flip_maps_x_to_w_minus_1_minus_x_and_swaps_pairs():
    perm = keypoints.flip_permutation(3, FLIP_MAP, NAMES)
    assert perm.tolist() == [1, 0, 2]
    points = np.array([[[2, 7, 2], [9, 7, 1], [5.5, 9, 1]]], np.float32)
    flipped = keypoints.flip_keypoints_horizontal(points, 16, perm)
    # left <- mirrored right (16 - 1 - 9 = 6), right <- mirrored left (13).
    np.testing.assert_allclose(flipped, [[[6, 7, 1], [13, 7, 2], [9.5, 9, 1]]])
    # Mirrored twice: the original.
    np.testing.assert_allclose(keypoints.flip_keypoints_horizontal(flipped, 16, perm),
                               points)


def test_flip_permutation_by_names_and_indices():
    perm = keypoints.flip_permutation(17, keypoints.COCO_PERSON_FLIP_MAP,
                                      keypoints.COCO_PERSON_KEYPOINT_NAMES)
    assert perm.tolist() == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    assert keypoints.flip_permutation(4, ((0, 3),)).tolist() == [3, 1, 2, 0]
    assert keypoints.flip_permutation(2).tolist() == [0, 1]
    with pytest.raises(ValueError, match="'elbow', which is not in KEYPOINT_NAMES"):
        keypoints.flip_permutation(3, (("left", "elbow"),), NAMES)
    with pytest.raises(ValueError, match="more than one pair"):
        keypoints.flip_permutation(3, (("left", "right"), ("middle", "left")), NAMES)
    with pytest.raises(ValueError, match="index 3 is outside 0..2"):
        keypoints.flip_permutation(3, ((0, 3),))
    with pytest.raises(ValueError, match="KEYPOINT_NAMES has 3 names but NUM_KEYPOINTS"):
        keypoints.flip_permutation(4, (), NAMES)


############################################################
#  Augmentation moves keypoints (imgaug, albumentations, functions)
############################################################

IMAGE = np.zeros((48, 64, 3), np.uint8)
MASKS = np.zeros((48, 64, 1), bool)
MASKS[10:20, 5:15] = True
POINTS = np.array([[[3, 5, 2], [10, 7, 1]]], np.float32)
SWAP = np.array([1, 0])


def augmenters():
    from mrcnn.imgaug_compat import iaa
    import albumentations as A
    # (augmenter, expected keypoints): W = 64, H = 48; a mirror swaps the two points.
    hflip = [[[64 - 1 - 10, 7, 1], [64 - 1 - 3, 5, 2]]]
    vflip = [[[10, 48 - 1 - 7, 1], [3, 48 - 1 - 5, 2]]]
    turn = [[[64 - 1 - 3, 48 - 1 - 5, 2], [64 - 1 - 10, 48 - 1 - 7, 1]]]  # 180°: no swap
    shift = [[[3 + 4, 5 - 2, 2], [10 + 4, 7 - 2, 1]]]
    return [
        ("imgaug Fliplr", iaa.Fliplr(1.0), hflip),
        ("imgaug Flipud", iaa.Flipud(1.0), vflip),
        ("imgaug Affine rotate 180", iaa.Affine(rotate=180), turn),
        ("imgaug Affine translate", iaa.Affine(translate_px={"x": 4, "y": -2}), shift),
        ("albumentations HorizontalFlip", A.HorizontalFlip(p=1), hflip),
        ("albumentations Compose", A.Compose([A.VerticalFlip(p=1), A.RandomBrightnessContrast()]),
         vflip),
        ("albumentations Affine translate", A.Affine(translate_px={"x": 4, "y": -2}, p=1),
         shift),
    ]


@pytest.mark.parametrize("case", range(7))
def test_augmenters_move_keypoints_and_mirrors_swap_them(case):
    name, augmenter, expected = augmenters()[case]
    adapter = keypoints.KeypointAugmentation(augmenter)
    _, masks, moved = adapter(IMAGE, MASKS, POINTS, seed=3, permutation=SWAP)
    np.testing.assert_allclose(moved, expected, atol=1e-3, err_msg=name)
    assert masks.shape == MASKS.shape and masks.sum() == MASKS.sum()


def test_keypoints_follow_the_image_under_a_random_affine():
    # A bright pixel at each keypoint; after a seeded rotation + scale the keypoint lies
    # on the brightest pixel of its own blob (bilinear warp of the image).
    from mrcnn.imgaug_compat import iaa
    image = np.zeros((48, 64, 3), np.uint8)
    points = np.array([[[20, 15, 2], [40, 30, 2]]], np.float32)
    for x, y, _ in points[0]:
        image[int(y), int(x)] = 255
    adapter = keypoints.KeypointAugmentation(iaa.Affine(rotate=(-30, 30), scale=(1.5, 2.0)))
    warped, _, moved = adapter(image, np.zeros((48, 64, 0), bool), points, seed=11)
    for x, y, _ in moved[0]:
        patch = warped[int(round(y)) - 3:int(round(y)) + 4, int(round(x)) - 3:int(round(x)) + 4, 0]
        weight = patch.astype(np.float64)
        rows, cols = np.indices(patch.shape)
        centre = ((cols * weight).sum() / weight.sum() - 3 + round(x),
                  (rows * weight).sum() / weight.sum() - 3 + round(y))
        np.testing.assert_allclose((x, y), centre, atol=0.35)


def test_function_augmentation_gets_points_and_must_accept_them():
    def shift_right(image, masks, rng, keypoints):
        points = keypoints.copy()
        points[:, 0] += 2
        return np.roll(image, 2, axis=1), np.roll(masks, 2, axis=1), points

    adapter = keypoints.KeypointAugmentation(shift_right)
    _, masks, moved = adapter(IMAGE, MASKS, POINTS, seed=0, permutation=SWAP)
    np.testing.assert_allclose(moved, [[[5, 5, 2], [12, 7, 1]]])

    def no_keypoints(image, masks, rng):
        return image, masks

    with pytest.raises(TypeError, match="takes no keypoints"):
        keypoints.KeypointAugmentation(no_keypoints)


############################################################
#  load_image_gt
############################################################

def test_load_image_gt_keeps_five_values_by_default_and_adds_keypoints_on_request():
    dataset = BoxKeypointDataset([[(10, 20, 30, 40), (2, 50, 12, 60)]], shape=(32, 64))
    cfg = config()
    assert len(data.load_image_gt(dataset, cfg, 0)) == 5
    image, meta, class_ids, boxes, masks, points = data.load_image_gt(
        dataset, cfg, 0, with_keypoints=True)
    # 32 x 64 -> square 64: scale 1, padded by 16 rows on top.
    assert image.shape == (64, 64, 3) and points.dtype == np.float32
    np.testing.assert_array_equal(boxes, [[26, 20, 46, 40], [18, 50, 28, 60]])
    np.testing.assert_allclose(points, [[[20, 26, 2], [39, 26, 2], [29.5, 35.5, 1]],
                                        [[50, 18, 2], [59, 18, 2], [54.5, 22.5, 1]]])


def corners_match_boxes(points, boxes, tolerance=1.0):
    """Each row's "left"/"right" keypoints sit on its own box's top corner pixels."""
    y1, x1, y2, x2 = (boxes[:, i].astype(np.float32) for i in range(4))
    np.testing.assert_allclose(points[:, 0, :2], np.stack([x1, y1], 1), atol=tolerance)
    np.testing.assert_allclose(points[:, 1, :2], np.stack([x2 - 1, y1], 1), atol=tolerance)


def test_deprecated_flip_flag_mirrors_and_swaps():
    dataset = BoxKeypointDataset([[(10, 4, 30, 20)]], shape=(64, 64))
    results = [data.load_image_gt(dataset, config(), 0, augment=True, with_keypoints=True,
                                  rng=np.random.default_rng(seed)) for seed in range(6)]
    flipped = [r for r in results if r[3][0, 1] != 4]
    assert flipped and len(flipped) < len(results)
    for result in results:
        corners_match_boxes(result[5], result[3], tolerance=0)
    # Mirrored: box x 44..60; "left" is the mirrored old right corner (19 -> 44).
    np.testing.assert_allclose(flipped[0][5][0, :, :2], [[44, 10], [59, 10], [51.5, 19.5]])


def test_augmentation_dropping_an_instance_drops_its_keypoints():
    # Three boxes; the function shifts the image 40 columns right, pushing the box at
    # x 40..60 out, so two rows remain, each aligned with its own box.
    def shift(image, masks, rng, keypoints):
        out_image, out_masks = np.zeros_like(image), np.zeros_like(masks)
        out_image[:, 40:], out_masks[:, 40:] = image[:, :-40], masks[:, :-40]
        points = keypoints.copy()
        points[:, 0] += 40
        return out_image, out_masks, points

    dataset = BoxKeypointDataset([[(4, 2, 14, 12), (20, 40, 30, 60), (40, 10, 50, 22)]],
                                 shape=(64, 64))
    _, _, class_ids, boxes, _, points = data.load_image_gt(
        dataset, config(), 0, augmentation=shift, with_keypoints=True,
        rng=np.random.default_rng(0))
    assert len(class_ids) == 2 and points.shape == (2, 3, 3)
    np.testing.assert_array_equal(boxes, [[4, 42, 14, 52], [40, 50, 50, 62]])
    corners_match_boxes(points, boxes, tolerance=0)


def test_crop_mode_marks_cut_off_keypoints_invisible():
    # 100 x 100 image cropped to 64 x 64: the seeded crop starts at (y, x) = crop[:2].
    dataset = BoxKeypointDataset([[(30, 30, 50, 50), (70, 2, 98, 98)]], shape=(100, 100))
    cfg = config(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64)
    rng = np.random.default_rng(5)
    crop_rng = np.random.default_rng(5)
    y = int(crop_rng.integers(0, 100 - 64 + 1))
    x = int(crop_rng.integers(0, 100 - 64 + 1))
    _, _, class_ids, boxes, _, points = data.load_image_gt(dataset, cfg, 0, rng=rng,
                                                           with_keypoints=True)
    np.testing.assert_allclose(points[0], [[30 - x, 30 - y, 2], [49 - x, 30 - y, 2],
                                           [39.5 - x, 39.5 - y, 1]])
    # The second box (columns 2..97, rows 70..97) keeps a part in the crop, but its two
    # top corners, 95 columns apart, cannot both lie in 64 columns: here both are cut off
    # (x = 29: columns -27 and 68) and only the centre (20.5, 59.5) remains, occluded.
    assert (x, y) == (29, 24) and len(class_ids) == 2
    np.testing.assert_allclose(points[1], [[0, 0, 0], [0, 0, 0], [49.5 - x, 83.5 - y, 1]])


def test_crowd_instances_have_no_keypoints():
    dataset = BoxKeypointDataset([[(4, 2, 14, 12), (20, 40, 30, 60)]], shape=(64, 64),
                                 crowd=(1,))
    _, _, class_ids, _, _, points = data.load_image_gt(dataset, config(), 0,
                                                       with_keypoints=True)
    assert class_ids.tolist() == [1, -1]
    assert points[0, :, 2].tolist() == [2, 2, 1] and not points[1].any()


############################################################
#  DataGenerator: the input_gt_keypoints batch entry
############################################################

def test_data_generator_batch_layout_and_alignment_after_subsampling():
    # Image 0 has 6 boxes (MAX_GT_INSTANCES = 4: subsampled), image 1 has 1 (3 zero rows).
    six = [(2 + 10 * (i // 3), 2 + 20 * (i % 3), 10 + 10 * (i // 3), 14 + 20 * (i % 3))
           for i in range(6)]
    dataset = BoxKeypointDataset([six, [(30, 30, 50, 60)]], shape=(64, 64))
    generator = data.DataGenerator(dataset, config(), shuffle=False, seed=0, workers=1)
    (inputs,) = generator[0]
    gt = inputs["input_gt_keypoints"]
    assert gt.shape == (2, 4, 3, 3) and gt.dtype == np.float32
    class_ids, boxes = inputs["input_gt_class_ids"], inputs["input_gt_boxes"]
    assert (class_ids[0] > 0).all() and class_ids[1].tolist() == [1, 0, 0, 0]
    corners_match_boxes(gt[0], boxes[0], tolerance=0)
    corners_match_boxes(gt[1, :1], boxes[1, :1], tolerance=0)
    assert not gt[1, 1:].any()
    # The subsampled rows are 4 different instances of the 6.
    assert len({tuple(b) for b in boxes[0].tolist()}) == 4
    values, _ = generator.as_lists(0)
    assert len(values) == 8 and values[-1].shape == (2, 4, 3, 3)


def test_data_generator_with_flips_keeps_left_on_the_left():
    from mrcnn.imgaug_compat import iaa
    dataset = BoxKeypointDataset([[(10, 4, 30, 20)], [(5, 30, 25, 62)]], shape=(64, 64))
    generator = data.DataGenerator(dataset, config(), shuffle=False, seed=1, workers=1,
                                   augmentation=iaa.Fliplr(0.5), steps_per_epoch=4)
    mirrored = 0
    for index in range(4):
        (inputs,) = generator[index]
        for b in range(2):
            boxes = inputs["input_gt_boxes"][b, :1]
            corners_match_boxes(inputs["input_gt_keypoints"][b, :1], boxes, tolerance=0)
            mirrored += int(boxes[0, 1] not in (4, 30))
    assert 0 < mirrored < 8


def test_data_generator_without_keypoints_has_no_keypoint_entry():
    dataset = BoxKeypointDataset([[(10, 4, 30, 20)]], shape=(64, 64))
    cfg = config(NUM_KEYPOINTS=0, KEYPOINT_NAMES=None, KEYPOINT_FLIP_MAP=())
    (inputs,) = data.DataGenerator(dataset, cfg, shuffle=False, seed=0, workers=1)[0]
    assert "input_gt_keypoints" not in inputs


def test_keypoints_on_request_without_num_keypoints_are_flipped_without_a_map():
    dataset = BoxKeypointDataset([[(10, 4, 30, 20)]], shape=(64, 64))
    cfg = config(NUM_KEYPOINTS=0, KEYPOINT_NAMES=None, KEYPOINT_FLIP_MAP=())
    from mrcnn.imgaug_compat import iaa
    _, _, _, boxes, _, points = data.load_image_gt(
        dataset, cfg, 0, augmentation=iaa.Fliplr(1.0), with_keypoints=True,
        rng=np.random.default_rng(0))
    # Mirrored (box x 44..60) but not swapped: "left" is now the top-right corner.
    np.testing.assert_array_equal(boxes, [[10, 44, 30, 60]])
    np.testing.assert_allclose(points[0, :, :2], [[59, 10], [44, 10], [51.5, 19.5]])

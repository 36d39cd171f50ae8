"""Image/mask resizing of mrcnn.utils: resize, resize_image, resize_mask."""
import cv2
import numpy as np
import pytest
import skimage.transform

from mrcnn import utils

SHAPES = [  # (h, w) -> (out_h, out_w): enlarge, shrink, odd factors, identity
    ((100, 50), (128, 64)),
    ((50, 100), (25, 50)),
    ((37, 53), (100, 143)),
    ((64, 64), (31, 17)),
    ((7, 5), (21, 15)),
    ((33, 47), (33, 47)),
]


def _skimage(image, shape, mode):
    return skimage.transform.resize(image, shape, order=1, mode=mode,
                                    preserve_range=True, anti_aliasing=False)


@pytest.mark.parametrize("in_shape, out_shape", SHAPES)
def test_resize_agrees_with_skimage(in_shape, out_shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, in_shape + (3,)).astype(np.uint8)
    ours = utils.resize(image, out_shape, preserve_range=True)
    assert ours.shape == out_shape + (3,) and ours.dtype == np.float64
    # Same pixel grid and edge handling as skimage's mode="edge" ...
    np.testing.assert_allclose(ours, _skimage(image, out_shape, "edge"), atol=1e-9)
    # ... and as skimage's mode="constant" away from a 1-pixel border, which
    # skimage blends with cval=0 when enlarging.
    constant = _skimage(image, out_shape, "constant")
    np.testing.assert_allclose(ours[1:-1, 1:-1], constant[1:-1, 1:-1], atol=1e-9)
    if out_shape[0] <= in_shape[0] and out_shape[1] <= in_shape[1]:
        np.testing.assert_allclose(ours, constant, atol=1e-9)


def test_resize_dtypes_and_ranges_follow_skimage():
    image = np.full((4, 6), 255, dtype=np.uint8)
    scaled = utils.resize(image, (8, 12))                 # to [0, 1] like skimage
    np.testing.assert_allclose(scaled, 1.0)
    as_float32 = utils.resize(image.astype(np.float32), (8, 12))
    assert as_float32.dtype == np.float32
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2] = True
    # bool is read as 0/1 (skimage itself refuses bool with order=1)
    np.testing.assert_allclose(utils.resize(mask, (8, 4)),
                               _skimage(mask.astype(float), (8, 4), "edge"))
    # a channel entry in output_shape and a single channel are kept
    assert utils.resize(np.ones((4, 6, 1)), (8, 12, 1)).shape == (8, 12, 1)
    # many channels (more than OpenCV takes in one call)
    many = np.random.default_rng(0).uniform(size=(5, 6, 600))
    np.testing.assert_allclose(utils.resize(many, (10, 3)), _skimage(many, (10, 3), "edge"),
                               atol=1e-9)
    # anything but bilinear goes to skimage
    np.testing.assert_array_equal(
        utils.resize(mask, (8, 8), order=0),
        skimage.transform.resize(mask, (8, 8), order=0, anti_aliasing=False))


def test_resize_image_uint8_matches_the_skimage_recipe():
    """resize_image == skimage resize then astype, up to float noise on integers."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (60, 90, 3)).astype(np.uint8)
    ours, window, scale, _, _ = utils.resize_image(image, min_dim=80, max_dim=128)
    assert scale == 80 / 60 and window == (24, 4, 104, 124)
    y1, x1, y2, x2 = window
    reference = _skimage(image, (y2 - y1, x2 - x1), "constant").astype(np.uint8)
    inside = ours[y1 + 1:y2 - 1, x1 + 1:x2 - 1].astype(int) - reference[1:-1, 1:-1]
    assert np.abs(inside).max() <= 1
    assert (inside == 0).mean() > 0.999


@pytest.mark.parametrize("in_shape, kwargs", [
    ((427, 640), dict(max_dim=1024, min_dim=683)), ((333, 517), dict(max_dim=1024, min_dim=660)),
    ((375, 500), dict(max_dim=1088, min_dim=800)), ((37, 53), dict(max_dim=192, min_scale=2.7)),
    ((64, 64), dict(max_dim=32, min_dim=None)), ((1000, 1500), dict(max_dim=1024))])
def test_resize_image_of_uint8_is_the_float64_recipe_to_one_level_in_rare_pixels(
        in_shape, kwargs):
    """8-bit images resize in float32: against skimage's float64 bilinear (edge mode, the
    edge replication resize_image uses) truncated to uint8, a pixel can differ by one level
    where the float64 value lies within float32 rounding of an integer. Measured here: 0 to
    74 of 2.1 million values at COCO sizes, at most a share of 3.5e-4 (15 of 42,900 at
    37x53 -> 100x143); bound 1e-3."""
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, in_shape + (3,)).astype(np.uint8)
    ours, window, scale, _, _ = utils.resize_image(image, **kwargs)
    y1, x1, y2, x2 = window
    out_shape = (y2 - y1, x2 - x1)
    assert scale != 1 and ours.dtype == np.uint8
    reference = _skimage(image, out_shape, "edge").astype(np.uint8)
    difference = ours[y1:y2, x1:x2].astype(int) - reference
    assert np.abs(difference).max() <= 1
    assert np.count_nonzero(difference) <= 1e-3 * difference.size
    # Interpolating between equal values is exact.
    flat_out, *_ = utils.resize_image(np.full(in_shape + (3,), 117, np.uint8), **kwargs)
    assert np.all(flat_out[y1:y2, x1:x2] == 117)


# ------------------------------------------------------------- resize_image

def test_resize_image_square_hand_numbers():
    image = np.ones((100, 50, 3), dtype=np.uint8)
    out, window, scale, padding, crop = utils.resize_image(
        image, min_dim=64, max_dim=128, mode="square")
    # short side 50 -> 64: scale 1.28; long side 128 fits max_dim.
    assert scale == pytest.approx(1.28)
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    assert window == (0, 32, 128, 96)
    assert padding == [(0, 0), (32, 32), (0, 0)]
    assert crop is None
    assert out[:, 32:96].min() == 1 and out[:, :32].max() == 0 and out[:, 96:].max() == 0


def test_resize_image_square_without_scaling_and_odd_padding():
    image = np.ones((101, 50, 3), dtype=np.float32)
    out, window, scale, padding, _ = utils.resize_image(image, max_dim=128)
    assert scale == 1 and out.dtype == np.float32
    # 27 rows of padding: 13 above, 14 below; 78 columns: 39 each side
    assert padding == [(13, 14), (39, 39), (0, 0)]
    assert window == (13, 39, 114, 89)
    np.testing.assert_array_equal(out[13:114, 39:89], image)


def test_resize_image_square_max_dim_caps_min_dim():
    image = np.zeros((100, 50, 3), dtype=np.uint8)
    out, window, scale, padding, _ = utils.resize_image(image, min_dim=800, max_dim=128)
    # min_dim asks for x16, the long side would be 1600 > 128: scale 128/100
    assert scale == pytest.approx(1.28)
    assert window == (0, 32, 128, 96)


def test_resize_image_min_scale():
    image = np.zeros((100, 50, 3), dtype=np.uint8)
    out, window, scale, padding, _ = utils.resize_image(
        image, min_dim=None, max_dim=256, min_scale=2)
    assert scale == 2
    assert window == (28, 78, 228, 178)
    assert padding == [(28, 28), (78, 78), (0, 0)]


def test_resize_image_pad64():
    image = np.ones((100, 50, 3), dtype=np.uint8)
    out, window, scale, padding, crop = utils.resize_image(image, mode="pad64")
    assert scale == 1 and crop is None
    assert out.shape == (128, 64, 3)
    assert padding == [(14, 14), (7, 7), (0, 0)]
    assert window == (14, 7, 114, 57)
    # with min_dim=64 the image is first scaled to 128 x 64: no padding
    out, window, scale, padding, _ = utils.resize_image(image, min_dim=64, mode="pad64")
    assert out.shape == (128, 64, 3) and scale == pytest.approx(1.28)
    assert padding == [(0, 0), (0, 0), (0, 0)] and window == (0, 0, 128, 64)
    # max_dim plays no part in pad64
    out, *_ = utils.resize_image(image, min_dim=64, max_dim=64, mode="pad64")
    assert out.shape == (128, 64, 3)
    with pytest.raises(ValueError, match="multiple of 64"):
        utils.resize_image(image, min_dim=100, mode="pad64")


def test_resize_image_crop():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (100, 50, 3)).astype(np.uint8)
    scaled, *_ = utils.resize_image(image, min_dim=64, mode="pad64")  # 128 x 64
    np.random.seed(7)
    out, window, scale, padding, crop = utils.resize_image(image, min_dim=64, mode="crop")
    assert scale == pytest.approx(1.28)
    assert out.shape == (64, 64, 3)
    assert window == (0, 0, 64, 64)
    assert padding == [(0, 0), (0, 0), (0, 0)]
    y, x, h, w = crop
    assert (h, w) == (64, 64) and x == 0 and 0 <= y <= 64
    np.testing.assert_array_equal(out, scaled[y:y + 64, x:x + 64])
    # the crop is drawn with np.random: seeded calls repeat, others vary
    np.random.seed(7)
    assert utils.resize_image(image, min_dim=64, mode="crop")[4] == crop
    offsets = {utils.resize_image(image, min_dim=64, mode="crop")[4][0] for _ in range(20)}
    assert len(offsets) > 1


def test_resize_image_none_and_bad_modes():
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    out, window, scale, padding, crop = utils.resize_image(image, 5, 5, mode="none")
    assert out is image and window == (0, 0, 10, 20) and scale == 1 and crop is None
    with pytest.raises(ValueError, match="not supported"):
        utils.resize_image(image, mode="stretch")
    with pytest.raises(ValueError, match="max_dim"):
        utils.resize_image(image, mode="square")


@pytest.mark.parametrize("width, kept", [(3, (12, 27)), (40, None)])
def test_resize_image_keeps_two_pixels_of_a_very_elongated_image(width, kept):
    # Columns 10, 20, 30, ... A 5000 x width image in a 64 square: scale 64/5000, the
    # width rounds to 0 (width 3) or 1 (width 40), and is kept at 2 pixels instead, so the
    # window's normalised width (x2 - 1 - x1) / 63 stays positive.
    image = np.repeat((10 * (1 + np.arange(width)) % 256).astype(np.uint8)[None, :, None],
                      5000, axis=0).repeat(3, axis=2)
    out, window, scale, padding, _ = utils.resize_image(image, max_dim=64)
    assert scale == pytest.approx(64 / 5000)
    assert out.shape == (64, 64, 3)
    assert window == (0, 31, 64, 33) and padding == [(0, 0), (31, 31), (0, 0)]
    assert out[:, :31].max() == 0 and out[:, 33:].max() == 0
    if kept:
        # 3 columns onto 2: output column p samples (p + 0.5) * 3 / 2 - 0.5 = 0.25, 1.75,
        # i.e. 10 + 2.5 = 12.5 and 20 + 7.5 = 27.5, truncated to uint8.
        np.testing.assert_array_equal(out[:, 31, 0], kept[0])
        np.testing.assert_array_equal(out[:, 32, 0], kept[1])
    full = utils.resize_mask(np.ones((5000, width, 1), bool), scale, padding)
    expected = np.zeros((64, 64), bool)
    expected[:, 31:33] = True
    np.testing.assert_array_equal(full[..., 0], expected)


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 0, 3)])
def test_resize_image_rejects_an_empty_image(shape):
    with pytest.raises(ValueError, match="empty"):
        utils.resize_image(np.zeros(shape, np.uint8), min_dim=64, max_dim=64)


# -------------------------------------------------------------- resize_mask

def test_mask_nearest_sampling_matches_opencv_exact_nearest():
    rng = np.random.default_rng(0)
    mask = rng.uniform(size=(37, 23, 4)) > 0.5
    for scale in (0.5, 1.28, 2.7):
        ours = utils.resize_mask(mask, scale, [(0, 0), (0, 0), (0, 0)])
        h, w = round(37 * scale), round(23 * scale)
        ref = cv2.resize(mask.astype(np.uint8), (w, h),
                         interpolation=cv2.INTER_NEAREST_EXACT).astype(bool)
        assert ours.dtype == bool
        np.testing.assert_array_equal(ours, ref)


def _disc_scene(shape=(100, 50)):
    """An image with a bright disc and its instance masks (disc, everything)."""
    disc = np.zeros(shape, np.uint8)
    cv2.circle(disc, (22, 61), 17, 1, thickness=-1)
    image = np.repeat(disc[..., None] * 200, 3, axis=2).astype(np.uint8)
    masks = np.stack([disc.astype(bool), np.ones(shape, bool)], axis=-1)
    return image, masks


def _centroid(mask):
    ys, xs = np.nonzero(mask)
    return np.array([ys.mean(), xs.mean()])


@pytest.mark.parametrize("mode, kwargs", [
    ("none", {}),
    ("square", dict(min_dim=64, max_dim=128)),
    ("square", dict(max_dim=128)),
    ("square", dict(max_dim=80)),          # shrink
    ("square", dict(min_dim=200, max_dim=512)),
    ("pad64", {}),
    ("pad64", dict(min_dim=128)),
    ("crop", dict(min_dim=64)),
    ("crop", dict(min_dim=40)),
])
def test_resize_mask_lines_up_with_resize_image(mode, kwargs):
    image, masks = _disc_scene()
    np.random.seed(1)
    out_image, window, scale, padding, crop = utils.resize_image(image, mode=mode, **kwargs)
    out_masks = utils.resize_mask(masks, scale, padding, crop)
    assert out_masks.shape[:2] == out_image.shape[:2]
    assert out_masks.dtype == bool
    # The "everything" instance covers exactly the window.
    y1, x1, y2, x2 = window
    expected = np.zeros(out_image.shape[:2], bool)
    expected[y1:y2, x1:x2] = True
    np.testing.assert_array_equal(out_masks[..., 1], expected)
    # The disc instance lies where the disc went in the image: same pixel
    # grid, so only boundary pixels differ and the centres agree to a small
    # fraction of a pixel (sampling on a corner-aligned grid, as
    # scipy.ndimage.zoom does, is off by up to half a pixel here).
    seen = out_image[..., 0] >= 100
    disc = out_masks[..., 0]
    assert np.logical_xor(seen, disc).sum() <= 0.015 * np.logical_or(seen, disc).sum()
    assert np.abs(_centroid(seen) - _centroid(disc)).max() < 0.1

"""ShapesDataset: deterministic specs, exact masks, occlusion."""
import numpy as np
import pytest

from mrcnn.shapes import SHAPE_NAMES, ShapesDataset, draw_shape


def make(count=20, height=128, width=128, seed=0):
    ds = ShapesDataset()
    ds.load_shapes(count, height, width, seed=seed)
    ds.prepare()
    return ds


def full_mask(name, dims, height, width):
    """The whole (unoccluded) mask of one shape."""
    return draw_shape(np.zeros([height, width], np.uint8), name, dims, 1).astype(bool)


def test_classes():
    ds = make(1)
    assert ds.class_names == ["BG", "square", "circle", "triangle"]
    assert ds.source_class_ids["shapes"] == [0, 1, 2, 3]


def test_same_seed_same_images_and_masks():
    a, b = make(10, seed=3), make(10, seed=3)
    for i in a.image_ids:
        np.testing.assert_array_equal(a.load_image(i), b.load_image(i))
        ma, ca = a.load_mask(i)
        mb, cb = b.load_mask(i)
        np.testing.assert_array_equal(ma, mb)
        np.testing.assert_array_equal(ca, cb)
    # Rendering twice gives the same image (no hidden state).
    np.testing.assert_array_equal(a.load_image(4), a.load_image(4))


def test_image_k_independent_of_count():
    small, large = make(5, seed=7), make(30, seed=7)
    for k in range(5):
        assert small.image_reference(k) == large.image_reference(k)
        np.testing.assert_array_equal(small.load_image(k), large.load_image(k))


def test_different_seeds_differ():
    a, b = make(5, seed=0), make(5, seed=1)
    assert any(a.image_reference(k) != b.image_reference(k) for k in range(5))


@pytest.mark.parametrize("size", [(128, 128), (96, 160)])
def test_masks_exact_and_disjoint(size):
    height, width = size
    ds = make(40, height, width, seed=11)
    counts = np.zeros(4, int)
    for i in ds.image_ids:
        info = ds.image_info[i]
        image = ds.load_image(i)
        masks, class_ids = ds.load_mask(i)
        spec = ds.image_reference(i)
        assert image.shape == (height, width, 3) and image.dtype == np.uint8
        assert masks.shape == (height, width, len(spec)) and masks.dtype == bool
        assert class_ids.dtype == np.int32
        assert 1 <= len(spec) <= 4
        # No empty masks; disjoint masks.
        assert masks.any(axis=(0, 1)).all()
        assert masks.sum(axis=-1).max() <= 1
        fulls = [full_mask(name, dims, height, width) for name, _, dims in spec]
        for k, (name, color, dims) in enumerate(spec):
            assert class_ids[k] == SHAPE_NAMES.index(name) + 1
            counts[class_ids[k]] += 1
            # The visible part is the whole shape minus every shape drawn after it.
            above = np.zeros([height, width], bool)
            for later in fulls[k + 1:]:
                above |= later
            np.testing.assert_array_equal(masks[..., k], fulls[k] & ~above)
            # Every masked pixel has the shape's colour in the image.
            assert (image[masks[..., k]] == np.array(color, np.uint8)).all()
            # Shapes lie inside the image (nothing is clipped away).
            x, y, s = dims
            assert s >= min(height, width) // 16 and s <= min(height, width) // 4
        background = ~masks.any(axis=-1)
        assert (image[background] == np.array(info["bg_color"], np.uint8)).all()
    assert (counts[1:] > 0).all(), "each class appears"


def test_square_mask_is_its_box_and_circle_area():
    ds = make(60, 256, 256, seed=5)
    squares = circles = 0
    for i in ds.image_ids:
        for name, _, (x, y, s) in ds.image_reference(i):
            full = full_mask(name, (x, y, s), 256, 256)
            if name == "square":
                box = np.zeros_like(full)
                box[y - s:y + s + 1, x - s:x + s + 1] = True
                np.testing.assert_array_equal(full, box)
                squares += 1
            elif name == "circle":
                assert full.sum() == pytest.approx(np.pi * s * s, rel=0.12)
                ys, xs = np.nonzero(full)
                assert ys.min() == y - s and ys.max() == y + s
                assert xs.min() == x - s and xs.max() == x + s
                circles += 1
            else:
                ys, _ = np.nonzero(full)
                assert ys.min() == y - s and ys.max() == y + s
    assert squares and circles


def test_unoccluded_square_in_load_mask_is_exact_box():
    ds = ShapesDataset()
    ds.load_shapes(0, 64, 64)
    ds.add_image("shapes", 0, None, width=64, height=64, bg_color=(0, 0, 0),
                 shapes=[("circle", (255, 0, 0), (40, 40, 8)), ("square", (0, 255, 0), (20, 20, 5))])
    ds.prepare()
    masks, class_ids = ds.load_mask(0)
    np.testing.assert_array_equal(class_ids, [2, 1])
    expected = np.zeros([64, 64], bool)
    expected[15:26, 15:26] = True
    np.testing.assert_array_equal(masks[..., 1], expected)


def test_occlusion_trims_and_drops():
    ds = ShapesDataset()
    ds.load_shapes(0, 64, 64)
    ds.add_image("shapes", 0, None, width=64, height=64, bg_color=(0, 0, 0), shapes=[
        ("square", (255, 0, 0), (20, 20, 6)),    # partly under the circle
        ("square", (0, 0, 255), (45, 45, 3)),    # wholly under the big square: dropped
        ("circle", (0, 255, 0), (28, 28, 6)),
        ("square", (9, 9, 9), (45, 45, 10)),
    ])
    ds.prepare()
    masks, class_ids = ds.load_mask(0)
    np.testing.assert_array_equal(class_ids, [1, 2, 1])
    assert masks.shape == (64, 64, 3)
    assert masks.sum(axis=-1).max() == 1
    first = full_mask("square", (20, 20, 6), 64, 64)
    circle = full_mask("circle", (28, 28, 6), 64, 64)
    assert (first & circle).any()
    np.testing.assert_array_equal(masks[..., 0], first & ~circle)
    image = ds.load_image(0)
    assert (image[masks[..., 0]] == [255, 0, 0]).all()
    assert not (image == [0, 0, 255]).all(axis=-1).any()


@pytest.mark.parametrize("side", [64, 1024])
def test_sizes_scale_with_image(side):
    ds = make(8, side, side, seed=2)
    for i in ds.image_ids:
        for _, color, (x, y, s) in ds.image_reference(i):
            assert side // 16 <= s <= side // 4
            assert all(isinstance(c, int) for c in (*color, x, y, s))
    masks, _ = ds.load_mask(0)
    assert masks.shape[:2] == (side, side) and masks.any(axis=(0, 1)).all()


def test_shapes_are_visible_against_background():
    ds = make(30, seed=4)
    for i in ds.image_ids:
        bg = np.array(ds.image_info[i]["bg_color"])
        for _, color, _ in ds.image_reference(i):
            assert np.abs(np.array(color) - bg).max() >= 60

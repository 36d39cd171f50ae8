"""PyramidROIAlign: level assignment by hand and pooled values against numpy bilinear."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.image_meta import compose_image_meta
from mrcnn.nn.roi_align import PyramidROIAlign, roi_pyramid_level


def meta_for(height, width, num_classes=2):
    return compose_image_meta(0, (height, width, 3), (height, width, 3),
                              (0, 0, height, width), 1.0, np.ones(num_classes))


def square(side):
    """A normalised box of the given side at the origin."""
    return [0.0, 0.0, side, side]


def test_levels_by_hand_in_a_1024_image():
    # sqrt(area) = 1024, so the level is 4 + round(log2(side * 1024 / 224)).
    boxes = np.array([
        square(224 / 1024),     # log2(1) = 0            -> 4
        square(112 / 1024),     # -1                     -> 3
        square(448 / 1024),     # +1                     -> 5
        square(16 / 1024),      # log2(1/14) = -3.8 -> -4 -> 0, clipped to 2
        square(1.0),            # log2(4.57) = 2.2 -> 6, clipped to 5
        [0.1, 0.2, 0.6, 0.325],  # h .5, w .125: sqrt = .25, log2(1.14) = .19 -> 4
        [0.0, 0.0, 0.0, 0.0],   # padding: log2(0) = -inf -> 2, no NaN
        [0.5, 0.5, 0.4, 0.6],   # negative height (malformed): 2, no NaN
    ], np.float32)
    levels = roi_pyramid_level(boxes, [1024, 1024]).numpy()
    np.testing.assert_array_equal(levels, [4, 3, 5, 2, 5, 4, 2, 2])


def test_levels_use_each_images_area():
    # 512 x 256: sqrt(area) = 362.04. Side 1 -> log2(1.616) = .69 -> 5;
    # side .3 -> log2(.485) = -1.04 -> 3. In 224 x 224: side .3 -> log2(.3) = -1.7 -> 2.
    boxes = np.array([[square(1.0), square(0.3)], [square(1.0), square(0.3)]], np.float32)
    shapes = np.array([[512, 256], [224, 224]], np.float32)
    levels = roi_pyramid_level(boxes, shapes).numpy()
    np.testing.assert_array_equal(levels, [[5, 3], [4, 2]])


def test_5x5_arange_samples_by_hand():
    # 224 x 224 image: level = 4 + round(log2(side)); side .5 -> level 3, so P3 is read.
    p3 = np.stack([np.arange(25, dtype=np.float32).reshape(5, 5),
                   100 + np.arange(25, dtype=np.float32).reshape(5, 5)])[..., None]
    others = [np.full((2, n, n, 1), -1.0, np.float32) for n in (10, 3, 2)]
    boxes = np.array([
        [[0.125, 0.125, 0.625, 0.625], [0.0, 0.0, 0.0, 0.0]],
        [[0.0, 0.25, 0.5, 0.75], [0.0, 0.0, 0.0, 0.0]],
    ], np.float32)
    meta = np.stack([meta_for(224, 224)] * 2)
    out = PyramidROIAlign((3, 3))([boxes, meta, others[0], p3, others[1], others[2]]).numpy()
    assert out.shape == (2, 2, 3, 3, 1)
    # Box 1 samples y, x at 0.125 * 4 + i * 0.5 * 4 / 2 = 0.5, 1.5, 2.5; the map is
    # 5y + x and bilinear is exact on it: 3 + 5i + j.
    np.testing.assert_allclose(out[0, 0, ..., 0], [[3, 4, 5], [8, 9, 10], [13, 14, 15]])
    # Box 2 samples y at 0, 1, 2 and x at 1, 2, 3 of the second image: 100 + 5i + 1 + j.
    np.testing.assert_allclose(out[1, 0, ..., 0],
                               [[101, 102, 103], [106, 107, 108], [111, 112, 113]])
    # Zero padding boxes pool from P2 at its (0, 0) cell: finite -1 everywhere.
    np.testing.assert_array_equal(out[:, 1], np.full((2, 3, 3, 1), -1.0))


def ref_level(box, image_hw):
    h, w = box[2] - box[0], box[3] - box[1]
    if h * w <= 0:
        return 2
    ratio = math.sqrt(h * w) / (224 / math.sqrt(image_hw[0] * image_hw[1]))
    return min(5, max(2, 4 + round(math.log2(ratio))))


def ref_crop(feature, box, pool):
    """Bilinear crop of one [H, W, C] map, tf.image.crop_and_resize's sampling grid."""
    height, width, channels = feature.shape
    out = np.zeros(pool + (channels,))
    y1, x1, y2, x2 = (float(v) for v in box)
    for i in range(pool[0]):
        y = y1 * (height - 1) + i * (y2 - y1) * (height - 1) / (pool[0] - 1)
        for j in range(pool[1]):
            x = x1 * (width - 1) + j * (x2 - x1) * (width - 1) / (pool[1] - 1)
            if not (0 <= y <= height - 1 and 0 <= x <= width - 1):
                continue                                   # extrapolation value 0
            top, left = math.floor(y), math.floor(x)
            bottom, right = math.ceil(y), math.ceil(x)
            dy, dx = y - top, x - left
            upper = feature[top, left] * (1 - dx) + feature[top, right] * dx
            lower = feature[bottom, left] * (1 - dx) + feature[bottom, right] * dx
            out[i, j] = upper * (1 - dy) + lower * dy
    return out


def test_random_boxes_pool_from_their_level_in_box_order():
    rng = np.random.default_rng(11)
    batch, count, pool = 2, 14, (4, 3)
    side = rng.uniform(0.02, 0.9, (batch, count, 2))
    corner = rng.uniform(-0.05, 1.0, (batch, count, 2)) * (1 - side)
    boxes = np.concatenate([corner, corner + side], -1).astype(np.float32)
    boxes[1, -2:] = 0.0                                    # padding rows
    maps = [rng.normal(size=(batch, n, n, 3)).astype(np.float32) for n in (16, 8, 4, 2)]
    image_hw = (1024, 1024)                                # the level formula's image
    meta = np.stack([meta_for(*image_hw)] * batch)
    out = PyramidROIAlign(pool)([boxes, meta] + maps).numpy()
    assert out.shape == (batch, count) + pool + (3,)
    used = set()
    for b in range(batch):
        for n in range(count):
            level = ref_level(boxes[b, n], image_hw)
            used.add(level)
            expected = ref_crop(maps[level - 2][b], boxes[b, n], pool)
            np.testing.assert_allclose(out[b, n], expected, atol=1e-5,
                                       err_msg=f"box {b},{n} level {level}")
    assert used == {2, 3, 4, 5}


def test_model_shapes_gradient_and_config():
    boxes = keras.Input((6, 4))
    meta = keras.Input((14,))
    maps = [keras.Input((n, n, 5)) for n in (16, 8, 4, 2)]
    layer = PyramidROIAlign((7, 7), name="roi_align_classifier")
    out = layer([boxes, meta] + maps)
    assert tuple(out.shape) == (None, 6, 7, 7, 5)
    clone = PyramidROIAlign.from_config(layer.get_config())
    assert clone.pool_shape == (7, 7) and clone.name == "roi_align_classifier"

    rng = np.random.default_rng(5)
    values = [tf.constant(rng.normal(size=(1, n, n, 5)), tf.float32) for n in (16, 8, 4, 2)]
    box = tf.constant([[[0.1, 0.1, 0.5, 0.5]] + [[0.0] * 4] * 5], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(values)
        pooled = clone([box, meta_for(1024, 1024)[None]] + values)
        total = tf.reduce_sum(pooled[:, 0])
    grads = tape.gradient(total, values)
    # A 0.4 box in a 1024 image: 4 + round(log2(0.4 * 1024 / 224)) = 4 + 1 = 5.
    assert float(tf.reduce_sum(tf.abs(grads[3]))) > 0
    assert all(float(tf.reduce_sum(tf.abs(g))) == 0 for g in grads[1:3])

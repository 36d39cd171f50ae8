"""Graph box arithmetic (nn/box_ops.py): the size clamp of apply_box_deltas, by hand."""
import math

import numpy as np
import tensorflow as tf

from mrcnn.nn import box_ops


def refine(boxes, deltas, **kwargs):
    return box_ops.apply_box_deltas(tf.constant(boxes, tf.float32),
                                    tf.constant(deltas, tf.float32), **kwargs).numpy()


def test_max_log_scale_is_detectron2s_bound():
    assert math.isclose(box_ops.MAX_LOG_SCALE, math.log(62.5), rel_tol=1e-12)


def test_ordinary_deltas_are_not_clamped():
    # (0, 0, .4, .2): centre (.2, .1), size (.4, .2). dy = .5 -> centre y .4,
    # dx = -.25 -> centre x .05, height * 2 = .8, width / 2 = .1.
    got = refine([[0, 0, .4, .2]], [[0.5, -0.25, math.log(2), -math.log(2)]])
    np.testing.assert_allclose(got, [[0, 0, .8, .1]], atol=1e-6)
    # Just below the bound: 60x growth of a .01 box about its centre .5.
    got = refine([[.495, .495, .505, .505]], [[0, 0, math.log(60), math.log(60)]])
    np.testing.assert_allclose(got, [[.2, .2, .8, .8]], atol=1e-5)


def test_huge_size_deltas_grow_a_box_62_5_times_at_most():
    # (.2, .2, .4, .4): centre .3, size .2 -> at most 12.5, edges .3 -/+ 6.25.
    deltas = [[0, 0, 100.0, 1e4], [0, 0, 1e30, np.inf]]
    got = refine([[.2, .2, .4, .4]] * 2, deltas)
    np.testing.assert_allclose(got, [[-5.95, -5.95, 6.55, 6.55]] * 2, rtol=1e-5)
    # Without the clamp, exp() overflows: inf size, NaN edges (upstream's arithmetic).
    unclamped = refine([[.2, .2, .4, .4]], [[0, 0, 100.0, 100.0]], max_log_scale=None)
    assert not np.all(np.isfinite(unclamped))


def test_huge_negative_size_deltas_give_an_empty_finite_box_at_the_centre():
    got = refine([[.2, .2, .4, .6]], [[0, 0, -1e4, -100.0]])
    np.testing.assert_allclose(got, [[.3, .4, .3, .4]], atol=1e-6)


def test_clamped_boxes_can_be_pooled():
    boxes = refine([[.2, .2, .4, .4]], [[3.0, -2.0, 500.0, 500.0]])
    boxes = box_ops.clip_boxes(tf.constant(boxes), tf.constant([0.0, 0.0, 1.0, 1.0]))
    np.testing.assert_allclose(boxes.numpy(), [[0, 0, 1, 1]])
    image = tf.reshape(tf.range(25, dtype=tf.float32), [1, 5, 5, 1])
    crops = tf.image.crop_and_resize(image, boxes, tf.zeros([1], tf.int32), (2, 2))
    np.testing.assert_allclose(crops.numpy()[0, ..., 0], [[0, 4], [20, 24]])

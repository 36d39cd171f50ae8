"""PyramidAnchors: in-graph anchors equal the numpy anchors, normalised."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import utils
from mrcnn.nn.anchors import PyramidAnchors, generate_pyramid_anchors_graph

SCALES = (32, 64, 128, 256, 512)
RATIOS = [0.5, 1, 2]
STRIDES = [4, 8, 16, 32, 64]


def loop_anchors(image_hw, scales, ratios, strides, anchor_stride):
    """Reference: normalised anchors built one box at a time (level, y, x, ratio)."""
    h, w = image_hw
    boxes = []
    for scale, stride in zip(scales, strides):
        feat_h, feat_w = math.ceil(h / stride), math.ceil(w / stride)
        for y in range(0, feat_h, anchor_stride):
            for x in range(0, feat_w, anchor_stride):
                for ratio in ratios:
                    bh = scale / math.sqrt(ratio)
                    bw = scale * math.sqrt(ratio)
                    cy, cx = y * stride, x * stride
                    y1, x1, y2, x2 = cy - bh / 2, cx - bw / 2, cy + bh / 2, cx + bw / 2
                    boxes.append([y1 / (h - 1), x1 / (w - 1),
                                  (y2 - 1) / (h - 1), (x2 - 1) / (w - 1)])
    return np.array(boxes)


def layer_anchors(image_hw, anchor_stride=1, static=True, scales=SCALES, strides=STRIDES):
    """Run PyramidAnchors on zero inputs of the image's and feature maps' shapes."""
    h, w = image_hw
    shapes = [(math.ceil(h / s), math.ceil(w / s)) for s in strides]
    layer = PyramidAnchors(scales, RATIOS, strides, anchor_stride)
    if static:
        inputs = [keras.Input((h, w, 3))] + [keras.Input(s + (2,)) for s in shapes]
    else:
        inputs = [keras.Input((None, None, 3))] + [keras.Input((None, None, 2))
                                                   for _ in shapes]
    model = keras.Model(inputs, layer(inputs))
    data = [np.zeros((1, h, w, 3), np.float32)] + [np.zeros((1,) + s + (2,), np.float32)
                                                   for s in shapes]
    return model(data).numpy(), model.outputs[0].shape


@pytest.mark.parametrize("image_hw, count", [
    # 128 x 128: 3 ratios * (32^2 + 16^2 + 8^2 + 4^2 + 2^2) = 3 * 1364
    ((128, 128), 4092),
    # 256 x 192: 3 * (64*48 + 32*24 + 16*12 + 8*6 + 4*3) = 3 * 4092
    ((256, 192), 12276),
])
def test_anchor_count_and_values_match_loop_reference(image_hw, count):
    anchors, static_shape = layer_anchors(image_hw)
    assert anchors.dtype == np.float32
    assert anchors.shape == (count, 4)
    assert tuple(static_shape) == (count, 4)
    np.testing.assert_allclose(anchors, loop_anchors(image_hw, SCALES, RATIOS, STRIDES, 1),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("image_hw", [(128, 128), (256, 192)])
def test_anchors_equal_numpy_pyramid_anchors_normalised(image_hw):
    shapes = utils.compute_backbone_shapes(_config_like(), image_hw)
    expected = utils.norm_boxes(
        utils.generate_pyramid_anchors(SCALES, RATIOS, shapes, STRIDES, 1), image_hw)
    anchors, _ = layer_anchors(image_hw)
    np.testing.assert_array_equal(anchors, expected)


def _config_like():
    class Strides:
        BACKBONE = "resnet50"
        BACKBONE_STRIDES = STRIDES
    return Strides()


def test_first_anchor_by_hand():
    # P2, scale 32, ratio 0.5 at the corner (0, 0): h = 32 / sqrt(.5) = 45.2548,
    # w = 32 * sqrt(.5) = 22.6274; pixel box (-22.6274, -11.3137, 22.6274, 11.3137),
    # normalised in a 128 x 128 image by (box - [0, 0, 1, 1]) / 127.
    anchors, _ = layer_anchors((128, 128))
    half_h, half_w = 16 * math.sqrt(2), 8 * math.sqrt(2)
    expected = [-half_h / 127, -half_w / 127, (half_h - 1) / 127, (half_w - 1) / 127]
    np.testing.assert_allclose(anchors[0], expected, atol=1e-7)
    # The fourth anchor is ratio 0.5 at the next x position, 4 pixels right.
    np.testing.assert_allclose(anchors[3] - anchors[0], [0, 4 / 127, 0, 4 / 127], atol=1e-7)


def test_dynamic_shapes_give_the_same_anchors():
    static, _ = layer_anchors((256, 192))
    dynamic, dynamic_shape = layer_anchors((256, 192), static=False)
    assert tuple(dynamic_shape) == (None, 4)
    np.testing.assert_array_equal(dynamic, static)


def test_anchor_stride_two():
    scales, strides = (16, 32), (4, 8)
    anchors, _ = layer_anchors((64, 64), anchor_stride=2, scales=scales, strides=strides)
    # Level 1: 16x16 cells, every 2nd -> 8*8; level 2: 8x8 -> 4*4; 3 ratios each.
    assert anchors.shape == (3 * (64 + 16), 4)
    np.testing.assert_allclose(anchors, loop_anchors((64, 64), scales, RATIOS, strides, 2),
                               atol=1e-6)


def test_pixel_anchors_function_matches_numpy():
    shapes = [(5, 3), (3, 2)]
    got = generate_pyramid_anchors_graph((8, 16), [1, 2], shapes, (4, 8), 1).numpy()
    expected = utils.generate_pyramid_anchors((8, 16), [1, 2], shapes, (4, 8), 1)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)


def test_layer_has_no_weights_and_round_trips_config():
    layer = PyramidAnchors(SCALES, RATIOS, STRIDES, 2, name="anchors")
    clone = PyramidAnchors.from_config(layer.get_config())
    assert clone.scales == [32.0, 64.0, 128.0, 256.0, 512.0]
    assert clone.ratios == [0.5, 1.0, 2.0]
    assert clone.feature_strides == STRIDES
    assert clone.anchor_stride == 2
    assert clone.name == "anchors"
    image = tf.zeros((2, 32, 32, 3))
    maps = [tf.zeros((2, 32 // s, 32 // s, 1)) for s in (4, 8, 16, 32)] + [tf.zeros((2, 1, 1, 1))]
    out = clone([image] + maps)
    assert clone.weights == []
    assert out.shape == (3 * (4 * 4 + 2 * 2 + 1 + 1 + 1), 4)

"""Anchor generation and backbone shapes of mrcnn.utils."""
from types import SimpleNamespace

import numpy as np
import pytest

from mrcnn import utils

SCALES = (32, 64, 128, 256, 512)
RATIOS = [0.5, 1, 2]
STRIDES = [4, 8, 16, 32, 64]


def test_tiny_anchor_grid_by_hand():
    anchors = utils.generate_anchors(8, RATIOS, (2, 2), 4, 1)
    r = np.sqrt(2.0)
    # scale 8: ratio 0.5 -> h = 8*sqrt(2), w = 8/sqrt(2); ratio 1 -> 8 x 8;
    # ratio 2 -> h = 8/sqrt(2), w = 8*sqrt(2). Half sizes 4r and 2r.
    at_origin = np.array([[-4 * r, -2 * r, 4 * r, 2 * r],
                          [-4, -4, 4, 4],
                          [-2 * r, -4 * r, 2 * r, 4 * r]])
    # centres at cell corners (y, x) * 4, row-major: (0,0), (0,4), (4,0), (4,4)
    expected = np.concatenate([at_origin + [cy, cx, cy, cx]
                               for cy, cx in [(0, 0), (0, 4), (4, 0), (4, 4)]])
    assert anchors.shape == (12, 4)
    np.testing.assert_allclose(anchors, expected)


def test_anchor_stride_skips_cells():
    anchors = utils.generate_anchors(16, [1], (3, 5), 8, 2)
    # rows 0, 2 and columns 0, 2, 4, times stride 8
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    expected = [(y, x) for y in (0, 16) for x in (0, 16, 32)]
    np.testing.assert_allclose(centres, expected)
    np.testing.assert_allclose(anchors[:, 2:] - anchors[:, :2], 16)


def test_several_scales_are_ordered_ratio_major_at_each_position():
    scales, ratios = [10, 20], [0.25, 1]
    anchors = utils.generate_anchors(scales, ratios, (2, 3), 5, 1)
    expected = []
    for y in range(2):
        for x in range(3):
            for ratio in ratios:
                for scale in scales:
                    h, w = scale / np.sqrt(ratio), scale * np.sqrt(ratio)
                    cy, cx = y * 5, x * 5
                    expected.append([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2])
    np.testing.assert_allclose(anchors, expected)


def _backbone_config(**overrides):
    fields = dict(BACKBONE="resnet101", BACKBONE_STRIDES=STRIDES,
                  COMPUTE_BACKBONE_SHAPE=None)
    fields.update(overrides)
    return SimpleNamespace(**fields)


def test_compute_backbone_shapes():
    shapes = utils.compute_backbone_shapes(_backbone_config(), (1024, 1024, 3))
    np.testing.assert_array_equal(shapes, [[256, 256], [128, 128], [64, 64],
                                           [32, 32], [16, 16]])
    assert np.issubdtype(shapes.dtype, np.integer)
    # sides that do not divide: ceil
    shapes = utils.compute_backbone_shapes(_backbone_config(), (100, 130, 3))
    np.testing.assert_array_equal(shapes, [[25, 33], [13, 17], [7, 9], [4, 5], [2, 3]])


def test_compute_backbone_shapes_callable_backbone():
    seen = []

    def shape_fn(image_shape):
        seen.append(image_shape)
        return np.array([[7, 7]])

    config = _backbone_config(BACKBONE=lambda x: x, COMPUTE_BACKBONE_SHAPE=shape_fn)
    np.testing.assert_array_equal(
        utils.compute_backbone_shapes(config, (64, 64, 3)), [[7, 7]])
    assert seen == [(64, 64, 3)]


def test_pyramid_anchors_1024_defaults():
    shapes = utils.compute_backbone_shapes(_backbone_config(), (1024, 1024, 3))
    anchors = utils.generate_pyramid_anchors(SCALES, RATIOS, shapes, STRIDES, 1)
    assert anchors.shape == (261888, 4)
    # levels are concatenated in order, each equal to generate_anchors
    start = 0
    for scale, shape, stride in zip(SCALES, shapes, STRIDES):
        level = utils.generate_anchors(scale, RATIOS, shape, stride, 1)
        np.testing.assert_array_equal(anchors[start:start + len(level)], level)
        start += len(level)
    assert start == len(anchors)
    # the last anchor: P6 cell (15, 15) at 960 px, scale 512, ratio 2
    h, w = 512 / np.sqrt(2), 512 * np.sqrt(2)
    np.testing.assert_allclose(anchors[-1], [960 - h / 2, 960 - w / 2,
                                             960 + h / 2, 960 + w / 2])


@pytest.mark.parametrize("anchor_stride, expected", [(1, 261888), (2, 65472)])
def test_pyramid_anchor_counts(anchor_stride, expected):
    shapes = [[256, 256], [128, 128], [64, 64], [32, 32], [16, 16]]
    anchors = utils.generate_pyramid_anchors(SCALES, RATIOS, shapes, STRIDES, anchor_stride)
    assert len(anchors) == expected

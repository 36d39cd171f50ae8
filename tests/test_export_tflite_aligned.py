"""TFLite export of models pooling with ROI_ALIGN_MODE "aligned" (the shapes recipe's).

The builtin ROI pooling (gathers instead of CropAndResize) equals the graph's aligned
ROIAlign on random maps and boxes, including boxes smaller than a cell and boxes over the
border; a converted aligned model equals detect() as the upstream-mode files do.
"""
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.export import tflite
from mrcnn.export.builtin_ops import aligned_crop_builtin
from mrcnn.nn.roi_align import aligned_crop_and_resize

from test_export import ExportConfig, assert_equal_to_detect, random_model, shapes_image


def _random_boxes(rng, count, height, width):
    """Continuous boxes of the map: ordinary ones, ones under a cell, ones over the edges."""
    y1 = rng.uniform(-2.0, height, count)
    x1 = rng.uniform(-2.0, width, count)
    sides = np.where(rng.uniform(size=count) < 0.3, rng.uniform(0.0, 0.8, count),
                     rng.uniform(1.0, max(height, width), count))
    boxes = np.stack([y1, x1, y1 + sides * rng.uniform(0.5, 1.5, count), x1 + sides], 1)
    boxes[0] = [0.0, 0.0, height, width]                     # the whole map
    boxes[1] = [height - 0.3, width - 0.3, height, width]    # a sliver at the corner
    return boxes.astype(np.float32)


@pytest.mark.parametrize("pool_shape,ratio", [((7, 7), 2), ((4, 5), 1), ((3, 3), 3)])
def test_builtin_aligned_crop_equals_the_graph(pool_shape, ratio):
    rng = np.random.default_rng(ratio)
    feature_map = rng.normal(size=(1, 9, 13, 4)).astype(np.float32)
    boxes = _random_boxes(rng, 40, 9, 13)
    expected = aligned_crop_and_resize(tf.constant(feature_map), tf.constant(boxes),
                                       tf.zeros([40], tf.int32), pool_shape, ratio)
    actual = aligned_crop_builtin(tf.constant(feature_map), tf.constant(boxes), pool_shape,
                                  ratio)
    assert actual.shape == (40,) + pool_shape + (4,)
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=0, atol=1e-5)


class AlignedExportConfig(ExportConfig):
    ROI_ALIGN_MODE = "aligned"


@pytest.mark.slow
def test_aligned_model_converts_and_equals_detect(tmp_path):
    pytest.importorskip("ai_edge_litert", reason="running TFLite models needs ai-edge-litert")
    from ai_edge_litert.interpreter import Interpreter

    model = random_model(tmp_path / "logs", AlignedExportConfig())
    path = tflite.export_tflite(model, str(tmp_path / "aligned.tflite"))      # ~20 CPU-s
    runner = Interpreter(model_path=path).get_signature_runner()
    for height, width, seed in ((96, 128, 1), (128, 72, 3)):
        image = shapes_image(height, width, seed)
        expected = model.detect([image])[0]
        assert_equal_to_detect(expected, runner(images=image[None]), 0, image.shape)

"""ClassMasks: each detection's mask channel of its class, by hand."""
import numpy as np

from mrcnn.nn.class_masks import ClassMasks


def test_each_row_gets_its_class_channel_and_padding_rows_zeros():
    # masks[b, d, y, x, c] = 1000 b + 100 d + 10 c + (2 y + x): every value names its place.
    b, d, y, x, c = np.meshgrid(np.arange(2), np.arange(3), np.arange(2), np.arange(2),
                                np.arange(4), indexing="ij")
    masks = (1000 * b + 100 * d + 10 * c + 2 * y + x).astype(np.float32)
    detections = np.zeros((2, 3, 6), np.float32)
    detections[0, :, 4] = [3, 1, 0]      # image 0: classes 3, 1, then a padding row
    detections[1, :, 4] = [2, 2, 0]
    detections[..., 5] = 0.5
    picked = np.asarray(ClassMasks()([masks, detections]))
    assert picked.shape == (2, 3, 2, 2) and picked.dtype == np.float32
    corner = np.array([[0, 1], [2, 3]], np.float32)
    np.testing.assert_array_equal(picked[0, 0], 30 + corner)
    np.testing.assert_array_equal(picked[0, 1], 100 + 10 + corner)
    np.testing.assert_array_equal(picked[1, 0], 1000 + 20 + corner)
    np.testing.assert_array_equal(picked[1, 1], 1000 + 100 + 20 + corner)
    np.testing.assert_array_equal(picked[:, 2], 0)


def test_the_layer_round_trips_its_config():
    layer = ClassMasks(name="detection_masks")
    clone = ClassMasks.from_config(layer.get_config())
    assert clone.name == "detection_masks" and clone.dtype == "float32"
    assert clone.compute_output_shape(((None, 100, 28, 28, 81), (None, 100, 6))) == (
        None, 100, 28, 28)

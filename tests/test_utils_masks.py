"""Mask helpers of mrcnn.utils: mini masks and unmolding."""
import cv2
import numpy as np
import pytest

from mrcnn import utils


def _mask_iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def _drawn_instances(shape=(120, 160)):
    """Filled circle, triangle and square drawn with OpenCV: bool [H, W, 3]."""
    layers = [np.zeros(shape, np.uint8) for _ in range(3)]
    cv2.circle(layers[0], (50, 40), 25, 1, thickness=-1)
    triangle = np.array([[90, 100], [150, 110], [110, 20]], dtype=np.int32)
    cv2.fillPoly(layers[1], [triangle], 1)
    cv2.rectangle(layers[2], (10, 80), (45, 112), 1, thickness=-1)
    return np.stack(layers, axis=-1).astype(bool)


@pytest.mark.parametrize("mini_shape", [(56, 56), (28, 28), (20, 40)])
def test_minimize_expand_round_trip(mini_shape):
    mask = _drawn_instances()
    bbox = utils.extract_bboxes(mask)
    mini = utils.minimize_mask(bbox, mask, mini_shape)
    assert mini.shape == mini_shape + (3,)
    assert mini.dtype == bool
    restored = utils.expand_mask(bbox, mini, mask.shape)
    assert restored.shape == mask.shape
    assert restored.dtype == bool
    for i in range(mask.shape[-1]):
        assert _mask_iou(mask[..., i], restored[..., i]) > 0.9
        # nothing is painted outside the instance's box
        y1, x1, y2, x2 = bbox[i]
        outside = restored[..., i].copy()
        outside[y1:y2, x1:x2] = False
        assert not outside.any()


def test_minimize_mask_is_identity_when_box_matches_mini_shape():
    rng = np.random.default_rng(0)
    mask = np.zeros((30, 30, 1), dtype=bool)
    mask[5:15, 7:17, 0] = rng.uniform(size=(10, 10)) > 0.5
    mask[5, 7, 0] = mask[14, 16, 0] = True   # pin the box to 10 x 10
    bbox = utils.extract_bboxes(mask)
    mini = utils.minimize_mask(bbox, mask, (10, 10))
    np.testing.assert_array_equal(mini[..., 0], mask[5:15, 7:17, 0])
    np.testing.assert_array_equal(utils.expand_mask(bbox, mini, (30, 30, 3)), mask)


def test_minimize_mask_rejects_empty_instance():
    mask = _drawn_instances()
    mask[..., 1] = False
    bbox = utils.extract_bboxes(mask)
    with pytest.raises(ValueError, match="instance 1"):
        utils.minimize_mask(bbox, mask, (56, 56))


def test_expand_mask_zero_area_box_gives_empty_mask():
    mini = np.ones((8, 8, 2), dtype=bool)
    bbox = np.array([[0, 0, 0, 0], [2, 3, 6, 9]])
    full = utils.expand_mask(bbox, mini, (10, 12))
    assert not full[..., 0].any()
    assert full[..., 1].sum() == 4 * 6 and full[2:6, 3:9, 1].all()


def test_unmold_mask_hand_case():
    # Enlarging [[1, 0], [0, 0]] to 4 x 4 bilinearly (half-pixel centres,
    # edges replicated) gives rows/cols weights (1, .75, .25, 0): the outer
    # product is >= 0.5 only on the top-left 2 x 2.
    mask = np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    full = utils.unmold_mask(mask, (10, 20, 14, 24), (30, 40, 3))
    assert full.shape == (30, 40) and full.dtype == bool
    expected = np.zeros((30, 40), dtype=bool)
    expected[10:12, 20:22] = True
    np.testing.assert_array_equal(full, expected)


def test_unmold_mask_threshold_is_inclusive_and_zero_box_is_empty():
    half = np.full((28, 28), 0.5, dtype=np.float32)
    full = utils.unmold_mask(half, np.array([3, 4, 13, 9]), (20, 20))
    assert full.sum() == 10 * 5 and full[3:13, 4:9].all()
    below = np.full((28, 28), 0.49, dtype=np.float32)
    assert not utils.unmold_mask(below, (3, 4, 13, 9), (20, 20)).any()
    assert not utils.unmold_mask(half, (5, 5, 5, 9), (20, 20)).any()


def test_unmold_mask_of_a_disc_matches_the_drawn_disc():
    disc = np.zeros((28, 28), np.uint8)
    cv2.circle(disc, (14, 14), 13, 1, thickness=-1)
    full = utils.unmold_mask(disc.astype(np.float32), (20, 30, 76, 86), (100, 120))
    reference = np.zeros((100, 120), np.uint8)
    cv2.circle(reference, (58, 48), 27, 1, thickness=-1)
    assert _mask_iou(full, reference.astype(bool)) > 0.9

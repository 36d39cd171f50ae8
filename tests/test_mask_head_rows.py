"""MASK_HEAD_POSITIVES_ONLY: the mask head on the leading rows only, against all rows.

The mask loss reads the predictions of positive rows only, so it is unchanged exactly when
those predictions do not depend on the other rows: true for frozen BatchNorm (moving
statistics), false for trained BatchNorm (statistics of the rows in the batch).
"""
import keras
import numpy as np
import pytest

from mrcnn.nn.heads import mask_head

ROWS, LEADING, POOL, CHANNELS, NUM_CLASSES = 12, 4, 4, 8, 3


def head_model(train_bn):
    keras.utils.set_random_seed(0)
    pooled = keras.Input((None, POOL, POOL, CHANNELS))
    rois = keras.Input((None, 4))
    masks = mask_head(pooled, rois, NUM_CLASSES, train_bn=train_bn, channels=CHANNELS)
    return keras.Model([pooled, rois], masks)


def pooled_rows():
    """[2, ROWS, POOL, POOL, C]: leading rows like positives, the rest shifted and wider
    (background ROIs and zero padding pool other features)."""
    rng = np.random.default_rng(0)
    pooled = rng.normal(0.0, 1.0, (2, ROWS, POOL, POOL, CHANNELS)).astype(np.float32)
    pooled[:, LEADING:] = 3.0 * pooled[:, LEADING:] + 2.0
    pooled[:, -2:] = 0.0
    rois = np.tile([[0.1, 0.1, 0.5, 0.5]], (2, ROWS, 1)).astype(np.float32)
    return pooled, rois


def leading_minus_all(train_bn):
    """Largest change of the leading rows' mask probabilities, in a training call, when
    the head runs on the leading rows only instead of all rows."""
    model = head_model(train_bn)
    pooled, rois = pooled_rows()
    every_row = model([pooled, rois], training=True).numpy()[:, :LEADING]
    leading = model([pooled[:, :LEADING], rois[:, :LEADING]], training=True).numpy()
    return float(np.max(np.abs(leading - every_row)))


def test_frozen_batch_norm_gives_the_same_masks_on_the_leading_rows():
    assert leading_minus_all(train_bn=False) < 1e-6


@pytest.mark.parametrize("train_bn", [None, True])
def test_trained_batch_norm_takes_its_statistics_from_the_rows_it_runs_on(train_bn):
    # Measured: 0.23 here (probabilities in [0, 1]); frozen: 0.0.
    assert leading_minus_all(train_bn) > 0.01

"""mrcnn.boundary against outlines and distances counted by hand."""
import numpy as np
import pytest

from mrcnn.boundary import (boundary_f_score, boundary_pixels, boundary_precision_recall,
                            matched_boundary_f_scores)


def _square(top, left, size=10, shape=(20, 24)):
    mask = np.zeros(shape, dtype=bool)
    mask[top:top + size, left:left + size] = True
    return mask


def test_outline_of_a_square_is_its_ring_of_36_pixels():
    edge = boundary_pixels(_square(5, 5))
    expected = _square(5, 5) & ~_square(6, 6, size=8)   # 100 - 64 = 36 pixels
    assert np.count_nonzero(edge) == 36
    np.testing.assert_array_equal(edge, expected)


def test_outline_runs_along_the_image_border():
    mask = np.zeros((6, 6), dtype=bool)
    mask[:3, :3] = True                     # touches the top and left borders
    edge = boundary_pixels(mask)
    assert np.count_nonzero(edge) == 8      # 9 pixels less the one inside, (1, 1)
    assert not edge[1, 1] and edge[0, 0] and edge[2, 2]


def test_one_pixel_mask_is_its_own_outline():
    mask = np.zeros((5, 5), dtype=bool)
    mask[2, 2] = True
    np.testing.assert_array_equal(boundary_pixels(mask), mask)


def test_identical_masks_score_one():
    assert boundary_f_score(_square(5, 5), _square(5, 5)) == 1.0


def test_shift_within_the_tolerance_scores_one():
    # Shifted 2 columns: every outline pixel of one lies within 2 px of the other's.
    assert boundary_f_score(_square(5, 7), _square(5, 5), tolerance=2) == 1.0
    # Tolerance 1, truth columns 5..14, prediction columns 7..16 (36 outline px each):
    #   top and bottom rows, columns 7..15: on or 1 px from a true row pixel    18 hit
    #   column 16 of those rows: 2 px from (5|14, 14)                           2 miss
    #   left column 7, rows 6..13: rows 6 and 13 are 1 px from a true row;
    #     rows 7..12 are 2 px from column 5                                     2 hit, 6 miss
    #   right column 16, rows 6..13: 2 px from column 14                        8 miss
    # 20 of 36; the recall counts the mirror image.
    precision, recall = boundary_precision_recall(_square(5, 7), _square(5, 5), tolerance=1)
    assert precision == pytest.approx(20 / 36)
    assert recall == pytest.approx(20 / 36)


def test_shift_of_three_columns_counted_by_hand():
    # Truth: rows 5..14, columns 5..14. Prediction: rows 5..14, columns 8..17.
    # Predicted outline (36 px) against the true outline, tolerance 2:
    #   top and bottom rows, columns 8..14: on the true rows (distance 0)    14 px hit
    #   columns 15, 16 of those rows: 1 and 2 px from (5|14, 14)              4 px hit
    #   column 17 of those rows: 3 px from the nearest true pixel            2 px miss
    #   left column 8, rows 6..13: rows 6, 7, 12, 13 are 1-2 px from a true
    #     top/bottom row pixel; rows 8..11 are 3 px from column 5             4 hit, 4 miss
    #   right column 17, rows 6..13: 3 px from column 14                     8 px miss
    # 22 of 36 hit; the recall counts the mirror image, also 22 of 36.
    pred, gt = _square(5, 8), _square(5, 5)
    precision, recall = boundary_precision_recall(pred, gt, tolerance=2)
    assert precision == pytest.approx(22 / 36)
    assert recall == pytest.approx(22 / 36)
    assert boundary_f_score(pred, gt, tolerance=2) == pytest.approx(22 / 36)


def test_precision_and_recall_differ_for_a_mask_inside_another():
    # Prediction: a 4x4 square in the middle of the 10x10 truth (rows/columns 8..11).
    # Its outline (12 px) lies 3 px from the truth's: precision 0 at tolerance 2.
    # At tolerance 3 all 12 predicted outline pixels hit (precision 1), but of the
    # truth's 36 outline pixels only those within 3 px of the small square hit: the
    # middle 4 of each side (e.g. (5, 8..11), 3 px above (8, 8..11)) -> 16 of 36.
    pred = np.zeros((20, 24), dtype=bool)
    pred[8:12, 8:12] = True
    gt = _square(5, 5)
    assert boundary_precision_recall(pred, gt, tolerance=2) == (0.0, 0.0)
    assert boundary_f_score(pred, gt, tolerance=2) == 0.0
    precision, recall = boundary_precision_recall(pred, gt, tolerance=3)
    assert precision == 1.0
    assert recall == pytest.approx(16 / 36)
    assert boundary_f_score(pred, gt, tolerance=3) == pytest.approx(
        2 * 1.0 * (16 / 36) / (1.0 + 16 / 36))


def test_empty_masks():
    empty = np.zeros((8, 8), dtype=bool)
    assert boundary_f_score(empty, empty) == 1.0
    assert boundary_precision_recall(empty, _square(1, 1, size=4, shape=(8, 8))) == (0.0, 0.0)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(20, 24\).*\(8, 8\)"):
        boundary_f_score(_square(5, 5), np.zeros((8, 8), dtype=bool))


def test_matched_scores_follow_the_match_and_skip_unmatched():
    gt = np.stack([_square(5, 5), _square(5, 12, size=6)], axis=-1)
    pred = np.stack([_square(5, 12, size=6), _square(5, 8), _square(0, 0, size=3)], axis=-1)
    scores = matched_boundary_f_scores(pred, gt, pred_match=[1, 0, -1], tolerance=2)
    np.testing.assert_allclose(scores, [1.0, 22 / 36])

"""Box helpers of mrcnn.utils: bboxes, IoU, NMS, deltas, normalisation."""
import numpy as np
import pytest

from mrcnn import utils


# ---------------------------------------------------------------- extract_bboxes

def test_extract_bboxes_exclusive_end_and_empty_instance():
    mask = np.zeros((8, 10, 3), dtype=bool)
    mask[2:5, 3:7, 0] = True          # rows 2..4, cols 3..6
    mask[0, 0, 1] = True              # a single pixel
    mask[7, 9, 1] = True              # ... and the far corner
    # instance 2 stays empty
    boxes = utils.extract_bboxes(mask)
    assert boxes.dtype == np.int32
    np.testing.assert_array_equal(boxes, [[2, 3, 5, 7],
                                          [0, 0, 8, 10],
                                          [0, 0, 0, 0]])


def test_extract_bboxes_numeric_mask_and_no_instances():
    mask = np.zeros((4, 4, 1), dtype=np.uint8)
    mask[1, 2, 0] = 7
    np.testing.assert_array_equal(utils.extract_bboxes(mask), [[1, 2, 2, 3]])
    assert utils.extract_bboxes(np.zeros((4, 4, 0), bool)).shape == (0, 4)


# ------------------------------------------------------------------------ IoU

def _area(b):
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


@pytest.mark.parametrize("other, expected", [
    ((5, 5, 15, 15), 25 / 175),       # overlap 5x5, union 100 + 100 - 25
    ((0, 10, 10, 20), 0.0),           # touching edge: x2 is exclusive
    ((10, 10, 20, 20), 0.0),          # touching corner
    ((30, 30, 40, 40), 0.0),          # disjoint
    ((2, 2, 4, 4), 4 / 100),          # contained
    ((0, 0, 10, 10), 1.0),            # identical
    ((0, 5, 10, 15), 50 / 150),       # half shifted
])
def test_compute_iou_hand_numbers(other, expected):
    box = np.array([0, 0, 10, 10])
    boxes = np.array([other])
    iou = utils.compute_iou(box, boxes, _area(box), _area(boxes))
    assert iou.shape == (1,)
    assert iou[0] == pytest.approx(expected)


def _overlaps_reference(boxes1, boxes2):
    out = np.zeros((len(boxes1), len(boxes2)))
    for i, a in enumerate(boxes1):
        for j, b in enumerate(boxes2):
            ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = ih * iw
            union = _area(a) + _area(b) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def test_compute_overlaps_3x4_against_loop_reference():
    boxes1 = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 40]])
    boxes2 = np.array([[0, 0, 10, 10], [0, 10, 10, 20], [2, 2, 12, 12],
                       [25, 25, 35, 45]])
    overlaps = utils.compute_overlaps(boxes1, boxes2)
    assert overlaps.shape == (3, 4)
    assert overlaps.dtype == np.float64
    np.testing.assert_allclose(overlaps, _overlaps_reference(boxes1, boxes2))
    # two hand-worked entries
    assert overlaps[0, 2] == pytest.approx(64 / 136)
    assert overlaps[0, 1] == 0.0


def test_compute_overlaps_many_rows_and_degenerate_boxes():
    rng = np.random.default_rng(0)
    # enough rows that the IoU is computed in several blocks
    yx = rng.uniform(0, 200, (9000, 2))
    hw = rng.uniform(1, 60, (9000, 2))
    boxes1 = np.concatenate([yx, yx + hw], axis=1).astype(np.float32)
    boxes2 = boxes1[rng.choice(9000, 500, replace=False)] + 3
    overlaps = utils.compute_overlaps(boxes1, boxes2)
    assert overlaps.dtype == np.float32
    for j in range(0, 500, 50):   # columns against compute_iou
        ref = utils.compute_iou(boxes2[j], boxes1, _area(boxes2[j]), _area(boxes1))
        np.testing.assert_allclose(overlaps[:, j], ref, rtol=1e-5, atol=1e-6)
    # zero-area pairs give 0, not NaN
    zero = np.zeros((2, 4))
    np.testing.assert_array_equal(utils.compute_overlaps(zero, zero), np.zeros((2, 2)))
    assert utils.compute_overlaps(np.zeros((0, 4)), boxes2).shape == (0, 500)


def test_compute_overlaps_masks_hand_numbers_and_empty():
    m1 = np.zeros((4, 4, 2), dtype=bool)
    m1[:2, :2, 0] = True              # 4 px
    m1[:, :, 1] = True                # 16 px
    m2 = np.zeros((4, 4, 3), dtype=bool)
    m2[:2, :, 0] = True               # 8 px, contains m1[0]
    # m2[..., 1] empty
    m2[3, 3, 2] = True
    overlaps = utils.compute_overlaps_masks(m1, m2)
    np.testing.assert_allclose(overlaps, [[4 / 8, 0, 0], [8 / 16, 0, 1 / 16]])
    assert np.isfinite(utils.compute_overlaps_masks(m2, m2)).all()
    assert utils.compute_overlaps_masks(m1, np.zeros((4, 4, 0))).shape == (2, 0)
    assert utils.compute_overlaps_masks(np.zeros((4, 4, 0)), m2).shape == (0, 3)


# ------------------------------------------------------------------------ NMS

def _nms_reference(boxes, scores, threshold):
    """Slow greedy NMS: highest score first, ties by lower index."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        ok = True
        for k in keep:
            a, b = boxes[i], boxes[k]
            ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = ih * iw
            union = _area(a) + _area(b) - inter
            if union > 0 and inter / union > threshold:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def _random_boxes(rng, n, size=100):
    yx = rng.uniform(0, size, (n, 2))
    hw = rng.uniform(5, 40, (n, 2))
    return np.concatenate([yx, yx + hw], axis=1).astype(np.float32)


def _random_case(seed, n=60):
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, n)
    # scores on a coarse grid so that many are tied
    scores = np.round(rng.uniform(0, 1, n), 1).astype(np.float32)
    boxes[5] = boxes[3]               # an exact duplicate box
    scores[5] = scores[3]             # ... with a tied score
    return boxes, scores


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_slow_reference(seed, threshold):
    boxes, scores = _random_case(seed)
    keep = utils.non_max_suppression(boxes, scores, threshold)
    assert keep.dtype == np.int32
    assert keep.tolist() == _nms_reference(boxes, scores, threshold)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_nms_matches_tensorflow(seed, threshold):
    tf = pytest.importorskip("tensorflow")
    boxes, scores = _random_case(seed)
    expected = tf.image.non_max_suppression(
        boxes, scores, max_output_size=len(boxes), iou_threshold=threshold).numpy()
    keep = utils.non_max_suppression(boxes, scores, threshold)
    assert keep.tolist() == expected.tolist()


def test_nms_hand_case_and_tie_order():
    boxes = np.array([[0, 0, 10, 10], [0, 1, 10, 11], [20, 20, 30, 30],
                      [0, 0, 10, 10]])
    scores = np.array([0.9, 0.95, 0.5, 0.95])
    # 1 and 3 tie at 0.95: 1 (lower index) first; it suppresses 0 and 3
    # (IoU 90/110), and 2 is disjoint.
    assert utils.non_max_suppression(boxes, scores, 0.5).tolist() == [1, 2]
    # with a threshold above 90/110 nothing overlaps enough except 0 and 3
    # (IoU 1), so 3 survives and suppresses 0.
    assert utils.non_max_suppression(boxes, scores, 0.85).tolist() == [1, 3, 2]
    assert utils.non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


# --------------------------------------------------------------------- deltas

def test_box_refinement_hand_numbers():
    box = np.array([[0, 0, 10, 10]])
    gt = np.array([[5, 5, 15, 25]])   # centre (10, 15), size 10 x 20
    deltas = utils.box_refinement(box, gt)
    assert deltas.dtype == np.float32
    np.testing.assert_allclose(deltas, [[0.5, 1.0, 0.0, np.log(2.0)]], rtol=1e-6)
    np.testing.assert_allclose(utils.apply_box_deltas(box, deltas), gt, atol=1e-5)


def test_box_refinement_apply_box_deltas_round_trip():
    rng = np.random.default_rng(1)
    boxes = _random_boxes(rng, 200, size=1000)
    gt = _random_boxes(rng, 200, size=1000)
    deltas = utils.box_refinement(boxes, gt)
    restored = utils.apply_box_deltas(boxes, deltas)
    assert restored.dtype == np.float32
    np.testing.assert_allclose(restored, gt, atol=1e-3)
    # zero deltas leave boxes unchanged
    np.testing.assert_allclose(utils.apply_box_deltas(boxes, np.zeros((200, 4))),
                               boxes, atol=1e-4)


# -------------------------------------------------------------- normalisation

def test_norm_denorm_boxes():
    shape = (101, 201)
    boxes = np.array([[0, 0, 101, 201], [10, 20, 51, 101]])
    normed = utils.norm_boxes(boxes, shape)
    assert normed.dtype == np.float32
    np.testing.assert_allclose(normed[0], [0, 0, 1, 1])
    np.testing.assert_allclose(normed[1], [0.1, 0.1, 0.5, 0.5])
    back = utils.denorm_boxes(normed, shape)
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, boxes)
    # a 3-entry image shape is accepted too
    np.testing.assert_allclose(utils.norm_boxes(boxes, shape + (3,)), normed)


def test_trim_zeros():
    x = np.array([[0, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 5]])
    np.testing.assert_array_equal(utils.trim_zeros(x), [[1, 2, 3, 4], [0, 0, 0, 5]])
    with pytest.raises(ValueError):
        utils.trim_zeros(np.zeros(4))


def test_compute_recall():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]])
    pred = np.array([[0, 0, 10, 10],     # gt 0, IoU 1
                     [0, 1, 10, 11],     # gt 0 again, IoU 90/110
                     [20, 25, 30, 35],   # gt 1, IoU 1/3
                     [80, 80, 90, 90]])  # nothing
    recall, positive = utils.compute_recall(pred, gt, 0.5)
    assert recall == pytest.approx(1 / 3)
    assert positive.tolist() == [0, 1]
    recall, positive = utils.compute_recall(pred, gt, 0.3)
    assert recall == pytest.approx(2 / 3)
    assert positive.tolist() == [0, 1, 2]

"""ProposalLayer against a plain numpy top-k / deltas / clip / NMS reference."""
import keras
import numpy as np
import pytest

from mrcnn.nn.proposals import ProposalLayer

STD = np.array([0.1, 0.1, 0.2, 0.2], np.float32)


def ref_iou(a, b):
    """IoU of two boxes; 0 when either has no area (as tf.image.non_max_suppression)."""
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    if area_a <= 0 or area_b <= 0:
        return 0.0
    ih = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    iw = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = ih * iw
    return inter / (area_a + area_b - inter)


def ref_proposals(probs, deltas, anchors, count, threshold, limit):
    """One image: [A, 2], [A, 4], [A, 4] -> [count, 4] proposals, plain loops."""
    scores = probs[:, 1]
    # Descending score; equal scores keep the lower anchor index first.
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:limit]
    boxes = []
    for i in order:
        y1, x1, y2, x2 = anchors[i].astype(np.float32)
        dy, dx, dh, dw = deltas[i].astype(np.float32) * STD
        h, w = y2 - y1, x2 - x1
        cy, cx = y1 + 0.5 * h + dy * h, x1 + 0.5 * w + dx * w
        h, w = h * np.exp(dh), w * np.exp(dw)
        box = [cy - 0.5 * h, cx - 0.5 * w, cy - 0.5 * h + h, cx - 0.5 * w + w]
        boxes.append([min(max(v, 0.0), 1.0) for v in box])
    kept = []
    for box in boxes:                       # already in visiting order
        if len(kept) == count:
            break
        if all(ref_iou(box, k) <= threshold for k in kept):
            kept.append(box)
    out = np.zeros((count, 4), np.float32)
    if kept:
        out[:len(kept)] = kept
    return out


def random_inputs(rng, batch, num_anchors, tied):
    y = rng.uniform(0, 0.8, (batch, num_anchors))
    x = rng.uniform(0, 0.8, (batch, num_anchors))
    h = rng.uniform(0.1, 0.4, (batch, num_anchors))
    w = rng.uniform(0.1, 0.4, (batch, num_anchors))
    anchors = np.stack([y, x, y + h, x + w], -1).astype(np.float32)
    if tied:
        fg = rng.integers(0, 6, (batch, num_anchors)) / 5.0       # six distinct values
    else:
        fg = rng.permutation(batch * num_anchors).reshape(batch, num_anchors)
        fg = fg / (batch * num_anchors)
    probs = np.stack([1 - fg, fg], -1).astype(np.float32)
    deltas = rng.normal(0, 1.5, (batch, num_anchors, 4)).astype(np.float32)
    return probs, deltas, anchors


def run_layer(probs, deltas, anchors, count, threshold, limit):
    layer = ProposalLayer(count, threshold, limit, STD)
    return layer([probs, deltas, anchors]).numpy()


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("count, threshold, limit", [
    (40, 0.7, 150),     # top-k limit below A; the count caps the output
    (200, 0.3, 1000),   # limit above A; NMS leaves fewer than count -> zero padding
])
def test_matches_numpy_reference_with_shared_anchors(tied, count, threshold, limit):
    rng = np.random.default_rng(7 + tied)
    probs, deltas, anchors = random_inputs(rng, 2, 300, tied)
    shared = anchors[0]
    got = run_layer(probs, deltas, shared, count, threshold, limit)
    assert got.shape == (2, count, 4)
    for b in range(2):
        expected = ref_proposals(probs[b], deltas[b], shared, count, threshold, limit)
        np.testing.assert_allclose(got[b], expected, atol=1e-6)
    if count == 200:
        assert np.all(got[:, -1] == 0)      # padding exercised
        assert np.count_nonzero(got[:, :, 2] - got[:, :, 0]) > 10
    if tied:
        assert len(np.unique(probs[..., 1])) <= 6


def test_matches_numpy_reference_with_per_image_anchors():
    rng = np.random.default_rng(3)
    probs, deltas, anchors = random_inputs(rng, 2, 250, tied=False)
    got = run_layer(probs, deltas, anchors, 50, 0.6, 120)
    for b in range(2):
        expected = ref_proposals(probs[b], deltas[b], anchors[b], 50, 0.6, 120)
        np.testing.assert_allclose(got[b], expected, atol=1e-6)


def test_hand_worked_case():
    anchors = np.array([
        [0.10, 0.10, 0.30, 0.30],   # score .9, dy = 1 -> shifted down by 0.1 * 0.2
        [0.12, 0.10, 0.32, 0.30],   # score .8, identical to the refined first: suppressed
        [0.60, 0.60, 0.80, 1.10],   # score .7, clipped to x2 = 1
        [0.00, 0.00, 0.05, 0.05],   # score .1: beyond the pre-NMS limit of 3
    ], np.float32)
    fg = np.array([0.9, 0.8, 0.7, 0.1], np.float32)
    probs = np.stack([1 - fg, fg], -1)[None]
    deltas = np.zeros((1, 4, 4), np.float32)
    deltas[0, 0, 0] = 1.0
    got = run_layer(probs, deltas, anchors, 4, 0.7, 3)
    expected = [[0.12, 0.10, 0.32, 0.30], [0.60, 0.60, 0.80, 1.00], [0, 0, 0, 0], [0, 0, 0, 0]]
    np.testing.assert_allclose(got[0], expected, atol=1e-6)


def test_static_shape_in_a_model_and_config_round_trip():
    probs = keras.Input((None, 2))
    deltas = keras.Input((None, 4))
    anchors = keras.Input((None, 4))
    layer = ProposalLayer(30, 0.7, 100, STD, name="ROI")
    out = layer([probs, deltas, anchors])
    assert tuple(out.shape) == (None, 30, 4)
    clone = ProposalLayer.from_config(layer.get_config())
    assert (clone.proposal_count, clone.nms_threshold, clone.pre_nms_limit) == (30, 0.7, 100)
    np.testing.assert_allclose(clone.rpn_bbox_std_dev, STD)
    assert clone.name == "ROI"
    model = keras.Model([probs, deltas, anchors], out)
    rng = np.random.default_rng(0)
    p, d, a = random_inputs(rng, 2, 64, tied=False)
    got = model([p, d, a]).numpy()
    np.testing.assert_allclose(got[1], ref_proposals(p[1], d[1], a[1], 30, 0.7, 100),
                               atol=1e-6)


def test_huge_size_deltas_give_finite_proposals():
    # Untrained or diverging RPNs can output any delta; exp(> 88) overflows float32.
    anchors = np.array([
        [0.40, 0.40, 0.60, 0.60],   # score .9, log sizes 1e3 * .2: clamped 62.5x -> whole image
        [0.10, 0.10, 0.20, 0.20],   # score .8, no deltas: unchanged (IoU .01 with the first)
        [0.70, 0.10, 0.90, 0.30],   # score .7, log sizes -1e3 * .2: empty box at (.8, .2)
    ], np.float32)
    fg = np.array([0.9, 0.8, 0.7], np.float32)
    probs = np.stack([1 - fg, fg], -1)[None]
    deltas = np.zeros((1, 3, 4), np.float32)
    deltas[0, 0, 2:] = 1e3
    deltas[0, 2, 2:] = -1e3
    got = run_layer(probs, deltas, anchors, 4, 0.7, 3)
    assert np.all(np.isfinite(got))
    expected = [[0, 0, 1, 1], [0.1, 0.1, 0.2, 0.2], [0.8, 0.2, 0.8, 0.2], [0, 0, 0, 0]]
    np.testing.assert_allclose(got[0], expected, atol=1e-6)

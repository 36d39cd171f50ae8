"""DetectionLayer: a hand-worked case and a plain-loop numpy reference."""
import math

import keras
import numpy as np
import pytest

from mrcnn.config import Config
from mrcnn.image_meta import compose_image_meta
from mrcnn.nn.detection import DetectionLayer, normalised_window

STD = np.array([0.1, 0.1, 0.2, 0.2], np.float32)


def make_layer(max_instances, min_confidence=0.7, nms_threshold=0.3):
    return DetectionLayer(max_instances=max_instances, min_confidence=min_confidence,
                          nms_threshold=nms_threshold, bbox_std_dev=STD)


def meta(height, width, window, num_classes):
    return compose_image_meta(1, (height, width, 3), (height, width, 3), window, 1.0,
                              np.ones(num_classes))


def hand_case():
    """Seven ROIs in a 101 x 101 molded image whose window (10, 0, 91, 101) px is
    (0.1, 0, 0.9, 1) normalised (divide by 100 after subtracting 1 from y2, x2)."""
    rois = np.array([
        [0.20, 0.20, 0.40, 0.40],   # R0 class 1 .9, dy = 1 -> down 0.1 * 0.2
        [0.21, 0.20, 0.41, 0.40],   # R1 class 1 .8, IoU .905 with refined R0: suppressed
        [0.21, 0.20, 0.41, 0.40],   # R2 class 2 .8, same place, other class: kept
        [0.80, 0.50, 0.95, 0.70],   # R3 class 1 .75, clipped to the window's y2 = .9
        [0.50, 0.50, 0.60, 0.60],   # R4 background
        [0.50, 0.00, 0.70, 0.20],   # R5 class 2 .65 < .7: dropped
        [0.30, 0.05, 0.50, 0.25],   # R6 class 2 .9 (ties R0), dx = -5 -> x1 < 0 clipped
    ], np.float32)
    probs = np.array([
        [0.05, 0.90, 0.05], [0.10, 0.80, 0.10], [0.10, 0.10, 0.80], [0.20, 0.75, 0.05],
        [0.60, 0.30, 0.10], [0.10, 0.25, 0.65], [0.05, 0.05, 0.90],
    ], np.float32)
    deltas = np.zeros((7, 3, 4), np.float32)
    deltas[0, 1] = [1, 0, 0, 0]
    deltas[0, 2] = [5, 5, 5, 5]                 # another class's deltas: must be ignored
    deltas[2, 2] = [0, 0, math.log(2) / 0.2, 0]  # height doubles about the centre
    deltas[6, 2] = [0, -5, 0, 0]                # left by 0.5 * 0.2 = 0.1
    image_meta = meta(101, 101, (10, 0, 91, 101), 3)
    return rois[None], probs[None], deltas[None], image_meta[None]


def test_window_normalisation():
    window = normalised_window(hand_case()[3]).numpy()
    np.testing.assert_allclose(window, [[0.1, 0.0, 0.9, 1.0]], atol=1e-7)


def test_hand_worked_detections():
    out = make_layer(6)(list(hand_case())).numpy()
    assert out.shape == (1, 6, 6)
    expected = np.array([
        [0.22, 0.20, 0.42, 0.40, 1, 0.90],   # R0 refined
        [0.30, 0.00, 0.50, 0.15, 2, 0.90],   # R6: tie with R0, higher index second
        [0.11, 0.20, 0.51, 0.40, 2, 0.80],   # R2: centre .31, height .4
        [0.80, 0.50, 0.90, 0.70, 1, 0.75],   # R3 clipped
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ])
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_max_instances_keeps_the_best():
    out = make_layer(2)(list(hand_case())).numpy()
    np.testing.assert_allclose(out[0, :, 4:], [[1, 0.9], [2, 0.9]], atol=1e-6)


def test_nms_threshold_is_per_class_and_strict():
    # With a threshold of .95, R1 (IoU .905 with refined R0) survives; it ties R2 at .8
    # and comes first, having the lower index.
    out = make_layer(6, nms_threshold=0.95)(list(hand_case())).numpy()
    np.testing.assert_allclose(out[0, :5, 5], [0.9, 0.9, 0.8, 0.8, 0.75], atol=1e-6)
    np.testing.assert_allclose(out[0, 2], [0.21, 0.20, 0.41, 0.40, 1, 0.8], atol=1e-6)
    np.testing.assert_allclose(out[0, 3, 4], 2)


def ref_iou(a, b):
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    if area_a <= 0 or area_b <= 0:
        return 0.0
    ih = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    iw = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    return ih * iw / (area_a + area_b - ih * iw)


def ref_detections(rois, probs, deltas, window, max_instances, min_conf, nms_threshold):
    """One image, plain loops: [N, 4], [N, NC], [N, NC, 4], [4] -> [max_instances, 6]."""
    candidates = []
    for i in range(len(rois)):
        c = int(np.argmax(probs[i]))
        score = float(probs[i, c])
        y1, x1, y2, x2 = (float(v) for v in rois[i])
        dy, dx, dh, dw = (float(v) for v in deltas[i, c] * STD)
        h, w = y2 - y1, x2 - x1
        cy, cx = y1 + 0.5 * h + dy * h, x1 + 0.5 * w + dx * w
        h, w = h * math.exp(dh), w * math.exp(dw)
        box = [cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w]
        lo, hi = [window[0], window[1]] * 2, [window[2], window[3]] * 2
        box = [min(max(v, l), u) for v, l, u in zip(box, lo, hi)]
        if c > 0 and score >= min_conf:
            candidates.append((score, i, c, box))
    kept = []
    for score, i, c, box in sorted(candidates, key=lambda t: (-t[0], t[1])):
        rivals = [k for k in kept if k[2] == c]
        if all(ref_iou(box, k[3]) <= nms_threshold for k in rivals):
            kept.append((score, i, c, box))
    out = np.zeros((max_instances, 6), np.float32)
    for row, (score, _, c, box) in enumerate(kept[:max_instances]):
        out[row] = box + [c, score]
    return out


def random_case(rng, batch, count, num_classes):
    centres = rng.uniform(0.1, 0.9, (3, 2))                     # clusters force overlaps
    pick = rng.integers(0, 3, (batch, count))
    centre = centres[pick] + rng.normal(0, 0.03, (batch, count, 2))
    size = rng.uniform(0.1, 0.3, (batch, count, 2))
    rois = np.concatenate([centre - size / 2, centre + size / 2], -1).astype(np.float32)
    rois[:, -3:] = 0.0                                           # zero padding rows
    # Probabilities from a few fixed rows, shuffled across classes: many exact ties.
    base = np.array([[0.9, 0.05, 0.03, 0.02], [0.75, 0.15, 0.06, 0.04],
                     [0.6, 0.2, 0.12, 0.08], [0.95, 0.03, 0.01, 0.01]], np.float32)
    probs = np.stack([[rng.permutation(base[rng.integers(0, 4)])
                       for _ in range(count)] for _ in range(batch)])
    deltas = rng.normal(0, 1.0, (batch, count, num_classes, 4)).astype(np.float32)
    metas = np.stack([meta(128, 128, (16, 0, 112, 128), num_classes),
                      meta(128, 128, (0, 8, 128, 120), num_classes)])
    windows = np.array([[16 / 127, 0, 111 / 127, 1], [0, 8 / 127, 1, 119 / 127]])
    return rois, probs, deltas, metas, windows


@pytest.mark.parametrize("max_instances, min_conf, nms_threshold", [
    (10, 0.7, 0.3),
    (50, 0.5, 0.5),     # more boxes than survive: padding
    (5, 0.0, 0.3),      # no confidence filter; truncation
])
def test_matches_numpy_reference(max_instances, min_conf, nms_threshold):
    rng = np.random.default_rng(int(nms_threshold * 10) + max_instances)
    rois, probs, deltas, metas, windows = random_case(rng, 2, 40, 4)
    out = make_layer(max_instances, min_conf, nms_threshold)(
        [rois, probs, deltas, metas]).numpy()
    assert out.shape == (2, max_instances, 6)
    for b in range(2):
        expected = ref_detections(rois[b], probs[b], deltas[b], windows[b], max_instances,
                                  min_conf, nms_threshold)
        np.testing.assert_allclose(out[b], expected, atol=1e-5, err_msg=f"image {b}")
    assert np.count_nonzero(out[..., 5]) >= 4


def test_config_constructor_model_shape_and_round_trip():
    class Small(Config):
        NUM_CLASSES = 3
        DETECTION_MAX_INSTANCES = 7
        DETECTION_MIN_CONFIDENCE = 0.6
        DETECTION_NMS_THRESHOLD = 0.4
        BBOX_STD_DEV = np.array([0.1, 0.1, 0.3, 0.3])

    layer = DetectionLayer(Small(), name="mrcnn_detection")
    inputs = [keras.Input((20, 4)), keras.Input((20, 3)), keras.Input((20, 3, 4)),
              keras.Input((15,))]
    out = layer(inputs)
    assert tuple(out.shape) == (None, 7, 6)
    clone = DetectionLayer.from_config(layer.get_config())
    assert (clone.max_instances, clone.min_confidence, clone.nms_threshold) == (7, 0.6, 0.4)
    np.testing.assert_allclose(clone.bbox_std_dev, [0.1, 0.1, 0.3, 0.3])
    assert clone.name == "mrcnn_detection"
    model = keras.Model(inputs, out)
    rois, probs, deltas, image_meta = hand_case()
    rois = np.pad(rois, [[0, 0], [0, 13], [0, 0]])
    probs = np.pad(probs, [[0, 0], [0, 13], [0, 0]])
    probs[0, 7:, 0] = 1.0                                  # padding ROIs are background
    deltas = np.pad(deltas, [[0, 0], [0, 13], [0, 0], [0, 0]])
    got = model([rois, probs, deltas, image_meta]).numpy()
    # min confidence .6 now also admits R5 (class 2, .65) as the fifth detection.
    np.testing.assert_allclose(got[0, :6, 5], [0.9, 0.9, 0.8, 0.75, 0.65, 0], atol=1e-6)


def test_huge_size_deltas_give_finite_detections():
    # Early in training from scratch the box head can output any delta; exp(> 88)
    # overflows float32, and ROI pooling of the detections then raises.
    rois, probs, deltas, image_meta = hand_case()
    deltas[0, 0, 1] = [0, 0, 1e3, 1e3]      # R0: 62.5x growth at most -> the whole window
    deltas[0, 3, 1] = [0, 0, 1e30, -1e30]   # R3: tall, then empty across
    out = make_layer(6)([rois, probs, deltas, image_meta]).numpy()
    assert np.all(np.isfinite(out))
    expected = np.array([
        [0.10, 0.00, 0.90, 1.00, 1, 0.90],   # R0: centre .3, size 12.5, clipped to the window
        [0.30, 0.00, 0.50, 0.15, 2, 0.90],   # R6 as in the hand case
        [0.21, 0.20, 0.41, 0.40, 1, 0.80],   # R1: IoU .04 / .8 = .05 with R0 now, kept
        [0.11, 0.20, 0.51, 0.40, 2, 0.80],   # R2 as in the hand case
        [0.10, 0.60, 0.90, 0.60, 1, 0.75],   # R3: centre x .6, width 0, height clipped
        [0, 0, 0, 0, 0, 0],
    ])
    np.testing.assert_allclose(out[0], expected, atol=1e-6)

"""DetectionLayer: a hand-worked case, plain-loop numpy references, and the per-class
NMS it used before."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.config import Config
from mrcnn.image_meta import compose_image_meta
from mrcnn.nn.detection import (DetectionLayer, best_class_boxes, class_offset_nms,
                                 class_offset_nms_keep, class_offsets,
                                 greedy_rule_holds, nms_kernel_iou, normalised_window,
                                 top_detections)

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


# --- One NMS per image over class-shifted boxes equals per-class NMS ----------------------

def before_per_class_nms_keep(boxes, scores, class_ids, candidates, num_classes,
                              max_instances, iou_threshold):
    """The per-class implementation DetectionLayer used before: one NMS per image and
    foreground class, a box kept when its class's NMS keeps it (cap per class)."""
    num_boxes = boxes.shape[1]
    foreground = tf.range(1, num_classes, dtype=tf.int32)
    member = candidates[:, None, :] & tf.equal(class_ids[:, None, :],
                                               foreground[None, :, None])
    class_scores = tf.reshape(tf.where(member, scores[:, None, :], -1.0), [-1, num_boxes])
    class_boxes = tf.repeat(boxes, num_classes - 1, axis=0)

    def keep_one(args):
        keep = tf.image.non_max_suppression(args[0], args[1], max_instances, iou_threshold,
                                            score_threshold=-0.5)
        return tf.scatter_nd(keep[:, None], tf.ones_like(keep), [num_boxes])

    kept = tf.map_fn(keep_one, (class_boxes, class_scores),
                     fn_output_signature=tf.TensorSpec([None], tf.int32))
    return tf.reduce_any(tf.reshape(kept, [-1, num_classes - 1, num_boxes]) > 0, axis=1)


def f32_iou(a, b):
    """IoU of two boxes in float32, step by step as TensorFlow's CPU NMS kernel rounds."""
    f = np.float32
    ymin_a, xmin_a = min(a[0], a[2]), min(a[1], a[3])
    ymax_a, xmax_a = max(a[0], a[2]), max(a[1], a[3])
    ymin_b, xmin_b = min(b[0], b[2]), min(b[1], b[3])
    ymax_b, xmax_b = max(b[0], b[2]), max(b[1], b[3])
    area_a = f(ymax_a - ymin_a) * f(xmax_a - xmin_a)
    area_b = f(ymax_b - ymin_b) * f(xmax_b - xmin_b)
    if area_a <= 0 or area_b <= 0:
        return f(0)
    inter = (max(f(min(ymax_a, ymax_b) - max(ymin_a, ymin_b)), f(0))
             * max(f(min(xmax_a, xmax_b) - max(xmin_a, xmin_b)), f(0)))
    return f(inter / f(f(area_a + area_b) - inter))


def numpy_nms_rows(boxes, scores, class_ids, candidates, max_instances, iou_threshold):
    """One image, plain loops: greedy NMS per class (at most max_instances each), then the
    best max_instances by (score, lower index) as rows (y1, x1, y2, x2, class, score)."""
    threshold = np.float32(iou_threshold)
    order = sorted(np.flatnonzero(candidates), key=lambda i: (-scores[i], i))
    kept = []
    for c in sorted(set(class_ids[order])):
        chosen = []
        for i in (i for i in order if class_ids[i] == c):
            if len(chosen) < max_instances and all(
                    f32_iou(boxes[i], boxes[j]) <= threshold for j in chosen):
                chosen.append(i)
        kept += chosen
    kept = sorted(kept, key=lambda i: (-scores[i], i))[:max_instances]
    rows = np.zeros((max_instances, 6), np.float32)
    for row, i in enumerate(kept):
        rows[row] = [*boxes[i], class_ids[i], scores[i]]
    return rows


def random_nms_case(rng, batch, count, num_classes, present):
    """Boxes in [0, 1] jittered around 4 cluster boxes (IoUs spread over (0, 1)), scores
    from 6 values (many exact ties), classes drawn from `present` foreground classes (the
    others absent) or background; the last image is all background (no candidates)."""
    cluster = rng.integers(0, 4, (batch, count))
    size = rng.uniform(0.05, 0.3, (4, 2))[cluster]
    centres = rng.uniform(0.15, 0.85, (4, 2))[cluster] + rng.normal(0, 0.15, size.shape) * size
    sizes = size * rng.uniform(0.8, 1.25, size.shape)
    boxes = np.clip(np.concatenate([centres - sizes / 2, centres + sizes / 2], -1), 0, 1)
    scores = rng.choice(np.float32([0.55, 0.7, 0.8, 0.9, 0.95, 0.99]), (batch, count))
    classes = rng.choice(1 + rng.permutation(num_classes - 1)[:present], (batch, count))
    class_ids = np.where(rng.uniform(size=(batch, count)) < 0.2, 0, classes)
    class_ids[-1] = 0
    return boxes.astype(np.float32), scores.astype(np.float32), class_ids.astype(np.int32)


def rows_of(keep_fn, boxes, scores, class_ids, candidates, num_classes, max_instances,
            iou_threshold):
    tensors = [tf.constant(boxes), tf.constant(scores), tf.constant(class_ids),
               tf.constant(candidates)]
    keep = keep_fn(*tensors, num_classes, max_instances, iou_threshold)
    return top_detections(tensors[0], tensors[2], tensors[1], keep, max_instances).numpy()


@pytest.mark.parametrize("num_classes, present, max_instances, min_conf, iou_threshold", [
    (81, 6, 10, 0.7, 0.3),     # few classes present, cap below the survivors
    (81, 80, 100, 0.0, 0.3),   # every class, cap above the survivors: zero rows
    (81, 12, 25, 0.8, 0.5),
    (5, 4, 8, 0.0, 0.7),       # few classes: long runs per class, many ties
    (5, 2, 3, 1.0, 0.3),       # no candidates at all
])
def test_class_offset_nms_equals_per_class_nms(num_classes, present, max_instances, min_conf,
                                               iou_threshold):
    fast_path = 0
    for seed in range(8):
        rng = np.random.default_rng(100 * num_classes + 10 * present + seed)
        boxes, scores, class_ids = random_nms_case(rng, 3, 120, num_classes, present)
        candidates = (class_ids > 0) & (scores >= min_conf)
        args = (boxes, scores, class_ids, candidates, num_classes, max_instances,
                iou_threshold)
        got = rows_of(class_offset_nms_keep, *args)
        expected = np.stack([numpy_nms_rows(boxes[b], scores[b], class_ids[b],
                                            candidates[b], max_instances, iou_threshold)
                             for b in range(3)])
        np.testing.assert_array_equal(got, expected, err_msg=f"seed {seed}")
        np.testing.assert_array_equal(rows_of(before_per_class_nms_keep, *args), expected,
                                      err_msg=f"seed {seed}")
        _, holds = class_offset_nms(*(tf.constant(a) for a in args[:4]), *args[4:])
        fast_path += int(np.all(holds.numpy()))
        assert not np.any(got[-1]), "an image without candidates has no detections"
    # The single NMS itself must be what matched, not the per-class fallback.
    assert fast_path == 8


def search_threshold_flip(box, shift, iou_threshold):
    """A box B next to `box` (B's y moved by whole float32 steps around IoU = threshold)
    whose kernel decision flips when both boxes are shifted by `shift`, or None."""
    f = np.float32
    threshold = f(iou_threshold)
    height = f(box[2] - box[0])
    move = height * (1 - iou_threshold) / (1 + iou_threshold)   # IoU(move) = threshold
    y1 = f(box[0] + move)
    for _ in range(400):
        y1 = np.nextafter(y1, f(0))
    for _ in range(800):
        y1 = np.nextafter(y1, f(1))
        other = np.array([y1, box[1], y1 + height, box[3]], f)
        if (f32_iou(other, box) > threshold) != (
                f32_iou(other + shift, box + shift) > threshold):
            return other
    return None


def test_rounding_flip_from_the_shift_falls_back_to_per_class_nms():
    num_classes, iou_threshold = 81, 0.3
    class_ids = np.int32([[80, 80, 3]])        # class 80 gets the largest shift
    shift = class_offsets(tf.constant(class_ids), num_classes).numpy()[0, 0]
    assert np.max(np.abs(shift)) == 4
    box = np.float32([0.2, 0.2, 0.5, 0.5])
    other = search_threshold_flip(box, shift, iou_threshold)
    assert other is not None
    pair = np.stack([box, other])
    plain = tf.image.non_max_suppression(pair, [0.9, 0.8], 10, iou_threshold).numpy()
    shifted = tf.image.non_max_suppression(pair + shift, [0.9, 0.8], 10,
                                           iou_threshold).numpy()
    assert len(plain) != len(shifted)         # the kernel itself flips on the shifted pair
    boxes = np.stack([box, other, [0.6, 0.6, 0.7, 0.7]])[None].astype(np.float32)
    scores = np.float32([[0.9, 0.8, 0.7]])
    candidates = np.ones((1, 3), bool)
    args = (boxes, scores, class_ids, candidates, num_classes, 5, iou_threshold)
    _, holds = class_offset_nms(*(tf.constant(a) for a in args[:4]), *args[4:])
    assert not holds.numpy()[0]
    expected = numpy_nms_rows(boxes[0], scores[0], class_ids[0], candidates[0], 5,
                              iou_threshold)
    assert np.count_nonzero(expected[:, 5]) == len(plain) + 1
    np.testing.assert_array_equal(rows_of(class_offset_nms_keep, *args)[0], expected)
    np.testing.assert_array_equal(rows_of(before_per_class_nms_keep, *args)[0], expected)


def test_nms_kernel_iou_decides_as_the_kernel_at_the_threshold():
    # Pairs within a few float32 steps of IoU = threshold: nms_kernel_iou > threshold
    # must say exactly what the NMS kernel decides on the pair.
    rng = np.random.default_rng(7)
    decisions = []
    for _ in range(150):
        y1, x1 = rng.uniform(0, 0.5, 2).astype(np.float32)
        h, w = rng.uniform(0.01, 0.4, 2).astype(np.float32)
        box = np.float32([y1, x1, y1 + h, x1 + w])
        threshold = np.float32(rng.choice([0.3, 0.5, 0.7]))
        move = np.float32(y1 + h * (1 - threshold) / (1 + threshold))
        steps = int(rng.integers(-3, 4))
        for _ in range(abs(steps)):
            move = np.nextafter(move, np.float32(steps))
        other = np.float32([move, x1, move + h, x1 + w])
        kept = tf.image.non_max_suppression(np.stack([box, other]), [0.9, 0.8], 2,
                                            float(threshold)).numpy()
        suppressed = bool(nms_kernel_iou(tf.constant(other), tf.constant(box)) > threshold)
        assert suppressed == (len(kept) == 1), (box, other, threshold)
        decisions.append(suppressed)
    assert 10 < sum(decisions) < 140           # both sides of the threshold were tested


def test_greedy_rule_holds_only_for_the_greedy_selection():
    boxes = tf.constant([[0.1, 0.1, 0.4, 0.4],    # 0 class 1 .9
                         [0.1, 0.1, 0.4, 0.41],   # 1 class 1 .8, IoU .97 with 0
                         [0.6, 0.6, 0.9, 0.9],    # 2 class 1 .7
                         [0.1, 0.1, 0.4, 0.4],    # 3 class 2 .8, on top of 0: other class
                         [0.5, 0.5, 0.6, 0.6]])   # 4 background
    scores = tf.constant([0.9, 0.8, 0.7, 0.8, 0.95])
    class_ids = tf.constant([1, 1, 1, 2, 0])
    candidates = tf.constant([True, True, True, True, False])

    def holds(selected, max_instances=10):
        return bool(greedy_rule_holds(boxes, scores, class_ids, candidates,
                                      tf.constant(selected, tf.int32), max_instances, 0.5))

    assert holds([0, 3, 2])
    assert not holds([0, 2])                   # 3 missing
    assert not holds([0, 1, 3, 2])             # 1 suppressed by 0
    assert not holds([3, 1, 2])                # 0 missing, 1 kept instead
    assert holds([0, 3], max_instances=2)      # capped: 2 not visited
    assert not holds([0], max_instances=2)     # 3 visited before the cap filled
    assert holds([0], max_instances=1)
    assert bool(greedy_rule_holds(boxes, scores, class_ids, tf.zeros([5], tf.bool),
                                  tf.zeros([0], tf.int32), 10, 0.5))


def random_layer_case(rng, batch, count, num_classes):
    """ROIs in 3 clusters, small deltas, and peaked probabilities from 4 peak values (many
    exact score ties) over a random class, background included."""
    centres = rng.uniform(0.2, 0.8, (3, 2))[rng.integers(0, 3, (batch, count))]
    centres = centres + rng.normal(0, 0.03, (batch, count, 2))
    sizes = rng.uniform(0.05, 0.3, (batch, count, 2))
    rois = np.concatenate([centres - sizes / 2, centres + sizes / 2], -1).astype(np.float32)
    peak = rng.choice(np.float32([0.55, 0.7, 0.8, 0.9]), (batch, count))
    probs = np.repeat(((1 - peak) / (num_classes - 1))[..., None], num_classes, -1)
    best = rng.integers(0, num_classes, (batch, count))
    np.put_along_axis(probs, best[..., None], peak[..., None], -1)
    deltas = rng.normal(0, 0.5, (batch, count, num_classes, 4)).astype(np.float32)
    metas = np.stack([meta(128, 128, (16, 0, 112, 128), num_classes)] * batch)
    return rois, probs.astype(np.float32), deltas, metas


@pytest.mark.parametrize("num_classes, max_instances, min_conf, nms_threshold", [
    (81, 100, 0.0, 0.3), (81, 10, 0.7, 0.3), (5, 6, 0.5, 0.5)])
def test_layer_rows_equal_the_per_class_layer(num_classes, max_instances, min_conf,
                                              nms_threshold):
    layer = make_layer(max_instances, min_conf, nms_threshold)
    for seed in range(4):
        rng = np.random.default_rng(1000 * num_classes + seed)
        rois, probs, deltas, metas = random_layer_case(rng, 2, 150, num_classes)
        got = layer([rois, probs, deltas, metas]).numpy()
        class_ids, scores, boxes = best_class_boxes(
            tf.constant(rois), tf.constant(probs), tf.constant(deltas),
            normalised_window(metas), tf.constant(STD))
        keep = before_per_class_nms_keep(boxes, scores, class_ids,
                                         (class_ids > 0) & (scores >= min_conf), num_classes,
                                         max_instances, nms_threshold)
        expected = top_detections(boxes, class_ids, scores, keep, max_instances).numpy()
        np.testing.assert_array_equal(got, expected, err_msg=f"seed {seed}")
        assert np.count_nonzero(got[..., 5]) >= 4

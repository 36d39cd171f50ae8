"""Final detections: refine each ROI with its best class, then filter and de-duplicate.

Boxes are normalised (y1, x1, y2, x2) in the frame of the molded image.
"""
import math

import keras
import numpy as np
import tensorflow as tf

from mrcnn.image_meta import parse_image_meta_graph
from mrcnn.nn import box_ops

# Up to this many foreground classes DetectionLayer runs one NMS per class: there that
# costs no more than one class-shifted NMS and its check. bench/bench_detection_layer.py
# on 2 busy CPU cores, per-class / class-shifted time: --classes 3: 0.3-0.9, 5 and 9:
# 0.95-1.1, 17: 1.1-1.4, 81: 2.2-2.6.
PER_CLASS_NMS_MAX_CLASSES = 8


def normalised_window(image_meta):
    """The real-image window of each image, normalised.

    Args:
        image_meta: float [B, IMAGE_META_SIZE].
    Returns:
        float32 [B, 4]: window (pixels, y2/x2 exclusive) mapped by
        norm = (box - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1] with (h, w) the molded
        image shape.
    """
    meta = parse_image_meta_graph(tf.cast(image_meta, tf.float32))
    height = meta["image_shape"][:, 0:1]
    width = meta["image_shape"][:, 1:2]
    scale = tf.concat([height, width, height, width], axis=1) - 1.0
    shift = tf.constant([0.0, 0.0, 1.0, 1.0])
    return (meta["window"] - shift) / scale


def best_class_boxes(rois, probs, deltas, window, bbox_std_dev):
    """Each ROI's argmax class, its score, and the ROI refined by that class's deltas.

    Args:
        rois: float32 [B, N, 4] normalised.
        probs: float32 [B, N, NC] class probabilities.
        deltas: float32 [B, N, NC, 4] deltas / bbox_std_dev.
        window: float32 [B, 4] normalised window to clip to.
        bbox_std_dev: float [4].
    Returns:
        (class_ids int32 [B, N], scores float32 [B, N], boxes float32 [B, N, 4]).
    """
    class_ids = tf.argmax(probs, axis=-1, output_type=tf.int32)
    scores = tf.gather(probs, class_ids, batch_dims=2)
    class_deltas = tf.gather(deltas, class_ids, batch_dims=2)
    boxes = box_ops.apply_box_deltas(rois, class_deltas * bbox_std_dev)
    boxes = box_ops.clip_boxes(boxes, window)
    return class_ids, scores, boxes


def per_class_nms_keep(boxes, scores, class_ids, candidates, num_classes, max_instances,
                       iou_threshold):
    """Greedy NMS within each foreground class, every image and class independently.

    For each (image, class) pair, tf.image.non_max_suppression runs on that class's
    candidate boxes (others get a score below its threshold), so boxes of different
    classes never suppress each other and ties keep the lower ROI index. That is
    B * (num_classes - 1) NMS calls; above PER_CLASS_NMS_MAX_CLASSES foreground classes
    DetectionLayer uses class_offset_nms_keep, which gives the same detections with one
    call per image and falls back to this function.

    Args:
        boxes: float32 [B, N, 4]; scores: float32 [B, N] in [0, 1];
        class_ids: int32 [B, N]; candidates: bool [B, N] ROIs allowed to survive.
        num_classes: int, NC including the background (class 0, never kept).
        max_instances: the most boxes kept per image and class.
        iou_threshold: suppress a box whose IoU with a kept box of its class exceeds this.
    Returns:
        bool [B, N]: ROIs kept by their class's NMS.
    """
    num_boxes = boxes.shape[1] if boxes.shape[1] is not None else tf.shape(boxes)[1]
    foreground = tf.range(1, num_classes, dtype=tf.int32)                  # [NC-1]
    member = candidates[:, None, :] & tf.equal(class_ids[:, None, :],
                                               foreground[None, :, None])  # [B, NC-1, N]
    class_scores = tf.where(member, scores[:, None, :], -1.0)
    class_scores = tf.reshape(class_scores, [-1, num_boxes])               # [B*(NC-1), N]
    class_boxes = tf.repeat(boxes, num_classes - 1, axis=0)                # [B*(NC-1), N, 4]

    def keep_one(args):
        image_boxes, image_scores = args
        keep = tf.image.non_max_suppression(
            image_boxes, image_scores, max_instances, iou_threshold, score_threshold=-0.5)
        return tf.scatter_nd(keep[:, None], tf.ones_like(keep), [num_boxes])

    kept = tf.map_fn(keep_one, (class_boxes, class_scores),
                     fn_output_signature=tf.TensorSpec([None], tf.int32))
    kept = tf.reshape(kept, [-1, num_classes - 1, num_boxes])
    return tf.reduce_any(kept > 0, axis=1)


def class_offsets(class_ids, num_classes):
    """Per-ROI shifts that give every class its own cell of a grid, for one NMS call.

    Class c moves by whole units to cell (c // G - G // 2, c % G - G // 2) of a G x G grid
    centred on the origin, G = ceil(sqrt(num_classes)) (9 for 81 classes: shifts -4..4).
    Boxes inside [0, 1]^2 then lie in disjoint unit cells: boxes of different classes
    intersect in at most an edge, also after float32 rounding (rounding is monotone and
    the cell borders are integers), so their IoU is 0.

    Args:
        class_ids: int32 [...]; num_classes: int, NC including the background.
    Returns:
        float32 [..., 4] shifts (dy, dx, dy, dx) to add to (y1, x1, y2, x2).
    """
    grid = int(math.ceil(math.sqrt(num_classes)))
    dy = tf.cast(class_ids // grid - grid // 2, tf.float32)
    dx = tf.cast(class_ids % grid - grid // 2, tf.float32)
    return tf.stack([dy, dx, dy, dx], axis=-1)


def nms_kernel_iou(boxes, others):
    """IoU by the float32 formula of TensorFlow's CPU NMS kernel, operation by operation.

    Args:
        boxes: float32 [..., 4] (y1, x1, y2, x2), the boxes under test;
        others: float32 [..., 4] broadcastable against `boxes`, the selected boxes.
    Returns:
        float32 [...]: intersection / ((area + other area) - intersection), each step
        rounded as the kernel rounds it, so `iou > threshold` is the kernel's own decision;
        0 where either box has no area.
    """
    def extents(b):
        y1, x1, y2, x2 = tf.unstack(b, axis=-1)
        return tf.minimum(y1, y2), tf.minimum(x1, x2), tf.maximum(y1, y2), tf.maximum(x1, x2)

    ymin_i, xmin_i, ymax_i, xmax_i = extents(boxes)
    ymin_j, xmin_j, ymax_j, xmax_j = extents(others)
    area_i = (ymax_i - ymin_i) * (xmax_i - xmin_i)
    area_j = (ymax_j - ymin_j) * (xmax_j - xmin_j)
    inter_h = tf.maximum(tf.minimum(ymax_i, ymax_j) - tf.maximum(ymin_i, ymin_j), 0.0)
    inter_w = tf.maximum(tf.minimum(xmax_i, xmax_j) - tf.maximum(xmin_i, xmin_j), 0.0)
    intersection = inter_h * inter_w
    iou = intersection / ((area_i + area_j) - intersection)
    return tf.where((area_i > 0) & (area_j > 0), iou, 0.0)


def visited_before(score_a, index_a, score_b, index_b):
    """Whether NMS visits ROI a before ROI b: higher score first, ties by lower index."""
    return (score_a > score_b) | ((score_a == score_b) & (index_a < index_b))


def greedy_rule_holds(boxes, scores, class_ids, candidates, selected, max_instances,
                      iou_threshold):
    """Whether `selected` is what greedy per-class NMS selects in one image.

    Greedy NMS visits the candidates by descending score (ties: lower ROI index) and
    selects a candidate unless an already selected box of its class overlaps it by more
    than `iou_threshold`, until `max_instances` are selected. Its result is the only
    selection in which every visited candidate is selected exactly when no selected box
    of its class visited before it overlaps it that much (by induction along the
    visiting order), so this checks that property with the NMS kernel's IoU.

    Args:
        boxes: float32 [N, 4] the boxes as the per-class NMS sees them (not shifted);
        scores: float32 [N]; class_ids: int32 [N]; candidates: bool [N].
        selected: int32 [S] candidate indices in selection order, S <= max_instances.
        max_instances: int; iou_threshold: float.
    Returns:
        bool []: True when `selected` equals per-class greedy NMS with at most
        `max_instances` selections, i.e. its first `max_instances` by visiting order.
    Cost: O(V * W) IoUs, V visited candidates, W the most selections of one class.
    """
    count = tf.size(selected)
    last = tf.concat([selected, [0]], 0)[tf.maximum(count - 1, 0)]
    visited = tf.cast(tf.where(candidates)[:, 0], tf.int32)                 # [V]
    # With max_instances selections NMS stopped at the last one; later ones were not visited.
    not_after_last = ~visited_before(scores[last], last, tf.gather(scores, visited), visited)
    visited = tf.boolean_mask(visited, not_after_last | (count < max_instances))
    visited_scores = tf.gather(scores, visited)
    visited_class = tf.gather(class_ids, visited)

    # Each visited candidate against the selected boxes of its class: those sorted by
    # class, a run [start, end) per class, W = the longest run.
    selected_class = tf.gather(class_ids, selected)
    order = tf.argsort(selected_class, stable=True)
    by_class = tf.concat([tf.gather(selected, order), [0]], 0)              # [S + 1]
    by_class_ids = tf.gather(selected_class, order)
    start = tf.searchsorted(by_class_ids, visited_class, side="left", out_type=tf.int32)
    end = tf.searchsorted(by_class_ids, visited_class, side="right", out_type=tf.int32)
    width = tf.reduce_max(tf.concat([end - start, [0]], 0))
    slot = start[:, None] + tf.range(width)[None, :]                        # [V, W]
    same_class = slot < end[:, None]
    rival = tf.gather(by_class, tf.minimum(slot, count))                    # [V, W]
    earlier = same_class & visited_before(tf.gather(scores, rival), rival,
                                          visited_scores[:, None], visited[:, None])
    overlap = nms_kernel_iou(tf.gather(boxes, visited)[:, None, :],
                             tf.gather(boxes, rival)) > iou_threshold
    suppressed = tf.reduce_any(earlier & overlap, axis=1)                   # [V]
    is_selected = tf.gather(
        tf.scatter_nd(selected[:, None], tf.ones_like(selected), tf.shape(scores)) > 0, visited)
    return tf.reduce_all(tf.equal(is_selected, ~suppressed))


def class_offset_nms(boxes, scores, class_ids, candidates, num_classes, max_instances,
                     iou_threshold):
    """One NMS per image over class-shifted boxes, and whether it matched per-class NMS.

    Args: as class_offset_nms_keep.
    Returns:
        (kept bool [B, N]: the at most max_instances ROIs per image that one
        tf.image.non_max_suppression selects from the boxes shifted by class_offsets;
        holds bool [B]: greedy_rule_holds for each image, i.e. kept is per-class NMS's).
    """
    num_boxes = boxes.shape[1] if boxes.shape[1] is not None else tf.shape(boxes)[1]
    shifted = boxes + class_offsets(class_ids, num_classes)
    nms_scores = tf.where(candidates, scores, -1.0)

    def keep_one(args):
        image_shifted, image_nms_scores, image_boxes, image_scores, image_ids, image_cand = args
        selected = tf.image.non_max_suppression(
            image_shifted, image_nms_scores, max_instances, iou_threshold, score_threshold=-0.5)
        kept = tf.scatter_nd(selected[:, None], tf.ones_like(selected), [num_boxes]) > 0
        holds = greedy_rule_holds(image_boxes, image_scores, image_ids, image_cand, selected,
                                  max_instances, iou_threshold)
        return kept, holds

    return tf.map_fn(
        keep_one, (shifted, nms_scores, boxes, scores, class_ids, candidates),
        fn_output_signature=(tf.TensorSpec([None], tf.bool), tf.TensorSpec([], tf.bool)))


def class_offset_nms_keep(boxes, scores, class_ids, candidates, num_classes, max_instances,
                          iou_threshold):
    """Per-class greedy NMS and the best `max_instances`, with one NMS call per image.

    Each candidate's box is shifted into its class's cell (class_offsets), and one
    tf.image.non_max_suppression with max_output_size = max_instances runs per image
    (class_offset_nms).
    This selects what per_class_nms_keep (cap max_instances per class) followed by the
    global top max_instances selects (top_detections), because:
    - Boxes of different classes no longer intersect, so a box is only suppressed by a
      selected box of its own class. The NMS visits all candidates by descending score,
      ties by lower ROI index, and per-class NMS visits each class's candidates in the
      same relative order; so, uncapped, both select the same boxes.
    - Capped, the single NMS keeps the first max_instances of that union in visiting
      order. A box among them has fewer than max_instances selections of its class
      before it, so per-class NMS keeps it too despite its own cap; the per-class result
      lies inside the union and contains those first max_instances, so its top
      max_instances by (score, lower index), which top_k returns, are the same boxes.
    Floating point: a shifted coordinate is rounded to the float32 spacing at the shift
    (81 classes: shifts up to 4, spacing up to 2^-21 ~ 4.8e-7 instead of 2^-24 ~ 6e-8
    near 1), so it moves by up to 2.4e-7; on random overlapping pairs that moved an IoU
    by up to 1.4e-5 for boxes 0.1 wide and 1.4e-4 for boxes 0.01 wide: enough to flip a
    decision that close to the threshold. So the selection is then checked against the
    per-class rule on the unshifted boxes with the kernel's own IoU (greedy_rule_holds);
    where the check fails (an IoU within rounding of the threshold, boxes outside
    [0, 1]), per_class_nms_keep decides instead. The result equals per-class NMS on the
    CPU kernel exactly. (TensorFlow's GPU NMS kernel tests intersection > union *
    threshold; where that and the CPU rule differ in the last bit, the check follows the
    CPU rule.)

    Args:
        boxes: float32 [B, N, 4] normalised, inside [0, 1]; scores: float32 [B, N] in [0, 1];
        class_ids: int32 [B, N]; candidates: bool [B, N] ROIs allowed to survive.
        num_classes: int, NC including the background (class 0, never a candidate).
        max_instances: the most boxes kept per image.
        iou_threshold: suppress a box whose IoU with a kept box of its class exceeds this.
    Returns:
        bool [B, N]: at most max_instances ROIs per image; top_detections of them equals
        top_detections of per_class_nms_keep's.
    """
    kept, holds = class_offset_nms(boxes, scores, class_ids, candidates, num_classes,
                                   max_instances, iou_threshold)
    return tf.cond(tf.reduce_all(holds), lambda: kept,
                   lambda: per_class_nms_keep(boxes, scores, class_ids, candidates,
                                              num_classes, max_instances, iou_threshold))


def top_detections(boxes, class_ids, scores, keep, max_instances):
    """The `max_instances` best kept ROIs of each image as detection rows.

    Args:
        boxes: float32 [B, N, 4]; class_ids: int32 [B, N]; scores: float32 [B, N];
        keep: bool [B, N].
    Returns:
        float32 [B, max_instances, 6] rows (y1, x1, y2, x2, class_id, score) by
        descending score (ties: lower ROI index first), zero rows at the end.
    """
    num_boxes = boxes.shape[1]
    if num_boxes is None:
        k = tf.minimum(max_instances, tf.shape(boxes)[1])
    else:
        k = min(max_instances, num_boxes)
    ranking = tf.where(keep, scores, -np.inf)
    _, ix = tf.math.top_k(ranking, k=k, sorted=True)
    rows = tf.concat([
        tf.gather(boxes, ix, batch_dims=1),
        tf.cast(tf.gather(class_ids, ix, batch_dims=1), tf.float32)[..., None],
        tf.gather(scores, ix, batch_dims=1)[..., None],
    ], axis=-1)
    valid = tf.cast(tf.gather(keep, ix, batch_dims=1), tf.float32)[..., None]
    rows = rows * valid
    rows = tf.pad(rows, [[0, 0], [0, max_instances - k], [0, 0]])
    return tf.reshape(rows, [-1, max_instances, 6])


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionLayer(keras.layers.Layer):
    """Detections from classified and refined ROIs.

    Inputs `[rois, mrcnn_class, mrcnn_bbox, image_meta]`:
        rois: float [B, N, 4] normalised proposals (zero rows allowed).
        mrcnn_class: float [B, N, NC] class probabilities.
        mrcnn_bbox: float [B, N, NC, 4] deltas / BBOX_STD_DEV.
        image_meta: float [B, IMAGE_META_SIZE] (molded image shape and window).
    Per ROI: argmax class and its score; the ROI refined by that class's deltas *
    BBOX_STD_DEV and clipped to the normalised window. Drops background and scores below
    DETECTION_MIN_CONFIDENCE, runs NMS per class at DETECTION_NMS_THRESHOLD and keeps the
    best DETECTION_MAX_INSTANCES (with more than PER_CLASS_NMS_MAX_CLASSES foreground
    classes as one NMS per image over class-shifted boxes: class_offset_nms_keep).
    Returns:
        float32 [B, DETECTION_MAX_INSTANCES, 6] rows (y1, x1, y2, x2, class_id, score),
        normalised, by descending score, zero rows at the end.

    Build with a Config (`DetectionLayer(config)`) or the explicit keyword settings, which
    take precedence and are what `get_config()` records.
    """

    def __init__(self, config=None, name="mrcnn_detection", max_instances=None,
                 min_confidence=None, nms_threshold=None, bbox_std_dev=None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # box arithmetic, image_meta and NMS in float32
        super().__init__(name=name, **kwargs)

        def setting(value, attribute):
            if value is not None:
                return value
            if config is None:
                raise ValueError(f"DetectionLayer needs a config or {attribute}")
            return getattr(config, attribute)

        self.max_instances = int(setting(max_instances, "DETECTION_MAX_INSTANCES"))
        self.min_confidence = float(setting(min_confidence, "DETECTION_MIN_CONFIDENCE"))
        self.nms_threshold = float(setting(nms_threshold, "DETECTION_NMS_THRESHOLD"))
        self.bbox_std_dev = [float(v) for v in
                             np.reshape(setting(bbox_std_dev, "BBOX_STD_DEV"), [4])]

    def call(self, inputs):
        rois, probs, deltas, image_meta = inputs
        rois = tf.cast(rois, tf.float32)
        probs = tf.cast(probs, tf.float32)
        deltas = tf.cast(deltas, tf.float32)
        num_classes = probs.shape[-1]
        if num_classes is None:
            raise ValueError("DetectionLayer needs a static number of classes")
        window = normalised_window(image_meta)
        class_ids, scores, boxes = best_class_boxes(
            rois, probs, deltas, window, tf.constant(self.bbox_std_dev))
        candidates = (class_ids > 0) & (scores >= self.min_confidence)
        if num_classes - 1 > PER_CLASS_NMS_MAX_CLASSES:
            keep = class_offset_nms_keep(boxes, scores, class_ids, candidates, num_classes,
                                         self.max_instances, self.nms_threshold)
        elif num_classes > 1:
            keep = per_class_nms_keep(boxes, scores, class_ids, candidates, num_classes,
                                      self.max_instances, self.nms_threshold)
        else:
            keep = candidates
        return top_detections(boxes, class_ids, scores, keep, self.max_instances)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.max_instances, 6)

    def get_config(self):
        config = super().get_config()
        config.update({
            "max_instances": self.max_instances,
            "min_confidence": self.min_confidence,
            "nms_threshold": self.nms_threshold,
            "bbox_std_dev": self.bbox_std_dev,
        })
        return config

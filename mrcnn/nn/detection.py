"""Final detections: refine each ROI with its best class, then filter and de-duplicate.

Boxes are normalised (y1, x1, y2, x2) in the frame of the molded image.
"""
import keras
import numpy as np
import tensorflow as tf

from mrcnn.image_meta import parse_image_meta_graph
from mrcnn.nn import box_ops


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
    classes never suppress each other and ties keep the lower ROI index.

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
    best DETECTION_MAX_INSTANCES.
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
        if num_classes > 1:
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

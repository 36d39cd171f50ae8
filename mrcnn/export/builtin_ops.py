"""TFLite-builtin versions of the three graph layers that use TensorFlow-only ops.

The inference graph's ProposalLayer and DetectionLayer run NMS inside `tf.map_fn` (a
while loop over TensorLists), and PyramidROIAlign uses `tf.image.crop_and_resize` and
`tf.dynamic_stitch`; TFLite has builtins for none of these, and an interpreter without
the Flex (select TF ops) delegate cannot run them. For one image per call the same
results come from builtins only:

- proposals and detections: NMS on the image's boxes with NonMaxSuppressionV4 (padded
  output, the TFLite builtin NON_MAX_SUPPRESSION_V4), one call per foreground class
  unrolled in Python;
- anchors: gathered as int32 bit patterns (`tf.bitcast`, the builtin BITCAST), so that
  quantized conversions, which store gathered float constants as int8 or float16, keep
  them exact;
- ROI pooling: the bilinear sampling of CropAndResize written as four gathers with the
  kernel's own float32 formula, on every pyramid level, each box then taking its level's
  result (`tf.where`), instead of gathering the boxes of each level and stitching.
  ROI_ALIGN_MODE "aligned" samples sampling_ratio x the pool size the same way on the
  map padded with one replicated edge pixel and averages each block (AVERAGE_POOL_2D),
  as `roi_align.aligned_crop_and_resize` does with CropAndResize.

`builtin_layers(keras_model)` swaps these implementations in for as long as the
`with` block lasts (while the TFLite function is traced); the layers, their weights and
everything else stay as they are.
"""
import contextlib
import types

import tensorflow as tf

from mrcnn.image_meta import parse_image_meta_graph
from mrcnn.nn import box_ops
from mrcnn.nn.detection import (DetectionLayer, best_class_boxes, normalised_window,
                                per_class_nms_keep, top_detections)
from mrcnn.nn.proposals import ProposalLayer, top_anchors
from mrcnn.nn.roi_align import (PYRAMID_LEVELS, PyramidROIAlign, pixel_boxes,
                                 replicate_edges, roi_pyramid_level, sample_span)


def nms_keep_mask(boxes, scores, max_output_size, iou_threshold, score_threshold):
    """Greedy NMS of one image (tf.image.non_max_suppression's result), builtin ops only.

    Args:
        boxes: float32 [N, 4]; scores: float32 [N].
        max_output_size: int; iou_threshold, score_threshold: floats.
    Returns:
        (selected int32 [max_output_size] indices of kept boxes, best first, padded with
        0; valid int32 scalar, how many of them are real).
    """
    # TensorFlow's NMS gives a box without area IoU 0 with every box; TFLite's kernel
    # breaks on one (0/0: it returned index 0 in every slot). Such boxes move to unit
    # squares of their own far outside [0, 1], where their IoU with anything is 0 too.
    y1, x1, y2, x2 = tf.unstack(boxes, axis=1)
    empty = (y2 <= y1) | (x2 <= x1)
    corner = 2.0 + 2.0 * tf.cast(tf.range(tf.shape(boxes)[0]), tf.float32)
    apart = tf.stack([corner, corner, corner + 1.0, corner + 1.0], axis=1)
    boxes = tf.where(empty[:, None], apart, boxes)
    selected, valid = tf.raw_ops.NonMaxSuppressionV4(
        boxes=boxes, scores=scores, max_output_size=max_output_size,
        iou_threshold=iou_threshold, score_threshold=score_threshold,
        pad_to_max_output_size=True)
    return selected, valid


def _proposal_call(layer, inputs):
    """ProposalLayer.call for a batch of one image without tf.map_fn."""
    rpn_probs, rpn_bbox, anchors = inputs
    scores = tf.cast(rpn_probs[:, :, 1], tf.float32)
    deltas = tf.cast(rpn_bbox, tf.float32) * tf.constant(layer.rpn_bbox_std_dev)
    # The anchors are a constant of the traced graph, and the converter's dynamic-range
    # quantization stores a gathered float constant as int8 ("embedding" weights): ~1/255
    # of the anchors' range off, a pixel at 128^2, enough to move final boxes (float16
    # rounds them too). Their int32 bit patterns go through the gather instead, exact.
    anchor_bits = tf.bitcast(tf.cast(anchors, tf.float32), tf.int32)
    scores, deltas, anchor_bits = top_anchors(scores, deltas, anchor_bits,
                                              layer.pre_nms_limit)
    anchors = tf.bitcast(anchor_bits, tf.float32)
    boxes = box_ops.clip_boxes(box_ops.apply_box_deltas(anchors, deltas),
                               tf.constant([0.0, 0.0, 1.0, 1.0]))
    selected, valid = nms_keep_mask(boxes[0], scores[0], layer.proposal_count,
                                    layer.nms_threshold, float("-inf"))
    real = tf.range(layer.proposal_count) < valid
    kept = tf.gather(boxes[0], selected) * tf.cast(real, tf.float32)[:, None]
    return kept[None]


def _detection_call(layer, inputs):
    """DetectionLayer.call for a batch of one image: one NMS per foreground class."""
    rois, probs, deltas, image_meta = inputs
    rois, probs, deltas = (tf.cast(t, tf.float32) for t in (rois, probs, deltas))
    num_classes = probs.shape[-1]
    num_rois = rois.shape[1]
    if num_classes is None or num_rois is None:
        raise ValueError("the TFLite detection layer needs static class and ROI counts")
    window = normalised_window(image_meta)
    class_ids, scores, boxes = best_class_boxes(rois, probs, deltas, window,
                                                tf.constant(layer.bbox_std_dev))
    candidates = (class_ids > 0) & (scores >= layer.min_confidence)
    keep = tf.zeros([num_rois], tf.bool)
    for class_id in range(1, num_classes):
        member = candidates[0] & tf.equal(class_ids[0], class_id)
        # Other ROIs score -1: NMS visits them after every member, so they suppress no
        # member; the ones it returns after the members are dropped here.
        selected, valid = nms_keep_mask(boxes[0], tf.where(member, scores[0], -1.0),
                                        layer.max_instances, layer.nms_threshold,
                                        float("-inf"))
        real = (tf.range(layer.max_instances) < valid) & tf.gather(member, selected)
        hits = tf.scatter_nd(selected[:, None], tf.cast(real, tf.int32), [num_rois])
        keep = keep | (hits > 0)
    return top_detections(boxes, class_ids, scores, keep[None], layer.max_instances)


def crop_and_resize_builtin(feature_map, boxes, crop_size):
    """tf.image.crop_and_resize (bilinear, extrapolation 0) of one image, by gathers.

    Args:
        feature_map: float32 [1, h, w, C] with static h, w, C.
        boxes: float32 [N, 4] normalised (y1, x1, y2, x2) of that map.
        crop_size: (ch, cw) python ints, both > 1.
    Returns:
        float32 [N, ch, cw, C]. Sample (i, j) reads y1 * (h - 1) + i * (y2 - y1) * (h - 1)
        / (ch - 1) (likewise x), bilinear between its floor and ceil pixels in the
        kernel's order (top = tl + (tr - tl) * dx, bottom likewise, top + (bottom - top)
        * dy); samples outside [0, h - 1] x [0, w - 1] are 0.
    """
    _, height, width, channels = feature_map.shape
    crop_h, crop_w = crop_size
    y1, x1, y2, x2 = tf.unstack(boxes, axis=1)

    def axis_samples(start, end, size, count):
        step = (end - start) * (size - 1) / (count - 1)                   # [N]
        at = (start * (size - 1))[:, None] + tf.range(count, dtype=tf.float32)[None] * step[:, None]
        inside = (at >= 0.0) & (at <= size - 1.0)
        low = tf.floor(at)
        high = tf.math.ceil(at)
        fraction = at - low
        low = tf.clip_by_value(tf.cast(low, tf.int32), 0, size - 1)
        high = tf.clip_by_value(tf.cast(high, tf.int32), 0, size - 1)
        return low, high, fraction, inside

    top, bottom, dy, inside_y = axis_samples(y1, y2, height, crop_h)      # [N, ch]
    left, right, dx, inside_x = axis_samples(x1, x2, width, crop_w)       # [N, cw]
    pixels = tf.reshape(feature_map, [height * width, channels])

    def corner(rows, cols):
        index = rows[:, :, None] * width + cols[:, None, :]                # [N, ch, cw]
        return tf.gather(pixels, index)                                   # [N, ch, cw, C]

    dx = dx[:, None, :, None]
    dy = dy[:, :, None, None]
    top_left, top_right = corner(top, left), corner(top, right)
    bottom_left, bottom_right = corner(bottom, left), corner(bottom, right)
    upper = top_left + (top_right - top_left) * dx
    lower = bottom_left + (bottom_right - bottom_left) * dx
    value = upper + (lower - upper) * dy
    inside = (inside_y[:, :, None] & inside_x[:, None, :])[..., None]
    return tf.where(inside, value, 0.0)


def aligned_crop_builtin(feature_map, boxes, pool_shape, sampling_ratio):
    """roi_align.aligned_crop_and_resize of one image, by gathers (TFLite builtins).

    Args:
        feature_map: float32 [1, h, w, C] with static h, w, C.
        boxes: float32 [N, 4] (y1, x1, y2, x2) continuous coordinates of that map.
        pool_shape: (P, Q) bins; sampling_ratio: r samples per bin along each axis.
    Returns:
        float32 [N, P, Q, C]: each bin the mean of its r x r bilinear samples, on the map
        padded with one replicated edge pixel (detectron2's border rule).
    """
    _, height, width, _ = feature_map.shape
    pool_h, pool_w = pool_shape
    ratio = int(sampling_ratio)
    y1, x1, y2, x2 = tf.unstack(boxes, axis=1)
    box_y1, box_y2 = sample_span(y1, y2, pool_h, ratio, float(height))
    box_x1, box_x2 = sample_span(x1, x2, pool_w, ratio, float(width))
    crops = crop_and_resize_builtin(replicate_edges(feature_map),
                                    tf.stack([box_y1, box_x1, box_y2, box_x2], axis=1),
                                    (pool_h * ratio, pool_w * ratio))
    if ratio == 1:
        return crops
    return tf.nn.avg_pool2d(crops, ratio, ratio, "VALID")


def _level_crops(layer, boxes, image_shape, feature_map):
    """[N, P, Q, C] crops of one level's map for `boxes` [N, 4] normalised."""
    feature_map = tf.cast(feature_map, tf.float32)
    if layer.mode == "upstream":
        return crop_and_resize_builtin(feature_map, boxes, layer.pool_shape)
    image_hw = tf.cast(image_shape[0], tf.float32)                         # [2]
    map_hw = tf.constant([float(side) for side in feature_map.shape[1:3]])
    scale = tf.concat([map_hw / image_hw, map_hw / image_hw], axis=0)
    return aligned_crop_builtin(feature_map, pixel_boxes(boxes, image_hw) * scale,
                                layer.pool_shape, layer.sampling_ratio)


def _roi_align_call(layer, inputs):
    """PyramidROIAlign.call (either ROI_ALIGN_MODE) for one image: all levels, then select."""
    boxes, image_meta, *feature_maps = inputs
    boxes = tf.cast(boxes, tf.float32)
    image_shape = parse_image_meta_graph(image_meta)["image_shape"][:, :2]
    levels = roi_pyramid_level(boxes, image_shape)[0]                     # [N]
    pooled = None
    for level, feature_map in zip(PYRAMID_LEVELS, feature_maps):
        crops = _level_crops(layer, boxes[0], image_shape, feature_map)
        if pooled is None:
            pooled = crops     # level 2 also takes what no level claims (never happens)
        else:
            pooled = tf.where(tf.equal(levels, level)[:, None, None, None], crops, pooled)
    return pooled[None]


_SUBSTITUTES = ((ProposalLayer, _proposal_call), (DetectionLayer, _detection_call),
                (PyramidROIAlign, _roi_align_call))


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


@contextlib.contextmanager
def swapped_calls(keras_model, substitutes):
    """Within the block, each layer of the model (nested ones included) that is an
    instance of a class in `substitutes` ((layer_class, call(layer, inputs)) pairs)
    computes with that call instead of its own; yields the swapped layers."""
    swapped = []
    for layer in _all_layers(keras_model):
        for layer_class, call in substitutes:
            if isinstance(layer, layer_class):
                layer.call = types.MethodType(call, layer)
                swapped.append(layer)
                break
    try:
        yield swapped
    finally:
        for layer in swapped:
            del layer.call


def builtin_layers(keras_model):
    """Within the `with` block, the model's proposal, detection and ROI-align layers
    compute with TFLite builtins for a batch of one image (see the module doc)."""
    return swapped_calls(keras_model, _SUBSTITUTES)


def _per_class_detection_call(layer, inputs):
    """DetectionLayer.call with one NMS per class at any class count.

    Above PER_CLASS_NMS_MAX_CLASSES foreground classes the layer runs one class-shifted
    NMS and checks it (`class_offset_nms_keep`, same detections) with searchsorted ops
    that ONNX lacks; per-class NMS gives the same detections with ops it has.
    """
    rois, probs, deltas, image_meta = inputs
    rois, probs, deltas = (tf.cast(t, tf.float32) for t in (rois, probs, deltas))
    num_classes = probs.shape[-1]
    window = normalised_window(image_meta)
    class_ids, scores, boxes = best_class_boxes(rois, probs, deltas, window,
                                                tf.constant(layer.bbox_std_dev))
    candidates = (class_ids > 0) & (scores >= layer.min_confidence)
    if num_classes > 1:
        keep = per_class_nms_keep(boxes, scores, class_ids, candidates, num_classes,
                                  layer.max_instances, layer.nms_threshold)
    else:
        keep = candidates
    return top_detections(boxes, class_ids, scores, keep, layer.max_instances)


def per_class_detection(keras_model):
    """Within the `with` block, the detection layer runs per-class NMS at any class
    count (for ONNX; see `_per_class_detection_call`)."""
    return swapped_calls(keras_model, ((DetectionLayer, _per_class_detection_call),))

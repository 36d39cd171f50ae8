"""Training targets of the detection heads: sample proposals and match them to ground truth.

For each image the layer picks up to TRAIN_ROIS_PER_IMAGE proposals, positives first, and
gives every picked ROI the class, box deltas and mask the heads should predict for it:

- a proposal is *positive* when its best IoU with a non-crowd ground-truth box is >= 0.5;
- it is *negative* when that IoU is < 0.5 and its IoU with every crowd box (negative class
  id) is < 0.001, so proposals on crowds are never trained as background;
- positives are subsampled at random to at most int(T * ROI_POSITIVE_RATIO); negatives
  are added to keep the ratio, int(P / ROI_POSITIVE_RATIO) - P, never past T in total;
- each positive is assigned the ground-truth box it overlaps most; its box target is
  box_refinement(roi, gt_box) / BBOX_STD_DEV and its mask target is the ground-truth mask
  cropped to the ROI and resized to MASK_SHAPE, rounded to {0, 1} (ROI_ALIGN_MODE
  "aligned": sampled at the centres of the ROI's MASK_SHAPE bins, half-pixel corrected).

All boxes are normalised (y1, x1, y2, x2), see box_ops. Rows past the sampled ROIs are
zeros in every output, and negative ROIs have zero class, deltas and mask.
"""
import keras
import numpy as np
import tensorflow as tf

from mrcnn.nn import box_ops
from mrcnn.nn.roi_align import aligned_crop_and_resize, pixel_boxes

POSITIVE_IOU = 0.5
CROWD_IOU = 0.001


def target_settings(config):
    """The settings of a Config that the target sampler reads, as a plain dict."""
    return {
        "train_rois_per_image": int(config.TRAIN_ROIS_PER_IMAGE),
        "roi_positive_ratio": float(config.ROI_POSITIVE_RATIO),
        "bbox_std_dev": [float(v) for v in np.asarray(config.BBOX_STD_DEV).reshape(-1)],
        "mask_shape": [int(v) for v in config.MASK_SHAPE],
        "use_mini_mask": bool(config.USE_MINI_MASK),
        "roi_align_mode": str(config.ROI_ALIGN_MODE),
        "image_shape": [int(v) for v in config.IMAGE_SHAPE[:2]],
    }


def _max_and_argmax(iou):
    """Best IoU [N] and its column [N] int32 of an [N, M] IoU matrix, 0 and 0 when M == 0."""
    padded = tf.concat([iou, tf.zeros([tf.shape(iou)[0], 1], iou.dtype)], axis=1)
    return tf.reduce_max(padded, axis=1), tf.cast(tf.argmax(padded, axis=1), tf.int32)


def _sample_counts(num_positive_candidates, train_rois_per_image, roi_positive_ratio,
                   fill_negatives):
    """How many positives and negatives to take (int32 scalars), before availability."""
    positive_count = tf.minimum(num_positive_candidates,
                                int(train_rois_per_image * roi_positive_ratio))
    if fill_negatives:
        negative_count = train_rois_per_image - positive_count
    else:
        ratio = 1.0 / roi_positive_ratio
        negative_count = tf.cast(ratio * tf.cast(positive_count, tf.float32),
                                 tf.int32) - positive_count
        negative_count = tf.minimum(negative_count, train_rois_per_image - positive_count)
    return positive_count, negative_count


def _aligned_mask_crops(masks, rois, gt_boxes, box_index, mask_shape, use_mini_mask,
                        image_shape):
    """ROI_ALIGN_MODE "aligned": sample each mask target cell at its centre.

    Cell (i, j) of an M x M target is the ROI's bin (i, j), as in the aligned pooling the
    mask head reads; its value is the bilinear sample of the GT mask at the bin's centre,
    half-pixel corrected (aligned_crop_and_resize, one sample per bin). Full-size masks
    live in the molded image's pixels; a mini mask of m rows spans its GT box, so a pixel
    coordinate y maps to (y - gt_y1) * m / gt_height (both in continuous pixels).

    Args:
        masks: [U, h, w, 1] GT masks, box_index: int32 [P] a mask of each ROI.
        rois, gt_boxes: float32 [P, 4] normalised; image_shape: (H, W) of the image.
    Returns:
        float32 [P, mask_h, mask_w, 1].
    """
    rois = pixel_boxes(rois, image_shape)
    if use_mini_mask:
        gt_boxes = pixel_boxes(gt_boxes, image_shape)
        origin = tf.tile(gt_boxes[:, :2], [1, 2])
        mini_shape = tf.cast(tf.shape(masks)[1:3], tf.float32)
        scale = mini_shape / (gt_boxes[:, 2:] - gt_boxes[:, :2])        # [P, 2]
        rois = (rois - origin) * tf.tile(scale, [1, 2])
    return aligned_crop_and_resize(masks, rois, box_index, mask_shape, sampling_ratio=1)


def _mask_targets(gt_masks, rois, gt_boxes, assignment, mask_shape, use_mini_mask,
                  roi_align_mode="upstream", image_shape=None):
    """Mask targets of positive ROIs.

    Only the masks some ROI is assigned to are gathered, and boolean masks stay 1 byte per
    pixel (uint8): a float32 copy of a full-size mask stack (USE_MINI_MASK=False, 100
    instances of 1024^2: 400 MB per image) is never made.

    Args:
        gt_masks: bool or float [h, w, G] ground-truth masks: mini masks (each resized from
            its GT box) or full-size masks in the frame of the molded image.
        rois: float32 [P, 4] positive ROIs, normalised image coordinates.
        gt_boxes: float32 [P, 4] the GT box assigned to each ROI, normalised.
        assignment: int32 [P] index of each ROI's GT in the last axis of gt_masks.
        roi_align_mode: "upstream" crops with crop_and_resize of the normalised ROI;
            "aligned" samples the centres of the ROI's bins (`_aligned_mask_crops`).
        image_shape: (H, W) of the molded image, needed by "aligned".
    Returns:
        float32 [P, mask_h, mask_w] in {0, 1}.
    """
    boxes = rois
    if use_mini_mask:
        # Express the ROI in the frame of its GT box, where the mini mask lives.
        y1, x1, y2, x2 = tf.unstack(rois, axis=1)
        gy1, gx1, gy2, gx2 = tf.unstack(gt_boxes, axis=1)
        gh, gw = gy2 - gy1, gx2 - gx1
        boxes = tf.stack([(y1 - gy1) / gh, (x1 - gx1) / gw,
                          (y2 - gy1) / gh, (x2 - gx1) / gw], axis=1)
    used, box_index = tf.unique(assignment)
    masks = tf.gather(gt_masks, used, axis=2)                     # [h, w, U]
    if masks.dtype == tf.bool:
        masks = tf.cast(masks, tf.uint8)
    masks = tf.expand_dims(tf.transpose(masks, [2, 0, 1]), -1)   # [U, h, w, 1]
    if roi_align_mode == "aligned":
        crops = _aligned_mask_crops(masks, rois, gt_boxes, box_index, mask_shape,
                                    use_mini_mask, image_shape)
    else:
        crops = tf.image.crop_and_resize(masks, boxes, box_index, mask_shape)
    return tf.round(tf.squeeze(crops, axis=3))


def _pad_rows(tensor, rows):
    """Zero-pad the first axis of `tensor` to `rows` rows, with a static first dimension."""
    padding = [[0, rows - tf.shape(tensor)[0]]] + [[0, 0]] * (tensor.shape.rank - 1)
    padded = tf.pad(tensor, padding)
    return tf.ensure_shape(padded, [rows] + tensor.shape.as_list()[1:])


def detection_targets(proposals, gt_class_ids, gt_boxes, gt_masks, *, train_rois_per_image,
                      roi_positive_ratio, bbox_std_dev, mask_shape, use_mini_mask,
                      fill_negatives=False, seed=None, roi_align_mode="upstream",
                      image_shape=None, return_gt_index=False):
    """Sample ROIs of one image and build their targets.

    Args:
        proposals: float32 [N, 4] normalised, zero rows are padding.
        gt_class_ids: int32 [G] class ids; 0 is padding, negative marks a crowd.
        gt_boxes: float32 [G, 4] normalised, zero rows are padding.
        gt_masks: bool (or float, values 0..1) [h, w, G] mini masks or full-size masks;
            only the masks of positive ROIs' GTs are read, and never cast to float.
        train_rois_per_image: T, the number of rows of every output.
        roi_positive_ratio: the largest share of positives among the sampled ROIs.
        bbox_std_dev: [4] the deltas are divided by it.
        mask_shape: (mask_h, mask_w) of the mask targets.
        use_mini_mask: whether gt_masks are mini masks (cropped to their GT boxes).
        fill_negatives: False (upstream) keeps positives:negatives at the ratio, so an image
            without positives yields no ROIs; True fills every row the positives leave
            with negatives when there are enough.
        seed: op seed of the random subsampling.
        roi_align_mode: ROI_ALIGN_MODE; "aligned" samples mask targets at the centres
            of the ROI's bins, as the aligned ROI pooling does.
        image_shape: (H, W) of the molded image (the frame of the normalised boxes);
            needed by roi_align_mode "aligned".
        return_gt_index: also return each ROI's ground-truth row (the keypoint targets
            read the matched instance's keypoints).
    Returns:
        rois: float32 [T, 4] positives, then negatives, then zero rows.
        class_ids: int32 [T] the class of each positive ROI, 0 elsewhere.
        deltas: float32 [T, 4] box_refinement(roi, gt) / bbox_std_dev of positives.
        masks: float32 [T, mask_h, mask_w] mask targets of positives in {0, 1}.
        gt_index (with return_gt_index): int32 [T] the row of gt_class_ids / gt_boxes
            each positive ROI is matched to, -1 for negatives and padding.
    """
    if roi_align_mode not in ("upstream", "aligned"):
        raise ValueError(f"roi_align_mode (Config.ROI_ALIGN_MODE) must be 'upstream' or "
                         f"'aligned', got {roi_align_mode!r}")
    if roi_align_mode == "aligned" and image_shape is None:
        raise ValueError("roi_align_mode 'aligned' needs image_shape, the (H, W) of the "
                         "molded image the normalised boxes refer to")
    proposals = tf.cast(proposals, tf.float32)
    proposals, _ = box_ops.trim_zero_rows(proposals, name="trim_proposals")
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    gt_class_ids = tf.cast(gt_class_ids, tf.int32)
    _, non_zero = box_ops.trim_zero_rows(gt_boxes, name="trim_gt_boxes")

    # Crowds only veto negatives; the other GT instances are the ones to learn. The masks
    # are not trimmed: instance_ix maps an instance to its mask in gt_masks.
    crowd_boxes = tf.boolean_mask(gt_boxes, non_zero & (gt_class_ids < 0))
    instance_ix = tf.cast(tf.where(non_zero & (gt_class_ids > 0))[:, 0], tf.int32)
    gt_class_ids = tf.gather(gt_class_ids, instance_ix)
    gt_boxes = tf.gather(gt_boxes, instance_ix)

    best_iou, best_gt = _max_and_argmax(box_ops.overlaps(proposals, gt_boxes))
    crowd_iou, _ = _max_and_argmax(box_ops.overlaps(proposals, crowd_boxes))
    positive_candidates = tf.where(best_iou >= POSITIVE_IOU)[:, 0]
    negative_candidates = tf.where((best_iou < POSITIVE_IOU) & (crowd_iou < CROWD_IOU))[:, 0]

    positive_count, negative_count = _sample_counts(
        tf.shape(positive_candidates)[0], train_rois_per_image, roi_positive_ratio,
        fill_negatives)
    negative_seed = None if seed is None else seed + 1
    positive_ix = tf.random.shuffle(positive_candidates, seed=seed)[:positive_count]
    negative_ix = tf.random.shuffle(negative_candidates, seed=negative_seed)[:negative_count]

    positive_rois = tf.gather(proposals, positive_ix)
    assignment = tf.gather(best_gt, positive_ix)
    roi_gt_boxes = tf.gather(gt_boxes, assignment)
    class_ids = tf.gather(gt_class_ids, assignment)
    deltas = box_ops.box_refinement(positive_rois, roi_gt_boxes)
    deltas /= tf.constant(bbox_std_dev, tf.float32)
    gt_index = tf.gather(instance_ix, assignment)
    masks = _mask_targets(gt_masks, positive_rois, roi_gt_boxes, gt_index, mask_shape,
                          use_mini_mask, roi_align_mode, image_shape)

    rois = tf.concat([positive_rois, tf.gather(proposals, negative_ix)], axis=0)
    rows = train_rois_per_image
    outputs = (_pad_rows(rois, rows), _pad_rows(class_ids, rows), _pad_rows(deltas, rows),
               _pad_rows(masks, rows))
    if return_gt_index:
        outputs += (_pad_rows(gt_index + 1, rows) - 1,)
    return outputs


@keras.saving.register_keras_serializable(package="mrcnn")
class InstanceBoxes(keras.layers.Layer):
    """The ground-truth boxes that may join the proposals (ROI_INCLUDE_GT_BOXES).

    Inputs (a list):
        gt_class_ids: int [B, G] (0 padding, negative crowd).
        gt_boxes: float [B, G, 4], any frame.
    Output:
        float32 [B, G, 4]: the boxes of instances (positive class ids); rows of crowds and
        padding are zero, so the ROI sampler trims them as padding. A crowd box among the
        proposals would become a positive ROI wherever it overlaps an instance.
    """

    def __init__(self, name="gt_instance_boxes", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)

    def call(self, inputs):
        gt_class_ids, gt_boxes = inputs
        is_instance = tf.expand_dims(tf.cast(gt_class_ids, tf.int32) > 0, -1)
        gt_boxes = tf.cast(gt_boxes, tf.float32)
        return tf.where(is_instance, gt_boxes, tf.zeros_like(gt_boxes))

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[1])


class DetectionTargetLayer(keras.layers.Layer):
    """Sample ROIs from proposals and build the heads' targets, for a batch of images.

    Inputs (a list):
        proposals: float [B, N, 4] normalised, zero-padded.
        gt_class_ids: int [B, G] (0 padding, negative crowd).
        gt_boxes: float [B, G, 4] normalised, zero-padded.
        gt_masks: bool or float [B, h, w, G] mini masks (USE_MINI_MASK) or full-size masks.
    Outputs (a list), T = TRAIN_ROIS_PER_IMAGE:
        rois: float32 [B, T, 4]; target_class_ids: int32 [B, T];
        target_bbox: float32 [B, T, 4]; target_mask: float32 [B, T, MASK_H, MASK_W];
        with return_gt_index also roi_gt_index: int32 [B, T] (see detection_targets).

    Args:
        config: a Config, or the dict `target_settings(config)` returns.
        seed: op seed of the random subsampling; None takes config.SEED when given.
        fill_negatives: see `detection_targets` (False is upstream's sampling).
        return_gt_index: add the roi_gt_index output (keypoint models).
    """

    def __init__(self, config, seed=None, fill_negatives=False, name="proposal_targets",
                 return_gt_index=False, **kwargs):
        # Box deltas need float32 inputs even under a mixed-precision policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        if not isinstance(config, dict):
            seed = getattr(config, "SEED", None) if seed is None else seed
            config = target_settings(config)
        self.settings = dict(config)
        self.seed = seed
        self.fill_negatives = bool(fill_negatives)
        self.return_gt_index = bool(return_gt_index)

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs
        rows = self.settings["train_rois_per_image"]
        mask_h, mask_w = self.settings["mask_shape"]
        signature = (tf.TensorSpec([rows, 4], tf.float32),
                     tf.TensorSpec([rows], tf.int32),
                     tf.TensorSpec([rows, 4], tf.float32),
                     tf.TensorSpec([rows, mask_h, mask_w], tf.float32))
        if self.return_gt_index:
            signature += (tf.TensorSpec([rows], tf.int32),)

        def per_image(elements):
            *boxes_and_ids, index = elements
            return detection_targets(*boxes_and_ids, gt_masks[index],
                                     fill_negatives=self.fill_negatives, seed=self.seed,
                                     return_gt_index=self.return_gt_index, **self.settings)

        # The masks are read in place (a map_fn element would be a copy of the whole
        # stack) and keep their dtype, bool from the input pipeline: see _mask_targets.
        elements = (tf.cast(proposals, tf.float32), tf.cast(gt_class_ids, tf.int32),
                    tf.cast(gt_boxes, tf.float32), tf.range(tf.shape(proposals)[0]))
        outputs = tf.map_fn(per_image, elements, fn_output_signature=signature)
        return list(outputs)

    def get_config(self):
        base = super().get_config()
        base.update({"config": dict(self.settings), "seed": self.seed,
                     "fill_negatives": self.fill_negatives,
                     "return_gt_index": self.return_gt_index})
        return base

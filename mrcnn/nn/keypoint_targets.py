"""Keypoint targets: the heatmap cell of each labelled keypoint of a positive ROI.

Frames. Keypoints are (x, y, v) in the molded image's pixel-index frame: integer x is the
centre of pixel column x, so the keypoint's continuous position (pixel i spanning
[i, i + 1)) is x + 0.5. ROIs are normalised boxes of the molded image (box_ops).

The heatmap of an ROI is a grid of mh x mw cells over the box its pooling samples
(`heatmap_boxes`, continuous pixels [Y1, Y2) x [X1, X2)):

- ROI_ALIGN_MODE "aligned": the ROI itself, `roi_align.pixel_boxes`; the pooled bins
  and so the heatmap cells divide it evenly.
- "upstream": crop_and_resize places the P pooled samples from the box's first to its
  last pixel centre (continuous a + 0.5 .. b + 0.5, a = x1 (W - 1), b = x2 (W - 1)),
  so each bin is centred on its sample and the grid spans half a bin more on each side:
  [a + 0.5 - s / 2, b + 0.5 + s / 2), s = (b - a) / (P - 1) (P = 1: [a + 0.5, b + 0.5)).

A keypoint falls in column floor((x + 0.5 - X1) / (X2 - X1) * mw) and row
floor((y + 0.5 - Y1) / (Y2 - Y1) * mh); its target is the flat index row * mw + column.
It is a training target when v > 0 (1 occluded, 2 visible: both, as COCO/detectron2) and
the cell lies on the grid (X1 <= x + 0.5 < X2, same in y); any other keypoint, and every
keypoint of a negative or padding ROI, is ignored (weight 0).
"""
import keras
import tensorflow as tf

from mrcnn.image_meta import parse_image_meta_graph
from mrcnn.nn.roi_align import pixel_boxes


def heatmap_boxes(rois, image_shape, roi_align_mode="upstream", pool_size=14):
    """The continuous pixel box each ROI's heatmap grid spans (see the module doc).

    Args:
        rois: float32 [..., 4] normalised (y1, x1, y2, x2) boxes of the molded image.
        image_shape: float32 [..., 2] (H, W) of the molded image, broadcastable to rois.
        roi_align_mode: ROI_ALIGN_MODE, "upstream" or "aligned".
        pool_size: KEYPOINT_POOL_SIZE P (read by "upstream").
    Returns:
        float32 [..., 4] (Y1, X1, Y2, X2) continuous pixels of the molded image.
    """
    rois = tf.cast(rois, tf.float32)
    image_shape = tf.cast(image_shape, tf.float32)
    if roi_align_mode == "aligned":
        return pixel_boxes(rois, image_shape)
    if roi_align_mode != "upstream":
        raise ValueError(f"roi_align_mode (Config.ROI_ALIGN_MODE) must be 'upstream' or "
                         f"'aligned', got {roi_align_mode!r}")
    scale = tf.concat([image_shape, image_shape], axis=-1) - 1.0
    centres = rois * scale + 0.5                       # first and last sample, continuous
    first, last = centres[..., :2], centres[..., 2:]
    step = (last - first) / float(max(int(pool_size) - 1, 1))
    half = 0.5 * step if int(pool_size) > 1 else tf.zeros_like(step)
    return tf.concat([first - half, last + half], axis=-1)


def encode_keypoints(keypoints, boxes, heatmap_shape):
    """Flat heatmap index and training weight of each keypoint in its ROI's grid.

    Args:
        keypoints: float32 [..., K, 3] (x, y, v) pixel-index frame of the molded image.
        boxes: float32 [..., 4] heatmap_boxes of the ROIs (continuous pixels).
        heatmap_shape: (mh, mw).
    Returns:
        index: int32 [..., K] row * mw + column, 0 where the weight is 0.
        weight: float32 [..., K] 1 for a labelled keypoint (v > 0) on the grid, else 0.
    """
    mh, mw = (int(v) for v in heatmap_shape)
    keypoints = tf.cast(keypoints, tf.float32)
    boxes = tf.cast(boxes, tf.float32)[..., None, :]                # [..., 1, 4]
    y1, x1, y2, x2 = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    height, width = y2 - y1, x2 - x1
    safe_h = tf.where(height > 0, height, 1.0)
    safe_w = tf.where(width > 0, width, 1.0)
    column = tf.floor((keypoints[..., 0] + 0.5 - x1) / safe_w * mw)
    row = tf.floor((keypoints[..., 1] + 0.5 - y1) / safe_h * mh)
    valid = ((keypoints[..., 2] > 0) & (height > 0) & (width > 0)
             & (column >= 0) & (column < mw) & (row >= 0) & (row < mh))
    index = tf.where(valid, tf.cast(row, tf.int32) * mw + tf.cast(column, tf.int32), 0)
    return index, tf.cast(valid, tf.float32)


def keypoint_targets(rois, roi_gt_index, gt_keypoints, image_shape, heatmap_shape,
                     roi_align_mode="upstream", pool_size=14):
    """Targets of a batch of sampled ROIs.

    Args:
        rois: float32 [B, N, 4] normalised ROIs.
        roi_gt_index: int32 [B, N] the ground-truth row each positive ROI is matched to
            (DetectionTargetLayer's roi_gt_index), -1 for negatives and padding.
        gt_keypoints: float32 [B, G, K, 3] (x, y, v) molded pixel-index frame.
        image_shape: float32 [B, 2] (H, W) of each molded image.
        heatmap_shape, roi_align_mode, pool_size: as in encode_keypoints, heatmap_boxes.
    Returns:
        index int32 [B, N, K], weight float32 [B, N, K] (0 off positives).
    """
    roi_gt_index = tf.cast(roi_gt_index, tf.int32)
    matched = tf.gather(tf.cast(gt_keypoints, tf.float32), tf.maximum(roi_gt_index, 0),
                        batch_dims=1)                                   # [B, N, K, 3]
    boxes = heatmap_boxes(rois, tf.cast(image_shape, tf.float32)[:, None, :],
                          roi_align_mode, pool_size)
    index, weight = encode_keypoints(matched, boxes, heatmap_shape)
    weight *= tf.cast(roi_gt_index >= 0, tf.float32)[..., None]
    return tf.where(weight > 0, index, 0), weight


@keras.saving.register_keras_serializable(package="mrcnn")
class KeypointTargetLayer(keras.layers.Layer):
    """`keypoint_targets` as a layer of the training graph.

    Inputs (a list): rois float [B, N, 4], roi_gt_index int32 [B, N],
        gt_keypoints float [B, G, K, 3], image_meta float [B, IMAGE_META_SIZE] (its
        molded image_shape is the frame of the normalised ROIs).
    Outputs (a list): target_keypoints int32 [B, N, K] flat heatmap indices,
        target_keypoint_weights float32 [B, N, K].

    Args:
        heatmap_shape: KEYPOINT_MASK_SHAPE; roi_align_mode: ROI_ALIGN_MODE;
        pool_size: KEYPOINT_POOL_SIZE.
    """

    def __init__(self, heatmap_shape, roi_align_mode="upstream", pool_size=14,
                 name="keypoint_targets", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        self.heatmap_shape = tuple(int(v) for v in heatmap_shape)
        self.roi_align_mode = str(roi_align_mode)
        self.pool_size = int(pool_size)

    def call(self, inputs):
        rois, roi_gt_index, gt_keypoints, image_meta = inputs
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][:, :2]
        index, weight = keypoint_targets(rois, roi_gt_index, gt_keypoints, image_shape,
                                         self.heatmap_shape, self.roi_align_mode,
                                         self.pool_size)
        return [tf.stop_gradient(index), tf.stop_gradient(weight)]

    def compute_output_shape(self, input_shapes):
        rois, _, keypoints, _ = input_shapes
        shape = (rois[0], rois[1], keypoints[2])
        return [shape, shape]

    def compute_output_spec(self, inputs):
        rois, _, keypoints, _ = inputs
        shape = (rois.shape[0], rois.shape[1], keypoints.shape[2])
        return [keras.KerasTensor(shape, dtype="int32"),
                keras.KerasTensor(shape, dtype="float32")]

    def get_config(self):
        config = super().get_config()
        config.update({"heatmap_shape": list(self.heatmap_shape),
                       "roi_align_mode": self.roi_align_mode, "pool_size": self.pool_size})
        return config

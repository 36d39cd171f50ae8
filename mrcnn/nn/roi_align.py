"""Multi-level ROIAlign: pool each box from the pyramid level that suits its size.

Boxes are normalised (y1, x1, y2, x2) in the frame of the molded image. Pooling is
`tf.image.crop_and_resize` (bilinear), which has no XLA kernel: graphs using this layer
must not be jit-compiled.

Two pooling modes (Config.ROI_ALIGN_MODE):

- "upstream" (default; upstream's weights were trained with it): one bilinear sample per
  output bin, `crop_and_resize` of the normalised box on each level's map. Its sample
  grid spans the box's first to last pixel centre, half a cell off the paper's.
- "aligned": the paper's ROIAlign with detectron2's half-pixel correction
  (ROIAlignV2): each bin is the mean of sampling_ratio x sampling_ratio bilinear samples
  at regularly spaced points inside it, in continuous coordinates, without quantisation.
  See `aligned_crop_and_resize` for the coordinate frames and the border rule.
"""
import keras
import tensorflow as tf

from mrcnn.config import ROI_ALIGN_MODES
from mrcnn.image_meta import parse_image_meta_graph

PYRAMID_LEVELS = (2, 3, 4, 5)


def roi_pyramid_level(boxes, image_shape):
    """Pyramid level of each box, as in the FPN paper (equation 1).

    k = clip(4 + round(log2(sqrt(h * w) / (224 / sqrt(image_area)))), 2, 5), with h, w the
    normalised box sides and image_area the molded image's height * width in pixels:
    a 224-pixel box in a 1024 x 1024 image maps to level 4. `round` is round-half-to-even
    (tf.round). Boxes of zero (or negative) area map to level 2 with no NaN.

    Args:
        boxes: float [..., N, 4] normalised boxes.
        image_shape: float or int [2+] (height, width, ...) shared by all boxes, or
            [B, 2+] per image when boxes are [B, N, 4].
    Returns:
        int32 [..., N] levels in 2..5.
    """
    boxes = tf.cast(boxes, tf.float32)
    image_shape = tf.cast(image_shape, tf.float32)
    image_area = image_shape[..., 0] * image_shape[..., 1]
    if image_shape.shape.rank == 2:
        image_area = image_area[:, None]                     # [B, 1] against [B, N]
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    box_side = tf.sqrt(tf.maximum(height * width, 0.0))
    # log2(0) = -inf, which the clip below turns into level 2.
    log2_ratio = tf.math.log(box_side / (224.0 / tf.sqrt(image_area))) / tf.math.log(2.0)
    level = tf.clip_by_value(4.0 + tf.round(log2_ratio), 2.0, 5.0)
    return tf.cast(level, tf.int32)


def pixel_boxes(boxes, image_shape):
    """Normalised boxes -> continuous pixel coordinates of the molded image.

    The graph normalises a pixel box (y2, x2 exclusive) as (box - [0, 0, 1, 1]) /
    [H - 1, W - 1, H - 1, W - 1] (box_ops.norm_boxes). In continuous coordinates, where
    pixel i spans [i, i + 1), the box therefore covers [y1 (H - 1), y2 (H - 1) + 1) and
    likewise in x: [0, 0, 1, 1] is the whole image [0, 0, H, W].

    Args:
        boxes: float32 [..., 4] normalised (y1, x1, y2, x2).
        image_shape: float32 [..., 2] (H, W), broadcastable against boxes[..., :2].
    Returns:
        float32 [..., 4] (y1, x1, y2, x2) continuous pixel coordinates.
    """
    image_shape = tf.cast(image_shape, tf.float32)
    scale = tf.concat([image_shape, image_shape], axis=-1) - 1.0
    return boxes * scale + tf.constant([0.0, 0.0, 1.0, 1.0])


def replicate_edges(images):
    """[K, h, w, C] -> [K, h + 2, w + 2, C]: the edge rows and columns repeated once."""
    images = tf.concat([images[:, :1], images, images[:, -1:]], axis=1)
    return tf.concat([images[:, :, :1], images, images[:, :, -1:]], axis=2)


def sample_span(start, end, bins, sampling_ratio, size):
    """crop_and_resize's box ends, on the edge-padded map, of one axis' aligned samples.

    The bins * r samples of [start, end) (continuous coordinates) lie at index coordinates
    start - 0.5 + (j + 0.5) * step, step = (end - start) / (bins * r), j = 0..bins*r-1:
    evenly spaced from `first` to `last`. crop_and_resize with crop size bins * r samples
    box_start * (size' - 1) + j * (box_end - box_start) * (size' - 1) / (bins * r - 1) on
    a map of size' pixels (a single sample: the middle), so box_start * (size' - 1) must
    be `first` and box_end * (size' - 1) `last`, both shifted by the one padded pixel,
    with size' = size + 2.
    """
    step = (end - start) / float(bins * sampling_ratio)
    first = start - 0.5 + 0.5 * step
    last = end - 0.5 - 0.5 * step
    return (first + 1.0) / (size + 1.0), (last + 1.0) / (size + 1.0)


def aligned_crop_and_resize(images, boxes, box_index, crop_size, sampling_ratio):
    """The paper's ROIAlign with the half-pixel correction (detectron2's aligned=True).

    Frames: `boxes` are continuous coordinates of the pixel grid of `images`, pixel (i, j)
    spanning [i, i + 1) x [j, j + 1); samples are placed in index coordinates, where pixel
    (i, j)'s value sits at (i, j), i.e. continuous coordinates minus 0.5. With P x Q bins
    of sides bin_h = (y2 - y1) / P, bin_w = (x2 - x1) / Q and r = sampling_ratio, bin
    (i, j) is the mean of the r x r bilinear samples at

        y = y1 - 0.5 + (i + (k + 0.5) / r) * bin_h,
        x = x1 - 0.5 + (j + (l + 0.5) / r) * bin_w,

    k, l = 0..r-1. Per axis these are P*r evenly spaced points, which is
    `tf.image.crop_and_resize`'s sampling grid at crop size (P*r, Q*r) for the right box
    (`sample_span`); each r x r block of the crop is then averaged. Boxes may be smaller
    than a pixel; an empty box (y1 == y2) samples one point r*r times.

    Border, as detectron2: a sample with y < -1 or y > h (x < -1 or x > w) is 0; any
    other is clamped to [0, h - 1] x [0, w - 1], so a sample up to one pixel beyond the
    outermost pixel centres takes the edge's value. crop_and_resize alone gives 0 to
    every sample outside [0, h - 1]: to the first samples of any box that starts at the
    map's edge with samples closer than a pixel (y1 - 0.5 + step / 2 < 0 when step < 1).
    Here the map is padded with one replicated edge pixel on each side: bilinear
    interpolation there is the clamped value, and crop_and_resize's zero extrapolation
    beyond the padding gives detectron2's zeros.

    Args:
        images: [K, h, w, C] float (or an integer type crop_and_resize takes).
        boxes: float32 [N, 4] (y1, x1, y2, x2) continuous coordinates of `images`.
        box_index: int32 [N] the image of each box.
        crop_size: (P, Q) bins.
        sampling_ratio: r >= 1 samples per bin along each axis.
    Returns:
        float32 [N, P, Q, C].
    """
    pool_h, pool_w = (int(v) for v in crop_size)
    ratio = int(sampling_ratio)
    size = tf.cast(tf.shape(images)[1:3], tf.float32)
    y1, x1, y2, x2 = tf.unstack(tf.cast(boxes, tf.float32), axis=1)
    box_y1, box_y2 = sample_span(y1, y2, pool_h, ratio, size[0])
    box_x1, box_x2 = sample_span(x1, x2, pool_w, ratio, size[1])
    crops = tf.image.crop_and_resize(
        replicate_edges(images), tf.stack([box_y1, box_x1, box_y2, box_x2], axis=1),
        box_index, (pool_h * ratio, pool_w * ratio), method="bilinear")
    if ratio == 1:
        return crops
    channels = crops.shape[-1] if crops.shape[-1] is not None else tf.shape(crops)[-1]
    blocks = tf.reshape(crops, [-1, pool_h, ratio, pool_w, ratio, channels])
    return tf.reduce_mean(blocks, axis=[2, 4])


def _aligned_level_crop(image_shape, sampling_ratio):
    """A `crop` for pyramid_roi_align: aligned ROIAlign of pixel boxes on one level.

    image_shape: float32 [B, 2] (H, W) of each molded image. The boxes it receives are
    continuous pixel coordinates of the molded image; a level's map of h x w pixels has
    stride H / h, so box * (h / H) is the box in the map's continuous coordinates.
    """
    def crop(feature_map, boxes, box_index, pool_shape):
        map_size = tf.cast(tf.shape(feature_map)[1:3], tf.float32)
        scale = map_size / tf.gather(image_shape, box_index)            # [K, 2]
        return aligned_crop_and_resize(feature_map, boxes * tf.tile(scale, [1, 2]),
                                       box_index, pool_shape, sampling_ratio)
    return crop


def pyramid_roi_align(boxes, levels, feature_maps, pool_shape, crop=None):
    """Crop and resize each box from its level's feature map.

    Args:
        boxes: float32 [B, N, 4] normalised boxes (the frame `crop` expects).
        levels: int32 [B, N] levels in 2..5.
        feature_maps: [P2, P3, P4, P5], each [B, h_i, w_i, C].
        pool_shape: (height, width) of the pooled maps.
        crop: None pools with upstream's tf.image.crop_and_resize of the normalised
            boxes; or callable(feature_map, boxes [K, 4], image_index int32 [K],
            pool_shape) -> [K, pool_h, pool_w, C] for one level.
    Returns:
        float32 [B, N, pool_h, pool_w, C] in the order of `boxes`.
    """
    num_boxes = boxes.shape[1] if boxes.shape[1] is not None else tf.shape(boxes)[1]
    flat_boxes = tf.stop_gradient(tf.reshape(boxes, [-1, 4]))
    flat_levels = tf.reshape(levels, [-1])
    positions, pooled = [], []
    for level, feature_map in zip(PYRAMID_LEVELS, feature_maps):
        ix = tf.cast(tf.where(tf.equal(flat_levels, level))[:, 0], tf.int32)
        image_index = tf.stop_gradient(ix // num_boxes)
        positions.append(ix)
        if crop is not None:
            pooled.append(crop(feature_map, tf.gather(flat_boxes, ix), image_index,
                               pool_shape))
            continue
        pooled.append(tf.image.crop_and_resize(
            feature_map, tf.gather(flat_boxes, ix), image_index, pool_shape,
            method="bilinear"))
    # Every flat position belongs to exactly one level: stitch back into box order.
    merged = tf.dynamic_stitch(positions, pooled)
    channels = feature_maps[0].shape[-1]
    if channels is None:
        channels = tf.shape(feature_maps[0])[-1]
    return tf.reshape(merged, [-1, num_boxes, pool_shape[0], pool_shape[1], channels])


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidROIAlign(keras.layers.Layer):
    """ROIAlign over the feature pyramid.

    Inputs `[boxes, image_meta, P2, P3, P4, P5]`:
        boxes: float [B, N, 4] normalised boxes (zero rows allowed: they pool from P2).
        image_meta: float [B, IMAGE_META_SIZE]; its molded image_shape sets the level
            formula's image area.
        P2..P5: float [B, h_i, w_i, C] feature maps.
    Returns:
        float32 [B, N, pool_h, pool_w, C].

    Args:
        pool_shape: (pool_h, pool_w).
        mode: "upstream" (crop_and_resize of the normalised box, one sample per bin) or
            "aligned" (the paper's ROIAlign, half-pixel corrected: see the module).
        sampling_ratio: samples per bin along each axis in "aligned" mode.
    """

    def __init__(self, pool_shape, mode="upstream", sampling_ratio=2, name="roi_align",
                 **kwargs):
        kwargs.setdefault("dtype", "float32")  # boxes and image_meta must not be cast down
        super().__init__(name=name, **kwargs)
        if mode not in ROI_ALIGN_MODES:
            raise ValueError(f"PyramidROIAlign mode (Config.ROI_ALIGN_MODE) must be one of "
                             f"{ROI_ALIGN_MODES}, got {mode!r}")
        if isinstance(sampling_ratio, bool) or int(sampling_ratio) != sampling_ratio \
                or sampling_ratio < 1:
            raise ValueError(f"PyramidROIAlign sampling_ratio (Config.SAMPLING_RATIO) must "
                             f"be a positive integer, got {sampling_ratio!r}")
        self.pool_shape = tuple(int(v) for v in pool_shape)
        self.mode = mode
        self.sampling_ratio = int(sampling_ratio)

    def call(self, inputs):
        boxes, image_meta, *feature_maps = inputs
        if len(feature_maps) != len(PYRAMID_LEVELS):
            raise ValueError(f"PyramidROIAlign expects {len(PYRAMID_LEVELS)} feature maps "
                             f"(P2..P5), got {len(feature_maps)}")
        boxes = tf.cast(boxes, tf.float32)
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][:, :2]
        levels = roi_pyramid_level(boxes, image_shape)
        if self.mode == "upstream":
            return pyramid_roi_align(boxes, levels, feature_maps, self.pool_shape)
        image_shape = tf.cast(image_shape, tf.float32)
        return pyramid_roi_align(pixel_boxes(boxes, image_shape[:, None, :]), levels,
                                 feature_maps, self.pool_shape,
                                 crop=_aligned_level_crop(image_shape, self.sampling_ratio))

    def compute_output_shape(self, input_shape):
        boxes_shape = input_shape[0]
        channels = input_shape[2][-1]
        return (boxes_shape[0], boxes_shape[1]) + self.pool_shape + (channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_shape": list(self.pool_shape), "mode": self.mode,
                       "sampling_ratio": self.sampling_ratio})
        return config

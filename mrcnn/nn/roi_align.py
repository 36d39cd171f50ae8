"""Multi-level ROIAlign: pool each box from the pyramid level that suits its size.

Boxes are normalised (y1, x1, y2, x2) in the frame of the molded image. Pooling is
`tf.image.crop_and_resize` (bilinear), which has no XLA kernel: graphs using this layer
must not be jit-compiled.
"""
import keras
import tensorflow as tf

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


def pyramid_roi_align(boxes, levels, feature_maps, pool_shape):
    """Crop and resize each box from its level's feature map.

    Args:
        boxes: float32 [B, N, 4] normalised boxes.
        levels: int32 [B, N] levels in 2..5.
        feature_maps: [P2, P3, P4, P5], each [B, h_i, w_i, C].
        pool_shape: (height, width) of the pooled maps.
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
    """

    def __init__(self, pool_shape, name="roi_align", **kwargs):
        kwargs.setdefault("dtype", "float32")  # boxes and image_meta must not be cast down
        super().__init__(name=name, **kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)

    def call(self, inputs):
        boxes, image_meta, *feature_maps = inputs
        if len(feature_maps) != len(PYRAMID_LEVELS):
            raise ValueError(f"PyramidROIAlign expects {len(PYRAMID_LEVELS)} feature maps "
                             f"(P2..P5), got {len(feature_maps)}")
        boxes = tf.cast(boxes, tf.float32)
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][:, :2]
        levels = roi_pyramid_level(boxes, image_shape)
        return pyramid_roi_align(boxes, levels, feature_maps, self.pool_shape)

    def compute_output_shape(self, input_shape):
        boxes_shape = input_shape[0]
        channels = input_shape[2][-1]
        return (boxes_shape[0], boxes_shape[1]) + self.pool_shape + (channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_shape": list(self.pool_shape)})
        return config

"""Anchor boxes generated inside the graph from the feature-map shapes.

Anchors are constants of the image shape, never variables: the layer recomputes them
from the shapes of its inputs, so no training step can move them.

Conventions (as the numpy `utils.generate_pyramid_anchors`):
    - one scale per pyramid level, every ratio at every level;
      height = scale / sqrt(ratio), width = scale * sqrt(ratio)  (ratio = width / height);
    - centres at `arange(0, feature_size, anchor_stride) * feature_stride` pixels (the
      corner of a feature cell, not its centre);
    - order: level, then y, then x, then ratio;
    - pixel boxes (y1, x1, y2, x2), normalised by the image's (h, w) with
      norm = (box - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1].
The arithmetic runs in float64 and is cast to float32 once at the end, so the result
equals the numpy anchors normalised and cast to float32.
"""
import keras
import tensorflow as tf


def _spatial_dims(tensor):
    """(height, width) of a [B, H, W, C] tensor: Python ints where static, else scalars."""
    static = tensor.shape
    dynamic = tf.shape(tensor)
    height = static[1] if static[1] is not None else dynamic[1]
    width = static[2] if static[2] is not None else dynamic[2]
    return height, width


def generate_anchors_graph(scale, ratios, feature_shape, feature_stride, anchor_stride):
    """Pixel anchors of one pyramid level.

    Args:
        scale: anchor side in pixels of the square (ratio 1) anchor.
        ratios: sequence of width / height ratios.
        feature_shape: (height, width) of the level's feature map: ints or int32 scalars.
        feature_stride: pixels of the image per feature cell at this level.
        anchor_stride: place anchors at every `anchor_stride`-th feature cell.
    Returns:
        float64 [ny * nx * len(ratios), 4] pixel boxes (y1, x1, y2, x2), ordered by
        y, then x, then ratio.
    """
    ratios = tf.constant(ratios, tf.float64)
    heights = scale / tf.sqrt(ratios)                          # [R]
    widths = scale * tf.sqrt(ratios)                           # [R]
    shifts_y = tf.cast(tf.range(0, feature_shape[0], anchor_stride), tf.float64) * feature_stride
    shifts_x = tf.cast(tf.range(0, feature_shape[1], anchor_stride), tf.float64) * feature_stride
    center_y = shifts_y[:, None, None]                         # [ny, 1, 1]
    center_x = shifts_x[None, :, None]                         # [1, nx, 1]
    half_h = 0.5 * heights[None, None, :]                      # [1, 1, R]
    half_w = 0.5 * widths[None, None, :]
    zeros = tf.zeros_like(center_y + center_x + half_h)        # [ny, nx, R]
    boxes = tf.stack([center_y - half_h + zeros, center_x - half_w + zeros,
                      center_y + half_h + zeros, center_x + half_w + zeros], axis=-1)
    return tf.reshape(boxes, [-1, 4])


def generate_pyramid_anchors_graph(scales, ratios, feature_shapes, feature_strides,
                                   anchor_stride):
    """Pixel anchors of every pyramid level, concatenated level by level.

    Args:
        scales: one anchor scale (pixels) per level.
        ratios: width / height ratios, used at every level.
        feature_shapes: one (height, width) per level (ints or int32 scalars).
        feature_strides: one stride (pixels per feature cell) per level.
        anchor_stride: anchor spacing in feature cells.
    Returns:
        float64 [A, 4] pixel boxes (y1, x1, y2, x2).
    """
    if not len(scales) == len(feature_shapes) == len(feature_strides):
        raise ValueError(f"Need one scale, feature shape and stride per level; got "
                         f"{len(scales)} scales, {len(feature_shapes)} feature shapes and "
                         f"{len(feature_strides)} strides")
    levels = [generate_anchors_graph(scale, ratios, shape, stride, anchor_stride)
              for scale, shape, stride in zip(scales, feature_shapes, feature_strides)]
    return tf.concat(levels, axis=0)


def normalise_anchors_graph(anchors, image_height, image_width):
    """Pixel boxes float64 [A, 4] -> normalised float32 [A, 4] (norm convention)."""
    h = tf.cast(image_height, tf.float64)
    w = tf.cast(image_width, tf.float64)
    scale = tf.stack([h - 1.0, w - 1.0, h - 1.0, w - 1.0])
    shift = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float64)
    return tf.cast((anchors - shift) / scale, tf.float32)


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidAnchors(keras.layers.Layer):
    """Normalised anchors of all pyramid levels for the input image's shape.

    Call on `[input_image, P2, P3, P4, P5, P6]` (image then one feature map per level):
        input_image: [B, H, W, C]; only its height and width are read.
        feature maps: [B, h_i, w_i, C_i]; only their heights and widths are read.
    Returns:
        float32 [A, 4] normalised anchors (y1, x1, y2, x2), shared by every image of the
        batch. A is static when the feature maps' spatial shapes are.
    """

    def __init__(self, scales, ratios, feature_strides, anchor_stride=1, name="anchors",
                 **kwargs):
        kwargs.setdefault("dtype", "float32")  # anchors are float32 under any policy
        super().__init__(name=name, trainable=False, **kwargs)
        self.scales = [float(s) for s in scales]
        self.ratios = [float(r) for r in ratios]
        self.feature_strides = [int(s) for s in feature_strides]
        self.anchor_stride = int(anchor_stride)
        if len(self.scales) != len(self.feature_strides):
            raise ValueError(f"PyramidAnchors needs one scale per feature stride; got "
                             f"{self.scales} and {self.feature_strides}")

    def call(self, inputs):
        image, *feature_maps = inputs
        if len(feature_maps) != len(self.scales):
            raise ValueError(f"PyramidAnchors expects {len(self.scales)} feature maps "
                             f"after the image, got {len(feature_maps)}")
        feature_shapes = [_spatial_dims(f) for f in feature_maps]
        anchors = generate_pyramid_anchors_graph(
            self.scales, self.ratios, feature_shapes, self.feature_strides,
            self.anchor_stride)
        image_height, image_width = _spatial_dims(image)
        return normalise_anchors_graph(anchors, image_height, image_width)

    def compute_output_shape(self, input_shape):
        count = 0
        for shape in input_shape[1:]:
            if shape[1] is None or shape[2] is None:
                return (None, 4)
            ny = -(-shape[1] // self.anchor_stride)
            nx = -(-shape[2] // self.anchor_stride)
            count += ny * nx * len(self.ratios)
        return (count, 4)

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)
        config.update({
            "scales": self.scales,
            "ratios": self.ratios,
            "feature_strides": self.feature_strides,
            "anchor_stride": self.anchor_stride,
        })
        return config

"""Molding, graph and unmolding in TensorFlow: what every exported model runs.

An exported model takes raw images and returns detections in their pixels, so serving
needs neither this package nor Keras. All images of one call share a size; batch size
and image size may change from call to call (TFLite fixes what its converter needs, see
`mrcnn.export.tflite`). Everything `MaskRCNN.detect` does outside the Keras graph happens
in TensorFlow:

- molding (`mold_images`): the resize of `utils.resize_image` (bilinear, half-pixel
  centres, no anti-aliasing, result truncated to integers like the uint8 image upstream
  resizes, a scaled side at least 2 pixels), zero padding, MEAN_PIXEL subtraction and the
  image_meta vector; a "crop" config molds as "pad64", as `detect()` does
  (`inference.inference_resize_mode`). In "square" mode the molded image has the static
  shape IMAGE_MAX_DIM x IMAGE_MAX_DIM, so the anchors are constants of the graph;
- unmolding (`unmold_detections`): boxes shifted out of the window and scaled to the
  original pixels (y2/x2 exclusive), zero-area boxes dropped, and each detection's class
  mask returned at the mask head's resolution ("box" masks, as `detect(mask_format="box")`).

Outputs (D = DETECTION_MAX_INSTANCES, mh x mw = MASK_SHAPE; rows past `num_detections`
are zero):
    boxes int32 [B, D, 4] (y1, x1, y2, x2) pixels of the input image,
    class_ids int32 [B, D], scores float32 [B, D],
    masks float32 [B, D, mh, mw] mask probabilities inside each box (box-local frame:
        row 0 is the box's top edge y1, the last row its bottom edge y2),
    num_detections int32 [B];
    keypoints float32 [B, D, K, 3] (x, y, score) for keypoint models (NUM_KEYPOINTS > 0;
        mrcnn.export.keypoints), pixel-index frame of the input image.
No output grows with the image: full-image masks are made only for real detections, by
the caller, with a paste helper: `mrcnn.utils.paste_masks(masks[:n], boxes[:n],
(H, W))` (numpy, bool [H, W, n], exactly the masks of `detect()`) or `paste_masks` here
(TensorFlow, bool [n, H, W]). The paste resizes each mask to its box (bilinear, OpenCV's
half-pixel mapping), thresholds it at 0.5 and places it in an all-False image.

Differences from `detect()`: TensorFlow's bilinear resize and OpenCV's (used by
`utils.resize_image`, in float32 for uint8 images) round their float32 arithmetic
differently, so after truncation a molded pixel can differ by one grey level where the
interpolated value lies next to an integer; an integer scale or no resize (an image whose
long side already equals IMAGE_MAX_DIM in "square" mode) molds identically.
"""
import numpy as np
import tensorflow as tf

from mrcnn import utils
from mrcnn.export.keypoints import detection_masks_or_zeros, keypoint_outputs
from mrcnn.inference import inference_resize_mode
from mrcnn.utils import MIN_SCALED_SIDE

# Modes molded in TensorFlow; "crop" configs mold as "pad64" (inference_resize_mode).
SUPPORTED_RESIZE_MODES = ("square", "pad64", "none")
SERVING_OUTPUTS = ("boxes", "class_ids", "scores", "masks", "num_detections")


# --- Molding ----------------------------------------------------------------------------

def resize_scale(height, width, config):
    """Scale factor `utils.resize_image` applies to an image of height x width.

    Args:
        height, width: float scalar tensors (float64 as numpy; float32 for TFLite, which
            has no float64 arithmetic), the original image size.
    Returns:
        scalar of their dtype: max(1, IMAGE_MIN_DIM / short side), at least IMAGE_MIN_SCALE, and
        in "square" mode reduced to IMAGE_MAX_DIM / long side when the rounded long side
        would exceed IMAGE_MAX_DIM. 1 in "none" mode. "crop" configs scale as "pad64".
    """
    mode = inference_resize_mode(config)
    dtype = height.dtype
    one = tf.constant(1.0, dtype)
    if mode == "none":
        return one
    scale = one
    if config.IMAGE_MIN_DIM:
        scale = tf.maximum(one, config.IMAGE_MIN_DIM / tf.minimum(height, width))
    if config.IMAGE_MIN_SCALE:
        scale = tf.maximum(scale, tf.constant(config.IMAGE_MIN_SCALE, dtype))
    if mode == "square" and config.IMAGE_MAX_DIM:
        long_side = tf.maximum(height, width)
        too_big = tf.round(long_side * scale) > config.IMAGE_MAX_DIM
        scale = tf.where(too_big, config.IMAGE_MAX_DIM / long_side, scale)
    return scale


def _scaled_side(size, scale):
    """round(size * scale), at least MIN_SCALED_SIDE when scaled (utils._scaled_shape)."""
    scaled = tf.cast(tf.round(tf.cast(size, scale.dtype) * scale), tf.int32)
    return tf.where(tf.equal(scale, 1.0), size, tf.maximum(scaled, MIN_SCALED_SIDE))


def _padding(size, config):
    """(before, after) zero padding of one axis of `size` scaled pixels (int32 tensors)."""
    mode = inference_resize_mode(config)
    if mode == "square":
        total = config.IMAGE_MAX_DIM - size
    elif mode == "pad64":
        total = tf.math.floormod(-size, 64)
    else:
        total = tf.zeros_like(size)
    before = total // 2
    return before, total - before


def _static_molded_size(height, width, config):
    """(h, w) of the molded image where known before the call, else None for both.

    "square" molds every image to IMAGE_MAX_DIM square; other modes are known for a
    static image size (as `utils.resize_image` computes them). A static molded size
    makes the anchors constants of the graph (TFLite needs that: no float64 there).
    """
    mode = inference_resize_mode(config)
    if mode == "square":
        return config.IMAGE_MAX_DIM, config.IMAGE_MAX_DIM
    if height is None or width is None:
        return None, None
    blank = np.zeros((int(height), int(width), 1), np.uint8)
    molded = utils.resize_image(blank, min_dim=config.IMAGE_MIN_DIM,
                                max_dim=config.IMAGE_MAX_DIM,
                                min_scale=config.IMAGE_MIN_SCALE, mode=mode)[0]
    return molded.shape[0], molded.shape[1]


def mold_images(images, config, float64=True):
    """Resize, pad and normalise a batch of same-sized raw images; describe each.

    Args:
        images: uint8 (or any real dtype holding 0..255) [B, H, W, 3].
        config: the model's Config (IMAGE_RESIZE_MODE "square", "pad64", "none", or
            "crop", molded as "pad64").
        float64: compute the scale in float64 as `utils.resize_image` does (False:
            float32, for runtimes without float64 such as TFLite; a scaled side can then
            differ by one pixel where size * scale lies within float32 rounding of .5).
    Returns:
        molded float32 [B, h, w, 3] (image minus MEAN_PIXEL, zero padding before the
        subtraction as upstream), image_meta float32 [B, 12 + NUM_CLASSES],
        window int32 [4] (y1, x1, y2, x2) of the image inside the molded frame.
    """
    if inference_resize_mode(config) not in SUPPORTED_RESIZE_MODES:
        modes = SUPPORTED_RESIZE_MODES + ("crop",)
        raise ValueError(f"export supports IMAGE_RESIZE_MODE {modes}, "
                         f"got {config.IMAGE_RESIZE_MODE!r}")
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    dtype = tf.float64 if float64 else tf.float32
    scale = resize_scale(tf.cast(height, dtype), tf.cast(width, dtype), config)
    new_h = _scaled_side(height, scale)
    new_w = _scaled_side(width, scale)

    pixels = tf.cast(images, tf.float32)
    resized = tf.cond(
        tf.logical_and(tf.equal(new_h, height), tf.equal(new_w, width)),
        lambda: pixels,
        lambda: tf.floor(tf.image.resize(pixels, tf.stack([new_h, new_w]),
                                         method="bilinear", antialias=False)))
    top, bottom = _padding(new_h, config)
    left, right = _padding(new_w, config)
    padded = tf.pad(resized, [[0, 0], [top, bottom], [left, right], [0, 0]])
    molded = padded - tf.constant(config.MEAN_PIXEL, tf.float32)
    molded.set_shape([None, *_static_molded_size(images.shape[1], images.shape[2], config),
                      None])

    window = tf.stack([top, left, top + new_h, left + new_w])
    molded_h, molded_w = new_h + top + bottom, new_w + left + right
    channels = tf.cast(shape[3], tf.float32)
    meta = tf.concat([
        tf.zeros([1]),
        tf.stack([tf.cast(height, tf.float32), tf.cast(width, tf.float32), channels]),
        tf.stack([tf.cast(molded_h, tf.float32), tf.cast(molded_w, tf.float32), channels]),
        tf.cast(window, tf.float32),
        tf.reshape(tf.cast(scale, tf.float32), [1]),
        tf.zeros([config.NUM_CLASSES]),
    ], axis=0)
    image_meta = tf.tile(meta[None], [batch, 1])
    return molded, image_meta, window


# --- Unmolding --------------------------------------------------------------------------

def boxes_to_pixels(boxes, original_hw, molded_hw, window, float64=True):
    """Normalised boxes of the molded image -> int32 pixel boxes of the original image.

    Args:
        boxes: float32 [..., 4] (y1, x1, y2, x2) normalised to the molded image.
        original_hw, molded_hw: int32 [2] heights and widths.
        window: int32 [4] pixels of the image inside the molded frame.
        float64: scale to pixels in float64 as `utils.denorm_boxes` (False: float32,
            a coordinate within float32 rounding of .5 can round the other way).
    Returns:
        int32 [..., 4], y2/x2 exclusive, rounded half to even (as np.around).
    """
    molded_h, molded_w = tf.cast(molded_hw[0], tf.float32), tf.cast(molded_hw[1], tf.float32)
    norm_window = ((tf.cast(window, tf.float32) - tf.constant([0.0, 0.0, 1.0, 1.0]))
                   / tf.stack([molded_h - 1, molded_w - 1, molded_h - 1, molded_w - 1]))
    wy1, wx1, wy2, wx2 = tf.unstack(norm_window)
    shift = tf.stack([wy1, wx1, wy1, wx1])
    size = tf.stack([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    size = tf.where(size > 0, size, tf.ones_like(size))  # a 1-pixel window axis
    dtype = tf.float64 if float64 else tf.float32
    in_window = tf.cast((boxes - shift) / size, dtype)
    height, width = tf.cast(original_hw[0], dtype), tf.cast(original_hw[1], dtype)
    scale = tf.stack([height - 1, width - 1, height - 1, width - 1])
    pixels = in_window * scale + tf.constant([0.0, 0.0, 1.0, 1.0], dtype)
    return tf.cast(tf.round(pixels), tf.int32)


def _interpolation_matrix(start, end, out_size, in_size):
    """Bilinear resampling weights that resize `in_size` samples onto pixels start..end-1.

    Pixel p of an axis of length out_size inside [start, end) reads source coordinate
    (p - start + 0.5) * in_size / (end - start) - 0.5, clamped to the first/last sample
    (OpenCV's INTER_LINEAR mapping); pixels outside [start, end) get all-zero rows.

    Args:
        start, end: int32 [N] box extent on this axis (end exclusive).
        out_size: int32 scalar, the image's length on this axis.
        in_size: python int, the mask's length on this axis.
    Returns:
        float32 [N, out_size, in_size].
    """
    pixel = tf.cast(tf.range(out_size), tf.float32)[None, :]
    start_f = tf.cast(start, tf.float32)[:, None]
    length = tf.cast(tf.maximum(end - start, 1), tf.float32)[:, None]
    source = (pixel - start_f + 0.5) * (in_size / length) - 0.5
    lower = tf.floor(source)
    fraction = source - lower
    lower_index = tf.clip_by_value(tf.cast(lower, tf.int32), 0, in_size - 1)
    upper_index = tf.clip_by_value(tf.cast(lower, tf.int32) + 1, 0, in_size - 1)
    weights = ((1.0 - fraction)[..., None] * tf.one_hot(lower_index, in_size)
               + fraction[..., None] * tf.one_hot(upper_index, in_size))
    inside = tf.logical_and(pixel >= start_f, pixel < tf.cast(end, tf.float32)[:, None])
    return weights * tf.cast(inside, tf.float32)[..., None]


def paste_masks(masks, boxes, height, width, threshold=0.5):
    """Resize each small mask to its box and paste it into an image-sized boolean mask.

    Bilinear resizing is separable, so the resized mask of box n is R_y[n] @ m[n] @
    R_x[n]^T with the interpolation matrices of `_interpolation_matrix`; this handles all
    boxes of all images at once. Memory: float32 [N, height, width] for N masks.

    Args:
        masks: float32 [N, mh, mw] probabilities (static mh, mw).
        boxes: int32 [N, 4] pixel boxes (y1, x1, y2, x2), y2/x2 exclusive.
        height, width: int32 scalars, the image size.
        threshold: float > 0.
    Returns:
        bool [N, height, width]: value >= threshold inside the box, False elsewhere.
    """
    mask_h, mask_w = int(masks.shape[1]), int(masks.shape[2])
    rows = _interpolation_matrix(boxes[:, 0], boxes[:, 2], height, mask_h)
    cols = _interpolation_matrix(boxes[:, 1], boxes[:, 3], width, mask_w)
    # Rows and columns outside the box are zero, so is the resized mask there.
    resized = tf.matmul(tf.matmul(rows, masks), cols, transpose_b=True)
    return resized >= threshold


def unmold_detections(detections, mrcnn_mask, original_hw, molded_hw, window,
                      float64=True):
    """The graph's batched outputs -> detections in pixels of the original images.

    Args:
        detections: float32 [B, D, 6] (y1, x1, y2, x2, class_id, score), normalised,
            zero rows after the last detection.
        mrcnn_mask: float32 [B, D, mh, mw] masks of each detection's class (the graph's
            detection_masks), or [B, D, mh, mw, NUM_CLASSES] (its mrcnn_mask; static rank).
        original_hw, molded_hw: int32 [2] image sizes before and after molding.
        window: int32 [4] where the image lies in the molded frame.
        float64: see `boxes_to_pixels`.
    Returns:
        dict of boxes int32 [B, D, 4], class_ids int32 [B, D], scores float32 [B, D],
        masks float32 [B, D, mh, mw] (each detection's class mask, box-local),
        num_detections int32 [B]. Valid detections come first in the graph's order;
        zero-area boxes are dropped as in `inference.unmold_detections`; the rows after
        them are zero. Full-image masks: `paste_masks` (see the module doc).
    """
    class_ids = tf.cast(detections[..., 4], tf.int32)
    # Rows before the first zero class id (cumsum: a TFLite builtin, cumprod is not).
    before_padding = tf.equal(tf.cumsum(tf.cast(class_ids <= 0, tf.int32), axis=1), 0)
    boxes = boxes_to_pixels(detections[..., :4], original_hw, molded_hw, window, float64)
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    keep = tf.logical_and(before_padding, area > 0)

    # Stable sort: kept detections first, in their order.
    order = tf.argsort(tf.cast(tf.logical_not(keep), tf.int32), axis=1, stable=True)
    keep = tf.gather(keep, order, batch_dims=1)
    keep_f = tf.cast(keep, tf.float32)
    keep_i = tf.cast(keep, tf.int32)
    boxes = tf.gather(boxes, order, batch_dims=1) * keep_i[..., None]
    class_ids = tf.gather(class_ids, order, batch_dims=1) * keep_i
    scores = tf.gather(detections[..., 5], order, batch_dims=1) * keep_f
    if mrcnn_mask.shape.rank == 5:
        mrcnn_mask = tf.gather(mrcnn_mask, tf.cast(detections[..., 4], tf.int32), axis=4,
                               batch_dims=2)
    masks = tf.gather(mrcnn_mask, order, batch_dims=1) * keep_f[:, :, None, None]
    return {"boxes": boxes, "class_ids": class_ids, "scores": scores, "masks": masks,
            "num_detections": tf.reduce_sum(keep_i, axis=1)}


# --- The exported module ----------------------------------------------------------------

def check_inference_model(model, caller):
    """Raise ValueError unless `model` is a MaskRCNN built with mode="inference"."""
    if getattr(model, "mode", None) != "inference":
        raise ValueError(f"{caller} needs a MaskRCNN built with mode='inference', "
                         f"got {getattr(model, 'mode', type(model).__name__)!r}")


def _tf_variable(variable):
    """The tf.Variable behind a Keras variable. Tracking these (not the Keras wrappers)
    lets the TFLite converter freeze their values; the SavedModel takes either."""
    value = getattr(variable, "value", None)
    return value if isinstance(value, tf.Variable) else variable


class MaskRCNNServing(tf.Module):
    """A tf.Module that runs raw images through molding, the graph and unmolding.

    Only the model's variables are tracked, so the SavedModel holds plain TensorFlow
    functions and variables and loads without Keras or this package.
    """

    def __init__(self, keras_model, config, image_shape=None, batch_size=None,
                 float64=True, name="mask_rcnn_serving"):
        """Args:
            keras_model, config: the inference graph and its Config.
            image_shape: None (any size per call) or (H, W), fixed in the signature.
            batch_size: None (any) or an int fixed in the signature.
            float64: molding and box arithmetic in float64 as numpy (see mold_images).
        """
        super().__init__(name=name)
        self.model_variables = [_tf_variable(v) for v in keras_model.variables]
        height, width = image_shape if image_shape is not None else (None, None)
        spec = tf.TensorSpec([batch_size, height, width, config.IMAGE_CHANNEL_COUNT],
                             tf.uint8, name="images")

        def serve(images):
            return run_serving(keras_model, config, images, float64=float64)

        self.serve = tf.function(serve, input_signature=[spec])


def run_serving(keras_model, config, images, float64=True):
    """Raw uint8 images [B, H, W, C] -> dict of SERVING_OUTPUTS (see the module doc)."""
    molded, image_meta, window = mold_images(images, config, float64)
    outputs = keras_model({"input_image": molded, "input_image_meta": image_meta},
                          training=False)
    original_hw = tf.shape(images)[1:3]
    molded_hw = tf.shape(molded)[1:3]
    results = unmold_detections(outputs["detections"], detection_masks_or_zeros(outputs),
                                original_hw, molded_hw, window, float64)
    # Keypoint models add "keypoints" float32 [B, D, K, 3] (mrcnn.export.keypoints).
    results.update(keypoint_outputs(outputs, outputs["detections"], original_hw, molded_hw,
                                    window, float64))
    return results

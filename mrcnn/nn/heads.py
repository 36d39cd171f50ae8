"""Second-stage heads: per-ROI classifier, box regressor and mask predictor.

Upstream wrapped every head layer in TimeDistributed to apply it to each ROI. Here the
ROI axis is folded into the batch axis instead ([B, N, ...] -> [B * N, ...], FoldRois),
plain Conv2D / BatchNorm layers run on the folded batch, and UnfoldRois restores
[B, N, ...]. The result is the same (TimeDistributed folds the same way internally, so
BatchNorm's batch statistics also cover all B * N ROIs), the layers carry upstream's
names and weight shapes, and no wrapper sits between a layer and its weights. Dense
layers act on the last axis of [B, N, C] directly.

ROIs are normalised (y1, x1, y2, x2) boxes [B, N, 4], zero rows for padding.
"""
import keras
import tensorflow as tf

from mrcnn.nn.batch_norm import BatchNorm
from mrcnn.nn.roi_align import PyramidROIAlign

MASK_HEAD_CHANNELS = 256


@keras.saving.register_keras_serializable(package="mrcnn")
class FoldRois(keras.layers.Layer):
    """Merge the ROI axis into the batch axis.

    Input: float [B, N, d1, ..., dk]. Output: float [B * N, d1, ..., dk], ROI n of image
    b at row b * N + n.
    """

    def call(self, inputs):
        shape = tf.shape(inputs)
        feature_dims = [d if d is not None else shape[i + 2]
                        for i, d in enumerate(inputs.shape[2:])]
        return tf.reshape(inputs, [-1] + feature_dims)

    def compute_output_shape(self, input_shape):
        batch, rois = input_shape[0], input_shape[1]
        folded = batch * rois if batch is not None and rois is not None else None
        return (folded,) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="mrcnn")
class UnfoldRois(keras.layers.Layer):
    """Split the batch axis of FoldRois' output back into [B, N].

    Inputs: [x float [B * N, d1, ..., dk], rois [B, N, ...]] where `rois` only lends its
    leading two dimensions (static N is kept when known).
    Output: float [B, N, d1, ..., dk].
    """

    def call(self, inputs):
        x, rois = inputs
        rois_shape, x_shape = tf.shape(rois), tf.shape(x)
        num_rois = rois.shape[1] if rois.shape[1] is not None else rois_shape[1]
        feature_dims = [d if d is not None else x_shape[i + 1]
                        for i, d in enumerate(x.shape[1:])]
        return tf.reshape(x, [-1, num_rois] + feature_dims)

    def compute_output_shape(self, input_shape):
        x_shape, rois_shape = input_shape
        return (rois_shape[0], rois_shape[1]) + tuple(x_shape[1:])


@keras.saving.register_keras_serializable(package="mrcnn")
class PoolSqueeze(UnfoldRois):
    """Drop the 1x1 spatial axes of the classifier's features and unfold the ROIs.

    Inputs: [x float [B * N, 1, 1, C], rois [B, N, ...]]. Output: float [B, N, C].
    """

    def call(self, inputs):
        x, rois = inputs
        return super().call([tf.squeeze(x, axis=[1, 2]), rois])

    def compute_output_shape(self, input_shape):
        x_shape, rois_shape = input_shape
        return (rois_shape[0], rois_shape[1], x_shape[-1])


def _conv_bn_relu(x, filters, kernel_size, conv_name, bn_name, train_bn, padding):
    """Conv2D -> BatchNorm(train_bn) -> ReLU on folded ROIs [B * N, h, w, C]."""
    x = keras.layers.Conv2D(filters, kernel_size, padding=padding, name=conv_name)(x)
    x = BatchNorm(train_bn=train_bn, name=bn_name)(x)
    return keras.layers.Activation("relu")(x)


def classifier_head(pooled, rois, num_classes, train_bn=True, fc_layers_size=1024):
    """Class logits, probabilities and per-class box deltas from pooled ROI features.

    Args:
        pooled: float [B, N, pool, pool, C] ROIAlign output.
        rois: [B, N, 4] boxes the features were pooled from (lends B and N).
        num_classes: NUM_CLASSES, background included.
        train_bn: TRAIN_BN mode of `mrcnn_class_bn1`, `mrcnn_class_bn2`.
        fc_layers_size: width of the two fully connected layers (as convs).
    Returns:
        mrcnn_class_logits float [B, N, NC], mrcnn_probs float [B, N, NC] (softmax),
        mrcnn_bbox float [B, N, NC, 4] deltas (dy, dx, log dh, log dw) divided by
        BBOX_STD_DEV.
    """
    pool_size = tuple(pooled.shape[2:4])
    x = FoldRois(name="mrcnn_class_fold")(pooled)
    # A pool x pool 'valid' conv is a fully connected layer on each ROI's features.
    x = _conv_bn_relu(x, fc_layers_size, pool_size, "mrcnn_class_conv1", "mrcnn_class_bn1",
                      train_bn, padding="valid")
    x = _conv_bn_relu(x, fc_layers_size, (1, 1), "mrcnn_class_conv2", "mrcnn_class_bn2",
                      train_bn, padding="valid")
    shared = PoolSqueeze(name="pool_squeeze")([x, rois])
    mrcnn_class_logits = keras.layers.Dense(num_classes, name="mrcnn_class_logits")(shared)
    mrcnn_probs = keras.layers.Activation("softmax", name="mrcnn_class",
                                          dtype="float32")(mrcnn_class_logits)
    x = keras.layers.Dense(num_classes * 4, activation="linear", name="mrcnn_bbox_fc")(shared)
    mrcnn_bbox = keras.layers.Reshape((-1, num_classes, 4), name="mrcnn_bbox")(x)
    return mrcnn_class_logits, mrcnn_probs, mrcnn_bbox


def mask_head(pooled, rois, num_classes, train_bn=True, channels=MASK_HEAD_CHANNELS):
    """Per-class mask probabilities from pooled ROI features.

    Args:
        pooled: float [B, N, pool, pool, C] ROIAlign output.
        rois: [B, N, 4] boxes the features were pooled from (lends B and N).
        num_classes: NUM_CLASSES, background included.
        train_bn: TRAIN_BN mode of `mrcnn_mask_bn1..4`.
        channels: width of the mask convs and deconv (Config.MASK_HEAD_CONV_SIZE;
            upstream 256).
    Returns:
        float [B, N, 2 * pool, 2 * pool, NC], sigmoid probabilities in the ROI's frame.
    """
    x = FoldRois(name="mrcnn_mask_fold")(pooled)
    for i in range(1, 5):
        x = _conv_bn_relu(x, channels, (3, 3), f"mrcnn_mask_conv{i}",
                          f"mrcnn_mask_bn{i}", train_bn, padding="same")
    x = keras.layers.Conv2DTranspose(channels, (2, 2), strides=2, activation="relu",
                                     name="mrcnn_mask_deconv")(x)
    # float32 under a mixed policy: a 16-bit sigmoid rounds to exactly 1 from a logit of
    # about 6 (bfloat16) or 8 (float16), where the mask loss's gradient vanishes.
    x = keras.layers.Conv2D(num_classes, (1, 1), strides=1, activation="sigmoid",
                            name="mrcnn_mask", dtype="float32")(x)
    return UnfoldRois(name="mrcnn_mask_unfold", dtype="float32")([x, rois])


def fpn_classifier_graph(rois, feature_maps, image_meta, pool_size, num_classes,
                         train_bn=True, fc_layers_size=1024, roi_align_mode="upstream",
                         sampling_ratio=2):
    """ROIAlign (`roi_align_classifier`) then the classifier and box head.

    Args:
        rois: float [B, N, 4] normalised boxes.
        feature_maps: [P2, P3, P4, P5], float [B, h_k, w_k, C].
        image_meta: float [B, IMAGE_META_SIZE].
        pool_size: POOL_SIZE (7).
        num_classes, train_bn, fc_layers_size: as in classifier_head.
        roi_align_mode, sampling_ratio: ROI_ALIGN_MODE, SAMPLING_RATIO (PyramidROIAlign).
    Returns:
        (mrcnn_class_logits [B, N, NC], mrcnn_probs [B, N, NC], mrcnn_bbox [B, N, NC, 4]).
    """
    pooled = PyramidROIAlign([pool_size, pool_size], mode=roi_align_mode,
                             sampling_ratio=sampling_ratio, name="roi_align_classifier")(
        [rois, image_meta] + list(feature_maps))
    return classifier_head(pooled, rois, num_classes, train_bn=train_bn,
                           fc_layers_size=fc_layers_size)


def build_fpn_mask_graph(rois, feature_maps, image_meta, pool_size, num_classes,
                         train_bn=True, channels=MASK_HEAD_CHANNELS, roi_align_mode="upstream",
                         sampling_ratio=2):
    """ROIAlign (`roi_align_mask`) then the mask head.

    Args:
        rois: float [B, N, 4] normalised boxes.
        feature_maps: [P2, P3, P4, P5], float [B, h_k, w_k, C].
        image_meta: float [B, IMAGE_META_SIZE].
        pool_size: MASK_POOL_SIZE (14).
        num_classes, train_bn, channels: as in mask_head.
        roi_align_mode, sampling_ratio: ROI_ALIGN_MODE, SAMPLING_RATIO (PyramidROIAlign).
    Returns:
        float [B, N, 2 * pool_size, 2 * pool_size, NC] sigmoid mask probabilities.
    """
    pooled = PyramidROIAlign([pool_size, pool_size], mode=roi_align_mode,
                             sampling_ratio=sampling_ratio, name="roi_align_mask")(
        [rois, image_meta] + list(feature_maps))
    return mask_head(pooled, rois, num_classes, train_bn=train_bn, channels=channels)

"""The keypoint head (Keypoint R-CNN, the paper's section 5): K heatmaps per ROI.

Each ROI is pooled from the feature pyramid with the same PyramidROIAlign as the other
heads (same level assignment, ROI_ALIGN_MODE, SAMPLING_RATIO) to KEYPOINT_POOL_SIZE^2
cells, then

    KEYPOINT_HEAD_CONV_COUNT x (3x3 conv, KEYPOINT_HEAD_CONV_SIZE channels, ReLU)
    -> 4x4 transposed conv, stride 2, K channels     (2 x pool)
    -> 2x bilinear upsampling                        (4 x pool = KEYPOINT_MASK_SHAPE)

giving one heatmap of logits per keypoint: a softmax over its mh * mw cells is the
keypoint's position in the ROI. The paper's head has no normalisation layer, so it runs
the same on any subset of ROIs. Heatmap cell (i, j) covers the j-th of mw equal columns
and the i-th of mh equal rows of the ROI's pooling grid (keypoint_targets.heatmap_boxes):
the transposed conv ('same' padding, i.e. one pixel on each side) and the half-pixel
bilinear upsampling keep cell centres where the pooled bins put them.

Every layer with weights is named `mrcnn_kp_*`, so checkpoints without a keypoint head
load by name into a keypoint model with these layers reported missing, and upstream's
"heads" layer selection (`mrcnn_.*`) trains them.
"""
import keras

from mrcnn.nn.heads import FoldRois, UnfoldRois
from mrcnn.nn.roi_align import PyramidROIAlign

KEYPOINT_PREFIX = "mrcnn_kp_"


def _msra_fill():
    """He-normal initialisation over the fan-out, as detectron2's keypoint head."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out",
                                              distribution="untruncated_normal")


def keypoint_head(pooled, rois, num_keypoints, conv_count=8, channels=512):
    """Heatmap logits from pooled ROI features.

    Args:
        pooled: float [B, N, P, P, C] ROIAlign output.
        rois: [B, N, 4] the boxes the features were pooled from (lends B and N).
        num_keypoints: K (NUM_KEYPOINTS).
        conv_count, channels: KEYPOINT_HEAD_CONV_COUNT, KEYPOINT_HEAD_CONV_SIZE.
    Returns:
        float32 [B, N, 4P, 4P, K] logits (KEYPOINT_MASK_SHAPE = [4P, 4P]).
    """
    x = FoldRois(name=f"{KEYPOINT_PREFIX}fold")(pooled)
    for i in range(1, conv_count + 1):
        x = keras.layers.Conv2D(channels, (3, 3), padding="same", activation="relu",
                                kernel_initializer=_msra_fill(),
                                name=f"{KEYPOINT_PREFIX}conv{i}")(x)
    x = keras.layers.Conv2DTranspose(num_keypoints, (4, 4), strides=2, padding="same",
                                     kernel_initializer=_msra_fill(),
                                     name=f"{KEYPOINT_PREFIX}deconv")(x)
    # float32 under a mixed policy: the loss takes a softmax over thousands of cells.
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", dtype="float32",
                                  name=f"{KEYPOINT_PREFIX}upsample")(x)
    return UnfoldRois(name=f"{KEYPOINT_PREFIX}unfold", dtype="float32")([x, rois])


def build_keypoint_graph(rois, feature_maps, image_meta, config):
    """ROIAlign (`mrcnn_kp_roi_align`) then the keypoint head.

    Args:
        rois: float [B, N, 4] normalised boxes of the molded image.
        feature_maps: [P2, P3, P4, P5], float [B, h_k, w_k, C].
        image_meta: float [B, IMAGE_META_SIZE].
        config: a Config with NUM_KEYPOINTS > 0.
    Returns:
        float32 [B, N, mh, mw, K] heatmap logits, (mh, mw) = KEYPOINT_MASK_SHAPE.
    """
    pool = int(config.KEYPOINT_POOL_SIZE)
    pooled = PyramidROIAlign([pool, pool], mode=config.ROI_ALIGN_MODE,
                             sampling_ratio=config.SAMPLING_RATIO,
                             name=f"{KEYPOINT_PREFIX}roi_align")(
        [rois, image_meta] + list(feature_maps))
    return keypoint_head(pooled, rois, int(config.NUM_KEYPOINTS),
                         conv_count=int(config.KEYPOINT_HEAD_CONV_COUNT),
                         channels=int(config.KEYPOINT_HEAD_CONV_SIZE))


def uses_keypoints(config):
    """Whether the config builds a keypoint head (NUM_KEYPOINTS > 0)."""
    return int(getattr(config, "NUM_KEYPOINTS", 0) or 0) > 0


def uses_masks(config):
    """Whether the config builds the mask head (all but keypoint-only models)."""
    return not uses_keypoints(config) or bool(getattr(config, "KEYPOINT_WITH_MASKS", True))


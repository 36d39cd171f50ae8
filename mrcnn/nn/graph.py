"""Assemble the stages of Mask R-CNN into Keras functional graphs.

Two graphs share every weight-carrying layer name, so weights move between them by name:

- training: image -> backbone -> FPN -> RPN -> proposals -> sampled ROIs with targets
  -> classifier/box head and mask head. Its outputs feed the five losses.
- inference: image -> backbone -> FPN -> RPN -> proposals -> classifier/box head
  -> DetectionLayer -> mask head on the detections.

With NUM_KEYPOINTS > 0 both graphs gain the keypoint head (nn/keypoint_head.py) beside
the mask head, on the positive ROIs in training and on the detections at inference;
KEYPOINT_WITH_MASKS = False leaves the mask head out (a keypoint-only model).

Boxes inside the graph are normalised to the molded image (see nn/box_ops.py).
"""
import keras

from mrcnn.nn.anchors import PyramidAnchors
from mrcnn.nn.backbone import resnet_graph
from mrcnn.nn.class_masks import ClassMasks
from mrcnn.nn.detection import DetectionLayer
from mrcnn.nn.fpn import build_fpn
from mrcnn.nn.glue_layers import AppendBoxes, DetectionBoxes, LeadingRows, NormalizeBoxes
from mrcnn.nn.heads import build_fpn_mask_graph, fpn_classifier_graph
from mrcnn.nn.keypoint_decoding import KeypointDecoder
from mrcnn.nn.keypoint_head import build_keypoint_graph, uses_keypoints, uses_masks
from mrcnn.nn.keypoint_targets import KeypointTargetLayer
from mrcnn.nn.proposals import ProposalLayer
from mrcnn.nn.rpn import build_rpn_model, rpn_on_pyramid
from mrcnn.nn.targets import DetectionTargetLayer, InstanceBoxes


def image_inputs(config, mode):
    """The image and image_meta inputs.

    Training images have the fixed IMAGE_SHAPE; inference accepts any size divisible by 64
    (molded images of one batch share a size).
    """
    channels = config.IMAGE_CHANNEL_COUNT
    if mode == "training":
        height, width = int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])
    else:
        height = width = None
    image = keras.Input(shape=(height, width, channels), name="input_image", dtype="float32")
    meta = keras.Input(shape=(config.IMAGE_META_SIZE,), name="input_image_meta",
                       dtype="float32")
    return image, meta


def training_inputs(config):
    """Ground-truth inputs of the training graph, keyed by name."""
    if config.USE_MINI_MASK:
        mask_height, mask_width = config.MINI_MASK_SHAPE
    else:
        mask_height, mask_width = int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])
    inputs = {
        "input_rpn_match": keras.Input(shape=(None, 1), name="input_rpn_match", dtype="int32"),
        "input_rpn_bbox": keras.Input(shape=(None, 4), name="input_rpn_bbox", dtype="float32"),
        "input_gt_class_ids": keras.Input(shape=(None,), name="input_gt_class_ids",
                                          dtype="int32"),
        "input_gt_boxes": keras.Input(shape=(None, 4), name="input_gt_boxes", dtype="float32"),
        "input_gt_masks": keras.Input(shape=(mask_height, mask_width, None),
                                      name="input_gt_masks", dtype="bool"),
    }
    if not config.USE_RPN_ROIS:
        inputs["input_rois"] = keras.Input(shape=(config.POST_NMS_ROIS_TRAINING, 4),
                                           name="input_rois", dtype="float32")
    if uses_keypoints(config):
        # (x, y, v) per instance and keypoint, the molded image's pixel-index frame.
        inputs["input_gt_keypoints"] = keras.Input(
            shape=(None, int(config.NUM_KEYPOINTS), 3), name="input_gt_keypoints",
            dtype="float32")
    return inputs


def feature_pyramid(image, config):
    """Backbone and FPN: returns (rpn_feature_maps [P2..P6], mrcnn_feature_maps [P2..P5])."""
    if callable(config.BACKBONE):
        _, c2, c3, c4, c5 = config.BACKBONE(image, stage5=True, train_bn=config.TRAIN_BN)
    else:
        _, c2, c3, c4, c5 = resnet_graph(image, config.BACKBONE, stage5=True,
                                         train_bn=config.TRAIN_BN)
    p2, p3, p4, p5, p6 = build_fpn(c2, c3, c4, c5, config.TOP_DOWN_PYRAMID_SIZE)
    return [p2, p3, p4, p5, p6], [p2, p3, p4, p5]


def region_proposals(image, rpn_feature_maps, config, proposal_count):
    """RPN over the pyramid and the proposal layer.

    Returns:
        dict with anchors [A, 4], rpn_class_logits [B, A, 2], rpn_class [B, A, 2],
        rpn_bbox [B, A, 4] and rpn_rois [B, proposal_count, 4] (normalised).
    """
    anchors = PyramidAnchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                             config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE,
                             name="anchors")([image] + rpn_feature_maps)
    rpn_model = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS),
                                config.TOP_DOWN_PYRAMID_SIZE, config.RPN_CONV_SIZE)
    rpn_class_logits, rpn_class, rpn_bbox = rpn_on_pyramid(rpn_model, rpn_feature_maps)
    rpn_rois = ProposalLayer(proposal_count=proposal_count,
                             nms_threshold=config.RPN_NMS_THRESHOLD,
                             pre_nms_limit=config.PRE_NMS_LIMIT,
                             rpn_bbox_std_dev=list(config.RPN_BBOX_STD_DEV),
                             name="ROI")([rpn_class, rpn_bbox, anchors])
    return {"anchors": anchors, "rpn_class_logits": rpn_class_logits,
            "rpn_class": rpn_class, "rpn_bbox": rpn_bbox, "rpn_rois": rpn_rois}


def build_training_graph(config):
    """The training graph.

    Returns:
        (inputs: dict name -> keras.Input, outputs: dict name -> tensor) with outputs
        rpn_class_logits [B, A, 2], rpn_bbox [B, A, 4], rpn_rois [B, R, 4],
        rois [B, T, 4], target_class_ids [B, T], target_bbox [B, T, 4],
        target_mask [B, M, mh, mw], mask_class_ids [B, M], mrcnn_class_logits [B, T, NC],
        mrcnn_bbox [B, T, NC, 4], mrcnn_mask [B, M, mh, mw, NC], where M = T, or the
        rows that can hold positives with MASK_HEAD_POSITIVES_ONLY. Keypoint models
        (NUM_KEYPOINTS = K > 0) add target_keypoints int32 [B, P, K],
        target_keypoint_weights float32 [B, P, K] and mrcnn_keypoint_logits
        [B, P, kh, kw, K] on the P = int(T * ROI_POSITIVE_RATIO) rows that can hold
        positives; keypoint-only models (KEYPOINT_WITH_MASKS False) have no
        target_mask, mask_class_ids or mrcnn_mask.
    """
    image, meta = image_inputs(config, "training")
    inputs = {"input_image": image, "input_image_meta": meta}
    inputs.update(training_inputs(config))

    rpn_feature_maps, mrcnn_feature_maps = feature_pyramid(image, config)
    rpn = region_proposals(image, rpn_feature_maps, config, config.POST_NMS_ROIS_TRAINING)

    gt_boxes = NormalizeBoxes(name="norm_gt_boxes")([inputs["input_gt_boxes"], image])
    if config.USE_RPN_ROIS:
        candidate_rois = rpn["rpn_rois"]
    else:
        candidate_rois = NormalizeBoxes(name="norm_input_rois")([inputs["input_rois"], image])
    if config.ROI_INCLUDE_GT_BOXES:
        # Instances only: a crowd box among the proposals could become a positive ROI.
        instance_boxes = InstanceBoxes(name="gt_instance_boxes")(
            [inputs["input_gt_class_ids"], gt_boxes])
        candidate_rois = AppendBoxes(name="proposals_with_gt")([candidate_rois, instance_boxes])
    rois, target_class_ids, target_bbox, target_mask, *roi_gt_index = DetectionTargetLayer(
        config, fill_negatives=config.ROI_FILL_NEGATIVES, name="proposal_targets",
        return_gt_index=uses_keypoints(config))(
        [candidate_rois, inputs["input_gt_class_ids"], gt_boxes, inputs["input_gt_masks"]])
    mask_rois, mask_class_ids = rois, target_class_ids
    if config.MASK_HEAD_POSITIVES_ONLY:
        rows = max(1, int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO))
        mask_rois = LeadingRows(rows, name="mask_rois")(rois)
        mask_class_ids = LeadingRows(rows, name="mask_class_ids")(target_class_ids)
        target_mask = LeadingRows(rows, name="mask_targets")(target_mask)

    mrcnn_class_logits, _, mrcnn_bbox = fpn_classifier_graph(
        rois, mrcnn_feature_maps, meta, config.POOL_SIZE, config.NUM_CLASSES,
        train_bn=config.TRAIN_BN, fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE,
        roi_align_mode=config.ROI_ALIGN_MODE, sampling_ratio=config.SAMPLING_RATIO)
    outputs = {
        "rpn_class_logits": rpn["rpn_class_logits"],
        "rpn_bbox": rpn["rpn_bbox"],
        "rpn_rois": rpn["rpn_rois"],
        "rois": rois,
        "target_class_ids": target_class_ids,
        "target_bbox": target_bbox,
        "target_mask": target_mask,
        "mask_class_ids": mask_class_ids,
        "mrcnn_class_logits": mrcnn_class_logits,
        "mrcnn_bbox": mrcnn_bbox,
    }
    if uses_masks(config):
        outputs["mrcnn_mask"] = build_fpn_mask_graph(
            mask_rois, mrcnn_feature_maps, meta, config.MASK_POOL_SIZE, config.NUM_CLASSES,
            train_bn=config.TRAIN_BN, channels=config.MASK_HEAD_CONV_SIZE,
            roi_align_mode=config.ROI_ALIGN_MODE, sampling_ratio=config.SAMPLING_RATIO)
    else:
        for name in ("target_mask", "mask_class_ids"):
            del outputs[name]
    if uses_keypoints(config):
        outputs.update(keypoint_training_outputs(rois, roi_gt_index[0], inputs, meta,
                                                 mrcnn_feature_maps, config))
    return inputs, outputs


def keypoint_training_outputs(rois, roi_gt_index, inputs, meta, feature_maps, config):
    """Keypoint targets and heatmap logits of the rows that can hold positive ROIs.

    The ROI sampler puts positives first, at most int(T * ROI_POSITIVE_RATIO) of them,
    and the keypoint loss reads positives alone (the head has no BatchNorm), so the head
    runs on those leading rows only.
    Returns:
        dict: target_keypoints int32 [B, P, K], target_keypoint_weights float32
        [B, P, K], mrcnn_keypoint_logits float32 [B, P, kh, kw, K].
    """
    rows = max(1, int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO))
    keypoint_rois = LeadingRows(rows, name="keypoint_rois")(rois)
    gt_index = LeadingRows(rows, name="keypoint_gt_index")(roi_gt_index)
    target_keypoints, target_weights = KeypointTargetLayer(
        config.KEYPOINT_MASK_SHAPE, roi_align_mode=config.ROI_ALIGN_MODE,
        pool_size=config.KEYPOINT_POOL_SIZE, name="keypoint_targets")(
        [keypoint_rois, gt_index, inputs["input_gt_keypoints"], meta])
    return {"target_keypoints": target_keypoints,
            "target_keypoint_weights": target_weights,
            "mrcnn_keypoint_logits": build_keypoint_graph(keypoint_rois, feature_maps, meta,
                                                          config)}


def build_inference_graph(config):
    """The inference graph.

    Returns:
        (inputs, outputs) with outputs detections [B, D, 6] (y1, x1, y2, x2, class_id,
        score; normalised), mrcnn_class [B, R, NC], mrcnn_bbox [B, R, NC, 4],
        mrcnn_mask [B, D, mh, mw, NC], rpn_rois [B, R, 4], rpn_class [B, A, 2],
        rpn_bbox [B, A, 4] (upstream's seven), and detection_masks [B, D, mh, mw], each
        detection's mask of its own class (zeros for padding rows), with
        D = DETECTION_MAX_INSTANCES and R = POST_NMS_ROIS_INFERENCE. The graph takes any
        batch size B. Keypoint models add mrcnn_keypoint_logits [B, D, kh, kw, K] and
        detection_keypoints float32 [B, D, K, 3] (x, y, score; the molded image's
        pixel-index frame, see nn/keypoint_decoding.py); keypoint-only models have no
        mrcnn_mask or detection_masks.
    """
    image, meta = image_inputs(config, "inference")
    inputs = {"input_image": image, "input_image_meta": meta}
    rpn_feature_maps, mrcnn_feature_maps = feature_pyramid(image, config)
    rpn = region_proposals(image, rpn_feature_maps, config, config.POST_NMS_ROIS_INFERENCE)

    _, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
        rpn["rpn_rois"], mrcnn_feature_maps, meta, config.POOL_SIZE, config.NUM_CLASSES,
        train_bn=config.TRAIN_BN, fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE,
        roi_align_mode=config.ROI_ALIGN_MODE, sampling_ratio=config.SAMPLING_RATIO)
    detections = DetectionLayer(config, name="mrcnn_detection")(
        [rpn["rpn_rois"], mrcnn_class, mrcnn_bbox, meta])
    detection_boxes = DetectionBoxes(name="detection_boxes")(detections)
    outputs = {"detections": detections, "mrcnn_class": mrcnn_class, "mrcnn_bbox": mrcnn_bbox}
    if uses_masks(config):
        outputs["mrcnn_mask"] = build_fpn_mask_graph(
            detection_boxes, mrcnn_feature_maps, meta, config.MASK_POOL_SIZE,
            config.NUM_CLASSES, train_bn=config.TRAIN_BN,
            channels=config.MASK_HEAD_CONV_SIZE, roi_align_mode=config.ROI_ALIGN_MODE,
            sampling_ratio=config.SAMPLING_RATIO)
    outputs.update({"rpn_rois": rpn["rpn_rois"], "rpn_class": rpn["rpn_class"],
                    "rpn_bbox": rpn["rpn_bbox"]})
    if uses_masks(config):
        outputs["detection_masks"] = ClassMasks(name="detection_masks")(
            [outputs["mrcnn_mask"], detections])
    if uses_keypoints(config):
        logits = build_keypoint_graph(detection_boxes, mrcnn_feature_maps, meta, config)
        outputs["mrcnn_keypoint_logits"] = logits
        outputs["detection_keypoints"] = KeypointDecoder(
            roi_align_mode=config.ROI_ALIGN_MODE, pool_size=config.KEYPOINT_POOL_SIZE,
            name="detection_keypoints")([logits, detection_boxes, meta])
    return inputs, outputs

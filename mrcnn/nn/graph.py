"""Assemble the stages of Mask R-CNN into Keras functional graphs.

Two graphs share every weight-carrying layer name, so weights move between them by name:

- training: image -> backbone -> FPN -> RPN -> proposals -> sampled ROIs with targets
  -> classifier/box head and mask head. Its outputs feed the five losses.
- inference: image -> backbone -> FPN -> RPN -> proposals -> classifier/box head
  -> DetectionLayer -> mask head on the detections.

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
        rows that can hold positives with MASK_HEAD_POSITIVES_ONLY.
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
    rois, target_class_ids, target_bbox, target_mask = DetectionTargetLayer(
        config, fill_negatives=config.ROI_FILL_NEGATIVES, name="proposal_targets")(
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
    mrcnn_mask = build_fpn_mask_graph(mask_rois, mrcnn_feature_maps, meta,
                                      config.MASK_POOL_SIZE, config.NUM_CLASSES,
                                      train_bn=config.TRAIN_BN,
                                      channels=config.MASK_HEAD_CONV_SIZE,
                                      roi_align_mode=config.ROI_ALIGN_MODE,
                                      sampling_ratio=config.SAMPLING_RATIO)
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
        "mrcnn_mask": mrcnn_mask,
    }
    return inputs, outputs


def build_inference_graph(config):
    """The inference graph.

    Returns:
        (inputs, outputs) with outputs detections [B, D, 6] (y1, x1, y2, x2, class_id,
        score; normalised), mrcnn_class [B, R, NC], mrcnn_bbox [B, R, NC, 4],
        mrcnn_mask [B, D, mh, mw, NC], rpn_rois [B, R, 4], rpn_class [B, A, 2],
        rpn_bbox [B, A, 4] (upstream's seven), and detection_masks [B, D, mh, mw], each
        detection's mask of its own class (zeros for padding rows), with
        D = DETECTION_MAX_INSTANCES and R = POST_NMS_ROIS_INFERENCE. The graph takes any
        batch size B.
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
    mrcnn_mask = build_fpn_mask_graph(detection_boxes, mrcnn_feature_maps, meta,
                                      config.MASK_POOL_SIZE, config.NUM_CLASSES,
                                      train_bn=config.TRAIN_BN,
                                      channels=config.MASK_HEAD_CONV_SIZE,
                                      roi_align_mode=config.ROI_ALIGN_MODE,
                                      sampling_ratio=config.SAMPLING_RATIO)
    detection_masks = ClassMasks(name="detection_masks")([mrcnn_mask, detections])
    outputs = {
        "detections": detections,
        "mrcnn_class": mrcnn_class,
        "mrcnn_bbox": mrcnn_bbox,
        "mrcnn_mask": mrcnn_mask,
        "rpn_rois": rpn["rpn_rois"],
        "rpn_class": rpn["rpn_class"],
        "rpn_bbox": rpn["rpn_bbox"],
        "detection_masks": detection_masks,
    }
    return inputs, outputs

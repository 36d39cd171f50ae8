"""A tiny keypoint configuration and hand-built training batches for it.

The batches are dicts of numpy arrays in the training graph's input layout, keypoints
in the molded image's pixel-index frame (x, y, v), built without the input pipeline.
"""
import numpy as np

from mrcnn import data, utils
from mrcnn.image_meta import compose_image_meta

from conftest import TinyConfig


class TinyKeypointConfig(TinyConfig):
    """TinyConfig with a 3-keypoint head of two 8-channel convs on 4x4 pooled ROIs."""
    NAME = "tiny_kp"
    NUM_KEYPOINTS = 3
    KEYPOINT_NAMES = ["left", "right", "top"]
    KEYPOINT_FLIP_MAP = [("left", "right")]
    KEYPOINT_POOL_SIZE = 4
    KEYPOINT_MASK_SHAPE = [16, 16]
    KEYPOINT_HEAD_CONV_SIZE = 8
    KEYPOINT_HEAD_CONV_COUNT = 2


# Two instances per image: (y1, x1, y2, x2) pixels of the 64x64 image, class ids.
BOXES = np.array([[8, 6, 40, 30], [20, 34, 60, 62]], dtype=np.int32)
CLASS_IDS = np.array([1, 2], dtype=np.int32)


def box_keypoints(boxes):
    """[G, 3, 3] keypoints of each box: left (visible), right (occluded), top (unlabelled)."""
    keypoints = []
    for y1, x1, y2, x2 in boxes:
        middle = (y1 + y2 - 1) / 2.0
        keypoints.append([[x1 + 2, middle, 2], [x2 - 3, middle, 1], [(x1 + x2) / 2, y1, 0]])
    return np.array(keypoints, dtype=np.float32)


def hand_keypoint_batch(config, seed=0, keypoints=None):
    """One training batch of BATCH_SIZE identical-layout images.

    Args:
        keypoints: None (box_keypoints(BOXES)) or float32 [G, K, 3] for every image.
    Returns:
        dict name -> numpy array: input_image, input_image_meta, input_rpn_match,
        input_rpn_bbox, input_gt_class_ids, input_gt_boxes, input_gt_masks (mini masks),
        input_gt_keypoints [B, MAX_GT_INSTANCES, K, 3] (padding rows zero).
    """
    rng = np.random.default_rng(seed)
    batch = config.BATCH_SIZE
    shape = tuple(int(v) for v in config.IMAGE_SHAPE)
    rows = config.MAX_GT_INSTANCES
    count = len(BOXES)
    anchors = utils.generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
        utils.compute_backbone_shapes(config, shape), config.BACKBONE_STRIDES,
        config.RPN_ANCHOR_STRIDE)
    rpn_match, rpn_bbox = data.build_rpn_targets(shape, anchors, CLASS_IDS, BOXES, config,
                                                 rng=np.random.RandomState(seed))
    points = box_keypoints(BOXES) if keypoints is None else np.asarray(keypoints, np.float32)
    gt_keypoints = np.zeros((batch, rows, config.NUM_KEYPOINTS, 3), np.float32)
    gt_keypoints[:, :count] = points
    gt_boxes = np.zeros((batch, rows, 4), np.int32)
    gt_boxes[:, :count] = BOXES
    gt_class_ids = np.zeros((batch, rows), np.int32)
    gt_class_ids[:, :count] = CLASS_IDS
    masks = np.zeros((batch,) + tuple(config.MINI_MASK_SHAPE) + (rows,), bool)
    masks[..., :count] = True
    images = rng.normal(0.0, 30.0, (batch,) + shape).astype(np.float32)
    meta = compose_image_meta(0, shape, shape, (0, 0, shape[0], shape[1]), 1.0,
                              np.ones([config.NUM_CLASSES], np.int32))
    return {
        "input_image": images,
        "input_image_meta": np.tile(meta[None].astype(np.float32), (batch, 1)),
        "input_rpn_match": np.tile(rpn_match[None, :, None].astype(np.int32), (batch, 1, 1)),
        "input_rpn_bbox": np.tile(rpn_bbox[None].astype(np.float32), (batch, 1, 1)),
        "input_gt_class_ids": gt_class_ids,
        "input_gt_boxes": gt_boxes,
        "input_gt_masks": masks,
        "input_gt_keypoints": gt_keypoints,
    }

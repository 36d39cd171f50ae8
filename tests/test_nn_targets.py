"""DetectionTargetLayer: ROI sampling and head targets on hand-made boxes.

IoUs of the hand case (normalised boxes), worked out by hand:

    GT  g0 class 1  (0, 0, .4, .4)        g1 class 2 (.5, .5, .9, .9)
        g2 crowd    (0, .6, .3, .9)       then one padding row
    p0 (0, 0, .4, .4)      g0: 1                                -> positive, g0
    p1 (0, 0, .4, .3)      g0: .12 / .16 = .75                  -> positive, g0
    p2 (.6, .5, .9, .9)    g1: .12 / .16 = .75                  -> positive, g1
    p3 (0, 0, .2, .2)      g0: .04 / .16 = .25                  -> negative
    p4 (0, .6, .3, .9)     crowd: 1                             -> neither
    p5 (.25, .85, .5, .95) crowd: .0025 / .1125 = .022          -> neither
    p6 (.95, 0, 1, .1)     nothing                              -> negative
    p7 (.4, .4, .6, .6)    g1: .01 / .19 = .053, g0 touches     -> negative
    then two padding rows
"""
import numpy as np
import pytest
import tensorflow as tf
import keras

from mrcnn.config import Config
from mrcnn.nn.targets import (DetectionTargetLayer, InstanceBoxes, detection_targets,
                               target_settings)

GT_BOXES = np.array([[0, 0, .4, .4], [.5, .5, .9, .9], [0, .6, .3, .9], [0, 0, 0, 0]],
                    np.float32)
GT_CLASS_IDS = np.array([1, 2, -1, 0], np.int32)
PROPOSALS = np.array([
    [0, 0, .4, .4], [0, 0, .4, .3], [.6, .5, .9, .9], [0, 0, .2, .2],
    [0, .6, .3, .9], [.25, .85, .5, .95], [.95, 0, 1, .1], [.4, .4, .6, .6],
    [0, 0, 0, 0], [0, 0, 0, 0]], np.float32)
POSITIVES = {0: 0, 1: 0, 2: 1}      # proposal -> its GT
NEGATIVES = (3, 6, 7)
STD = np.array([0.1, 0.1, 0.2, 0.2])


class TargetConfig(Config):
    NAME = "targets"
    NUM_CLASSES = 3
    TRAIN_ROIS_PER_IMAGE = 6
    ROI_POSITIVE_RATIO = 0.5
    MASK_POOL_SIZE = 2
    MASK_SHAPE = [4, 4]
    MINI_MASK_SHAPE = (8, 8)


def mini_masks():
    """[8, 8, 4]: a centred square (rows/cols 2..5) for every instance."""
    masks = np.zeros((8, 8, 4), bool)
    masks[2:6, 2:6, :3] = True
    return masks


def settings(**changes):
    result = target_settings(TargetConfig())
    result.update(changes)
    return result


def run_targets(proposals=PROPOSALS, class_ids=GT_CLASS_IDS, boxes=GT_BOXES, masks=None,
                seed=3, mask_dtype=tf.float32, **changes):
    tf.random.set_seed(seed)
    masks = mini_masks() if masks is None else masks
    outputs = detection_targets(tf.constant(proposals), tf.constant(class_ids),
                                tf.constant(boxes), tf.constant(masks, mask_dtype),
                                seed=seed, **settings(**changes))
    return [o.numpy() for o in outputs]


# --- independent numpy references ------------------------------------------------------
def refinement(box, gt):
    h, w = box[2] - box[0], box[3] - box[1]
    gh, gw = gt[2] - gt[0], gt[3] - gt[1]
    dy = (gt[0] + gh / 2 - box[0] - h / 2) / h
    dx = (gt[1] + gw / 2 - box[1] - w / 2) / w
    return np.array([dy, dx, np.log(gh / h), np.log(gw / w)]) / STD


def crop_resize(image, box, size):
    """Bilinear sampling of a [H, W] image on a size grid spanning the normalised box."""
    height, width = image.shape
    out = np.zeros(size)
    ys = box[0] * (height - 1) + np.arange(size[0]) * (box[2] - box[0]) * (height - 1) / (size[0] - 1)
    xs = box[1] * (width - 1) + np.arange(size[1]) * (box[3] - box[1]) * (width - 1) / (size[1] - 1)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            if not (0 <= y <= height - 1 and 0 <= x <= width - 1):
                continue
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
            fy, fx = y - y0, x - x0
            top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
            bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


def row_of(rois, box):
    matches = np.where(np.all(np.isclose(rois, box), axis=1))[0]
    assert len(matches) == 1, (box, rois)
    return matches[0]


# --- the hand case ------------------------------------------------------------------------
def test_hand_case_selects_positives_then_negatives_and_skips_crowds():
    rois, class_ids, deltas, masks = run_targets()
    assert rois.shape == (6, 4) and class_ids.shape == (6,) and class_ids.dtype == np.int32
    assert deltas.shape == (6, 4) and masks.shape == (6, 4, 4)
    # 3 positives (cap int(6 * .5) = 3), int(3 / .5) - 3 = 3 negatives: all of them.
    assert sorted(row_of(PROPOSALS, r) for r in rois[:3]) == sorted(POSITIVES)
    assert sorted(row_of(PROPOSALS, r) for r in rois[3:]) == sorted(NEGATIVES)
    for crowd_proposal in (4, 5):
        assert not np.any(np.all(np.isclose(rois, PROPOSALS[crowd_proposal]), axis=1))
    np.testing.assert_array_equal(class_ids[3:], 0)
    np.testing.assert_array_equal(deltas[3:], 0)
    np.testing.assert_array_equal(masks[3:], 0)


def test_hand_case_class_and_box_targets():
    rois, class_ids, deltas, _ = run_targets()
    for row in range(3):
        proposal = row_of(PROPOSALS, rois[row])
        gt = POSITIVES[proposal]
        assert class_ids[row] == GT_CLASS_IDS[gt]
        np.testing.assert_allclose(deltas[row], refinement(PROPOSALS[proposal], GT_BOXES[gt]),
                                   atol=1e-5)
    # p1 by hand: same centre row, centre x .15 -> .2 of a .3 wide box, width .3 -> .4.
    p1_row = row_of(rois, PROPOSALS[1])
    np.testing.assert_allclose(deltas[p1_row], [0, (0.05 / 0.3) / 0.1, 0, np.log(4 / 3) / 0.2],
                               atol=1e-5)


def test_mini_mask_targets():
    rois, _, _, masks = run_targets()
    square = [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    # The ROI is the GT box: samples at 0, 7/3, 14/3, 7 of the 8x8 mini mask.
    np.testing.assert_array_equal(masks[row_of(rois, PROPOSALS[0])], square)
    # p1 covers the left 3/4 of g0: x samples at 0, 1.75, 3.5, 5.25 -> 0, .75, 1, .75.
    np.testing.assert_array_equal(masks[row_of(rois, PROPOSALS[1])],
                                  [[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0]])
    # p2 covers the lower 3/4 of g1, in g1's frame (.25, 0, 1, 1).
    p2 = row_of(rois, PROPOSALS[2])
    expected = np.round(crop_resize(mini_masks()[..., 1].astype(float), [.25, 0, 1, 1], (4, 4)))
    np.testing.assert_array_equal(masks[p2], expected)
    assert set(np.unique(masks)) <= {0.0, 1.0}


def test_full_size_mask_targets_crop_the_image_mask_with_the_roi():
    rng = np.random.default_rng(0)
    full = rng.random((11, 11, 4)) > 0.5                 # pixel = normalised * 10
    rois, class_ids, _, masks = run_targets(masks=full, use_mini_mask=False)
    for row in range(3):
        gt = POSITIVES[row_of(PROPOSALS, rois[row])]
        expected = np.round(crop_resize(full[..., gt].astype(float), rois[row], (4, 4)))
        np.testing.assert_array_equal(masks[row], expected)


# --- sampling rules -------------------------------------------------------------------------
def many_positives_case():
    """8 shifted copies of one GT box (IoU > .5) and 12 far-away proposals."""
    gt_boxes = np.array([[.2, .2, .6, .6]], np.float32)
    shifts = np.linspace(0, 0.04, 8, dtype=np.float32)[:, None]
    positives = gt_boxes + shifts
    negatives = np.stack([np.full(12, .8), np.linspace(0, .5, 12), np.full(12, .9),
                          np.linspace(0, .5, 12) + .1], axis=1).astype(np.float32)
    proposals = np.concatenate([positives, negatives])
    masks = np.ones((8, 8, 1), bool)
    return proposals, np.array([1], np.int32), gt_boxes, masks


def test_positive_ratio_caps_positives_and_sets_negatives():
    proposals, class_ids, boxes, masks = many_positives_case()
    rois, ids, _, _ = run_targets(proposals, class_ids, boxes, masks,
                                  train_rois_per_image=10, roi_positive_ratio=0.33)
    # int(10 * .33) = 3 positives, then int(3 / .33) - 3 = 6 negatives, 1 padding row.
    np.testing.assert_array_equal(ids, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    assert all(row_of(proposals, r) < 8 for r in rois[:3])
    assert all(row_of(proposals, r) >= 8 for r in rois[3:9])
    np.testing.assert_array_equal(rois[9], 0)


def test_subsampling_is_random_and_seeded():
    proposals, class_ids, boxes, masks = many_positives_case()

    def chosen(seed):
        rois = run_targets(proposals, class_ids, boxes, masks, seed=seed,
                           train_rois_per_image=10, roi_positive_ratio=0.33)[0]
        return tuple(sorted(row_of(proposals, r) for r in rois[:9]))

    assert chosen(5) == chosen(5)
    assert len({chosen(seed) for seed in range(6)}) > 1


def test_fill_negatives_fills_the_rows_left_by_positives():
    proposals, class_ids, boxes, masks = many_positives_case()
    _, ids, _, _ = run_targets(proposals, class_ids, boxes, masks, train_rois_per_image=10,
                               roi_positive_ratio=0.33, fill_negatives=True)
    np.testing.assert_array_equal(ids, [1, 1, 1] + [0] * 7)
    # Crowd-overlapping proposals stay out even with room to spare.
    rois, ids, _, _ = run_targets(train_rois_per_image=10, fill_negatives=True)
    assert sorted(row_of(PROPOSALS, r) for r in rois[:6]) == [0, 1, 2, 3, 6, 7]
    np.testing.assert_array_equal(rois[6:], 0)


def test_no_ground_truth_gives_no_positives():
    no_ids = np.zeros(4, np.int32)
    no_boxes = np.zeros((4, 4), np.float32)
    # Upstream's ratio: no positives -> no negatives either; every row is padding.
    outputs = run_targets(class_ids=no_ids, boxes=no_boxes)
    for output in outputs:
        assert np.all(np.isfinite(output))
        np.testing.assert_array_equal(output, 0)
    # Filling: every row is a negative, 6 distinct proposals of the 8 real ones.
    rois, ids, deltas, masks = run_targets(class_ids=no_ids, boxes=no_boxes,
                                           fill_negatives=True)
    chosen = {row_of(PROPOSALS, r) for r in rois}
    assert len(chosen) == 6 and chosen <= set(range(8))
    np.testing.assert_array_equal(ids, 0)
    np.testing.assert_array_equal(deltas, 0)
    np.testing.assert_array_equal(masks, 0)


def test_only_crowds_means_no_negatives_on_them():
    ids = np.array([-1, 0, 0, 0], np.int32)
    boxes = np.array([[0, .6, .3, .9], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    rois, class_ids, _, _ = run_targets(class_ids=ids, boxes=boxes, fill_negatives=True)
    chosen = sorted(row_of(PROPOSALS, r) for r in rois if np.any(r))
    assert chosen == [0, 1, 2, 3, 6, 7]
    np.testing.assert_array_equal(class_ids, 0)


# --- the layer --------------------------------------------------------------------------------
def batch_inputs():
    proposals = np.stack([PROPOSALS, PROPOSALS])
    class_ids = np.stack([GT_CLASS_IDS, np.zeros(4, np.int32)])
    boxes = np.stack([GT_BOXES, np.zeros((4, 4), np.float32)])
    masks = np.stack([mini_masks(), np.zeros((8, 8, 4), bool)])
    return proposals, class_ids, boxes, masks


def test_layer_maps_over_the_batch():
    tf.random.set_seed(1)
    layer = DetectionTargetLayer(TargetConfig(), seed=7)
    rois, class_ids, deltas, masks = (o.numpy() for o in layer(list(batch_inputs())))
    assert rois.shape == (2, 6, 4) and masks.shape == (2, 6, 4, 4)
    assert class_ids.dtype == np.int32
    assert sorted(class_ids[0][:3]) == [1, 1, 2]
    assert sorted(row_of(PROPOSALS, r) for r in rois[0]) == [0, 1, 2, 3, 6, 7]
    np.testing.assert_array_equal(rois[1], 0)
    np.testing.assert_array_equal(class_ids[1], 0)
    positive_p1 = row_of(rois[0], PROPOSALS[1])
    np.testing.assert_allclose(deltas[0, positive_p1], refinement(PROPOSALS[1], GT_BOXES[0]),
                               atol=1e-5)


def test_layer_symbolic_shapes_and_config_round_trip():
    layer = DetectionTargetLayer(TargetConfig(), seed=7, name="proposal_targets")
    inputs = [keras.Input((10, 4)), keras.Input((4,), dtype="int32"), keras.Input((4, 4)),
              keras.Input((8, 8, 4), dtype="bool")]
    outputs = layer(inputs)
    assert [tuple(o.shape) for o in outputs] == [(None, 6, 4), (None, 6), (None, 6, 4),
                                                 (None, 6, 4, 4)]
    assert outputs[1].dtype == "int32"
    clone = DetectionTargetLayer.from_config(layer.get_config())
    assert clone.settings == layer.settings and clone.seed == 7 and clone.name == layer.name
    model = keras.Model(inputs, outputs)
    results = model.predict(list(batch_inputs()), verbose=0)
    assert sorted(results[1][0][:3]) == [1, 1, 2]


def test_layer_keeps_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = DetectionTargetLayer(TargetConfig(), seed=7)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    tf.random.set_seed(1)
    rois, _, deltas, _ = (o.numpy() for o in layer(list(batch_inputs())))
    assert rois.dtype == np.float32
    row = row_of(rois[0], PROPOSALS[1])
    np.testing.assert_allclose(deltas[0, row], refinement(PROPOSALS[1], GT_BOXES[0]), atol=1e-5)


def test_layer_takes_the_seed_from_config():
    config = TargetConfig()
    config.SEED = 11
    assert DetectionTargetLayer(config).seed == 11
    assert DetectionTargetLayer(config, seed=2).seed == 2


# --- ground-truth masks stay boolean --------------------------------------------------------
def test_boolean_masks_of_permuted_instances_give_the_reference_targets():
    # Distinct random masks, GT rows reordered to (crowd, padding, g1, g0): each positive must
    # read the mask of its own GT even with crowds and padding in front of it.
    rng = np.random.default_rng(4)
    order = [2, 3, 1, 0]
    for use_mini_mask, size in ((True, (8, 8)), (False, (11, 11))):
        masks = rng.random(size + (4,)) > 0.5
        rois, class_ids, _, got = run_targets(
            class_ids=GT_CLASS_IDS[order], boxes=GT_BOXES[order], masks=masks[..., order],
            mask_dtype=tf.bool, use_mini_mask=use_mini_mask)
        assert sorted(class_ids[:3]) == [1, 1, 2]
        for row in range(3):
            gt = POSITIVES[row_of(PROPOSALS, rois[row])]
            box = rois[row]
            if use_mini_mask:
                gy1, gx1, gy2, gx2 = GT_BOXES[gt]
                box = [(box[0] - gy1) / (gy2 - gy1), (box[1] - gx1) / (gx2 - gx1),
                       (box[2] - gy1) / (gy2 - gy1), (box[3] - gx1) / (gx2 - gx1)]
            expected = np.round(crop_resize(masks[..., gt].astype(float), box, (4, 4)))
            np.testing.assert_array_equal(got[row], expected,
                                          err_msg=f"mini={use_mini_mask} row {row}")


def float_tensors_at_mask_size(graph, height, width):
    """(op type, shape) of every float tensor of `graph` with both mask dimensions."""
    found = []
    for op in graph.get_operations():
        for tensor in op.outputs:
            dims = tensor.shape.as_list() if tensor.shape.rank is not None else []
            if tensor.dtype.is_floating and height in dims and width in dims:
                found.append((op.type, dims))
    return found


def test_full_size_masks_are_never_copied_as_float():
    # 40 x 48 stands for 1024^2: a float32 copy of G such masks is 4 bytes a pixel each.
    specs = (tf.TensorSpec([10, 4]), tf.TensorSpec([4], tf.int32), tf.TensorSpec([4, 4]),
             tf.TensorSpec([40, 48, 4], tf.bool))
    per_image = tf.function(lambda *args: detection_targets(
        *args, seed=3, **settings(use_mini_mask=False)), autograph=False)
    graph = per_image.get_concrete_function(*specs).graph
    assert float_tensors_at_mask_size(graph, 40, 48) == []
    assert any(op.type == "CropAndResize" for op in graph.get_operations())

    config = TargetConfig()
    config.USE_MINI_MASK = False
    layer = DetectionTargetLayer(config, seed=7)
    batch = tf.function(lambda *args: layer(list(args)), autograph=False)
    graph = batch.get_concrete_function(
        *(tf.TensorSpec([2] + s.shape.as_list(), s.dtype) for s in specs)).graph
    assert float_tensors_at_mask_size(graph, 40, 48) == []


# --- ground-truth boxes as proposals (ROI_INCLUDE_GT_BOXES) ---------------------------------
def test_instance_boxes_zero_crowds_and_padding():
    boxes = np.stack([GT_BOXES, GT_BOXES[::-1]])
    ids = np.stack([GT_CLASS_IDS, GT_CLASS_IDS[::-1]])
    got = InstanceBoxes()([tf.constant(ids), tf.constant(boxes)]).numpy()
    expected = np.stack([GT_BOXES * [[1], [1], [0], [0]], GT_BOXES[::-1] * [[0], [0], [1], [1]]])
    np.testing.assert_array_equal(got, expected)


def test_training_graph_adds_instance_boxes_but_not_crowds_to_the_proposals():
    from mrcnn.image_meta import compose_image_meta
    from mrcnn.nn.graph import build_training_graph

    from conftest import TinyConfig

    class GivenRois(TinyConfig):
        IMAGES_PER_GPU = 1
        USE_RPN_ROIS = False          # no proposals at all: only the GT boxes are candidates
        ROI_INCLUDE_GT_BOXES = True
        ROI_FILL_NEGATIVES = False

    config = GivenRois()
    inputs, outputs = build_training_graph(config)
    model = keras.Model(inputs, [outputs["rois"], outputs["target_class_ids"]])
    # Pixels: instance (10, 10, 40, 40) class 2; crowd (12, 10, 42, 40) over it, IoU
    # 28 * 30 / (900 + 900 - 840) = .875: as a proposal it would be a positive of class 2.
    gt_boxes = np.array([[[10, 10, 40, 40], [12, 10, 42, 40], [0, 0, 0, 0]]], np.float32)
    gt_class_ids = np.array([[2, -1, 0]], np.int32)
    feed = {
        "input_image": np.zeros((1, 64, 64, 3), np.float32),
        "input_image_meta": compose_image_meta(0, (64, 64, 3), (64, 64, 3), (0, 0, 64, 64),
                                               1.0, np.ones(config.NUM_CLASSES))[None],
        "input_rpn_match": np.zeros((1, 10, 1), np.int32),
        "input_rpn_bbox": np.zeros((1, 10, 4), np.float32),
        "input_gt_class_ids": gt_class_ids,
        "input_gt_boxes": gt_boxes,
        "input_gt_masks": np.ones((1, 28, 28, 3), bool),
        "input_rois": np.zeros((1, config.POST_NMS_ROIS_TRAINING, 4), np.float32),
    }
    rois, class_ids = (o.numpy() for o in model(feed))
    # The instance's own box is the one positive; no negatives (none is away from the crowd).
    np.testing.assert_array_equal(class_ids[0], [2] + [0] * (config.TRAIN_ROIS_PER_IMAGE - 1))
    np.testing.assert_allclose(rois[0, 0], (gt_boxes[0, 0] - [0, 0, 1, 1]) / 63, atol=1e-6)
    np.testing.assert_array_equal(rois[0, 1:], 0)

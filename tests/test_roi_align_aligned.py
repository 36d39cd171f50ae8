"""ROI_ALIGN_MODE "aligned": the paper's ROIAlign with the half-pixel correction.

The reference below is the definition written out in numpy, independently of the graph's
crop_and_resize formulation: an ROI in image pixels (continuous, pixel i spans [i, i + 1))
maps to feature index coordinates y / stride - 0.5 (detectron2's aligned=True); each of the
P x Q bins averages r x r bilinear samples at regularly spaced points inside it; a sample
more than one pixel outside the map (y < -1 or y > h) is 0, any other is clamped into the map
(detectron2's bilinear_interpolate).
"""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import utils
from mrcnn.config import Config, ConfigError
from mrcnn.image_meta import compose_image_meta
from mrcnn.nn.roi_align import PyramidROIAlign, aligned_crop_and_resize
from mrcnn.nn.targets import detection_targets


# ----------------------------------------------------------------------------- reference
def bilinear(feature, y, x):
    """feature [h, w, C] at index coordinates (y, x), detectron2's border rule."""
    height, width = feature.shape[:2]
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(feature.shape[2:])
    y, x = max(y, 0.0), max(x, 0.0)
    top, left = int(y), int(x)
    if top >= height - 1:
        top = bottom = height - 1
        y = float(top)
    else:
        bottom = top + 1
    if left >= width - 1:
        left = right = width - 1
        x = float(left)
    else:
        right = left + 1
    dy, dx = y - top, x - left
    return ((1 - dy) * (1 - dx) * feature[top, left] + (1 - dy) * dx * feature[top, right]
            + dy * (1 - dx) * feature[bottom, left] + dy * dx * feature[bottom, right])


def roi_align(feature, box, pool, ratio, stride=1.0):
    """The paper's ROIAlign of one ROI (y1, x1, y2, x2) in image pixels, aligned."""
    y1, x1, y2, x2 = (float(v) / stride - 0.5 for v in box)
    bin_h, bin_w = (y2 - y1) / pool[0], (x2 - x1) / pool[1]
    out = np.zeros(tuple(pool) + feature.shape[2:])
    for i in range(pool[0]):
        for j in range(pool[1]):
            for k in range(ratio):
                for m in range(ratio):
                    y = y1 + i * bin_h + (k + 0.5) * bin_h / ratio
                    x = x1 + j * bin_w + (m + 0.5) * bin_w / ratio
                    out[i, j] += bilinear(feature, y, x)
    return out / ratio ** 2


def normalise(pixel_box, height, width):
    """DESIGN.md: norm = (box - [0, 0, 1, 1]) / [H - 1, W - 1, H - 1, W - 1]."""
    return ((np.asarray(pixel_box, float) - [0, 0, 1, 1])
            / [height - 1, width - 1, height - 1, width - 1])


def ref_level(box, image_hw):
    h, w = box[2] - box[0], box[3] - box[1]
    if h * w <= 0:
        return 2
    ratio = math.sqrt(h * w) / (224 / math.sqrt(image_hw[0] * image_hw[1]))
    return min(5, max(2, 4 + round(math.log2(ratio))))


def meta_for(height, width, num_classes=2):
    return compose_image_meta(0, (height, width, 3), (height, width, 3),
                              (0, 0, height, width), 1.0, np.ones(num_classes))


def crop(images, boxes, pool, ratio):
    images = np.asarray(images, np.float32)
    boxes = np.asarray(boxes, np.float32)
    return aligned_crop_and_resize(images, boxes, np.zeros(len(boxes), np.int32),
                                   pool, ratio).numpy()


# ------------------------------------------------------------------- by hand, one map
def test_a_box_on_the_pixel_grid_is_average_pooling():
    # 4x4 map 4y + x; box = the whole map, 2x2 bins, 2x2 samples: the samples fall on the
    # pixel centres, so each bin is the mean of its 4 pixels.
    feature = (4 * np.arange(4)[:, None] + np.arange(4)[None, :])[None, ..., None]
    out = crop(feature, [[0, 0, 4, 4]], (2, 2), 2)
    np.testing.assert_allclose(out[0, ..., 0], [[2.5, 4.5], [10.5, 12.5]], atol=1e-5)


def test_samples_within_a_pixel_outside_are_clamped_beyond_are_zero():
    feature = (4 * np.arange(4)[:, None] + np.arange(4)[None, :])[None, ..., None]
    # 8 bins over 4 pixels, one sample each, at index -0.25, 0.25, ..., 3.25: the outer two
    # are clamped to rows / columns 0 and 3 (crop_and_resize alone would give 0 there).
    ys = np.array([0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
    out = crop(feature, [[0, 0, 4, 4]], (8, 8), 1)
    np.testing.assert_allclose(out[0, ..., 0], 4 * ys[:, None] + ys[None, :], atol=1e-5)
    # Rows from y1 = -2.6: samples at -2.6, -1.6 (zero), -0.6 (clamped to row 0), 0.4.
    out = crop(feature, [[-2.6, 0, 1.4, 4]], (4, 4), 1)
    np.testing.assert_allclose(out[0, :, :, 0],
                               [[0] * 4, [0] * 4, [0, 1, 2, 3], [1.6, 2.6, 3.6, 4.6]],
                               atol=1e-5)


# ------------------------------------------------------------ one map, against numpy
AWKWARD_BOXES = [
    [0.0, 0.0, 9.0, 7.0],        # the whole map
    [2.3, 1.1, 2.6, 1.5],        # smaller than a cell
    [4.0, 3.0, 4.0, 3.0],        # empty: one point
    [0.0, 5.2, 3.3, 7.0],        # touching the top and right borders
    [6.1, 0.0, 9.0, 2.2],        # touching the bottom and left borders
    [-1.7, -0.6, 3.0, 2.5],      # partly outside: zeros and clamped samples
    [5.0, 4.0, 11.5, 9.9],       # beyond the bottom right corner
    [-3.0, -2.0, 12.0, 10.0],    # larger than the map
    [1.25, 0.75, 7.6, 6.1],
]


@pytest.mark.parametrize("ratio,pool", [(1, (3, 4)), (2, (3, 4)), (3, (2, 2)), (2, (7, 7))])
def test_arbitrary_boxes_match_the_definition(ratio, pool):
    rng = np.random.default_rng(ratio * 10 + pool[0])
    maps = rng.normal(size=(2, 9, 7, 3))
    boxes = np.array(AWKWARD_BOXES, np.float32)
    index = np.arange(len(boxes), dtype=np.int32) % 2
    out = aligned_crop_and_resize(maps.astype(np.float32), boxes, index, pool, ratio).numpy()
    assert out.shape == (len(boxes),) + pool + (3,)
    for n, box in enumerate(boxes):
        np.testing.assert_allclose(out[n], roi_align(maps[index[n]], box, pool, ratio),
                                   atol=1e-4, err_msg=f"box {box}")


# --------------------------------------------------- the pyramid, every level, per image
def test_pyramid_roi_align_aligned_matches_the_definition_on_every_level():
    rng = np.random.default_rng(3)
    height, width = 512, 384                             # strides 4..32: 128x96 .. 16x12
    strides = (4, 8, 16, 32)
    maps = [rng.normal(size=(2, height // s, width // s, 2)) for s in strides]
    pixel = [
        [0, 0, 512, 384],                                # whole image: level 5
        [0.0, 300.5, 60.2, 384.0],                       # top right corner, level 3
        [500.3, 0.0, 512.0, 2.9],                        # sub-cell of P2, bottom left
        [100.0, 100.0, 101.5, 100.7],                    # 1.5 x 0.7 pixels, level 2
        [37.4, 12.9, 190.6, 250.1],                      # level 4
        [50.0, 20.0, 460.0, 380.0],                      # level 5
        [200.2, 150.8, 290.3, 260.1],                    # level 3
        [10.0, 5.0, 35.0, 70.0],                         # level 2
    ]
    boxes = np.stack([[normalise(b, height, width) for b in pixel],
                      [normalise(b, height, width) for b in pixel[::-1]]]).astype(np.float32)
    boxes[1, 0] = 0.0                                    # a padding row
    meta = np.stack([meta_for(height, width)] * 2)
    layer = PyramidROIAlign((7, 7), mode="aligned", sampling_ratio=2)
    out = layer([boxes, meta] + [m.astype(np.float32) for m in maps]).numpy()
    assert out.shape == (2, len(pixel), 7, 7, 2)
    used = set()
    for b in range(2):
        for n in range(len(pixel)):
            level = ref_level(boxes[b, n], (height, width))
            used.add(level)
            # The inverse of DESIGN.md's normalisation gives the ROI in pixels.
            scale = [height - 1, width - 1, height - 1, width - 1]
            box = boxes[b, n].astype(float) * scale + [0, 0, 1, 1]
            expected = roi_align(maps[level - 2][b], box, (7, 7), 2, strides[level - 2])
            np.testing.assert_allclose(out[b, n], expected, atol=1e-4,
                                       err_msg=f"box {b},{n} level {level}")
    assert used == {2, 3, 4, 5}


def test_upstream_mode_is_crop_and_resize_of_the_normalised_box_bit_for_bit():
    rng = np.random.default_rng(8)
    maps = [rng.normal(size=(2, n, n, 3)).astype(np.float32) for n in (16, 8, 4, 2)]
    side = rng.uniform(0.02, 0.9, (2, 12, 2))
    corner = rng.uniform(0.0, 1.0, (2, 12, 2)) * (1 - side)
    boxes = np.concatenate([corner, corner + side], -1).astype(np.float32)
    meta = np.stack([meta_for(1024, 1024)] * 2)
    layer = PyramidROIAlign((7, 7))
    assert layer.mode == "upstream"
    out = layer([boxes, meta] + maps).numpy()
    for b in range(2):
        for n in range(12):
            level = ref_level(boxes[b, n], (1024, 1024))
            expected = tf.image.crop_and_resize(maps[level - 2][b:b + 1], boxes[b, n:n + 1],
                                                [0], (7, 7), method="bilinear").numpy()
            np.testing.assert_array_equal(out[b, n], expected[0])


def test_aligned_layer_config_and_gradient():
    layer = PyramidROIAlign((7, 7), mode="aligned", sampling_ratio=3, name="roi_align_mask")
    clone = PyramidROIAlign.from_config(layer.get_config())
    assert (clone.mode, clone.sampling_ratio, clone.pool_shape) == ("aligned", 3, (7, 7))
    rng = np.random.default_rng(5)
    values = [tf.constant(rng.normal(size=(1, n, n, 4)), tf.float32) for n in (64, 32, 16, 8)]
    box = tf.constant([[normalise([100, 100, 500, 500], 1024, 1024)] * 2], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(values)
        total = tf.reduce_sum(clone([box, meta_for(1024, 1024)[None]] + values))
    grads = tape.gradient(total, values)
    # 400 pixels in a 1024 image: 4 + round(log2(400 / 224)) = 5.
    assert float(tf.reduce_sum(tf.abs(grads[3]))) > 0
    assert all(float(tf.reduce_sum(tf.abs(g))) == 0 for g in grads[:3])


def test_layer_refuses_an_unknown_mode_and_a_bad_ratio():
    with pytest.raises(ValueError, match="ROI_ALIGN_MODE"):
        PyramidROIAlign((7, 7), mode="paper")
    with pytest.raises(ValueError, match="SAMPLING_RATIO"):
        PyramidROIAlign((7, 7), mode="aligned", sampling_ratio=0)


# ------------------------------------------------------------------------- the config
def test_config_defaults_and_validation():
    config = Config()
    assert config.ROI_ALIGN_MODE == "upstream" and config.SAMPLING_RATIO == 2
    for name, value in (("ROI_ALIGN_MODE", "paper"), ("ROI_ALIGN_MODE", None),
                        ("SAMPLING_RATIO", 0), ("SAMPLING_RATIO", 1.5),
                        ("SAMPLING_RATIO", True)):
        config = Config()
        setattr(config, name, value)
        with pytest.raises(ConfigError, match=f"^{name}"):
            config.validate()


# ------------------------------------------------------------------- mask targets
def _mask_target_case():
    """Three instances in a 40 x 48 image and proposals that overlap one each."""
    height, width = 40, 48
    masks = np.zeros((height, width, 3), bool)
    yy, xx = np.mgrid[:height, :width]
    masks[..., 0] = (yy - 12) ** 2 / 64 + (xx - 10) ** 2 / 36 <= 1     # ellipse
    masks[5:19, 26:45, 1] = True
    masks[7:11, 30:33, 1] = False                                     # with a hole
    masks[..., 2] = (yy >= 24) & (xx >= 5) & (xx - 5 <= (yy - 24) * 2) & (xx < 40)
    gt_boxes_px = utils.extract_bboxes(masks)
    rng = np.random.default_rng(2)
    proposals_px = []
    for box in gt_boxes_px:
        for _ in range(3):                      # jittered copies with IoU well above 0.5
            size = np.tile(box[2:] - box[:2], 2)
            proposals_px.append(box + rng.uniform(-0.08, 0.08, 4) * size)
    proposals_px = np.array(proposals_px)
    proposals_px[:, 0::2] = proposals_px[:, 0::2].clip(0, height)
    proposals_px[:, 1::2] = proposals_px[:, 1::2].clip(0, width)
    return masks, gt_boxes_px, proposals_px, (height, width)


def _run_aligned_targets(masks, gt_boxes_px, proposals_px, image_hw, use_mini_mask):
    height, width = image_hw
    mini_shape = (20, 24)
    gt_masks = utils.minimize_mask(gt_boxes_px, masks, mini_shape) if use_mini_mask else masks
    tf.random.set_seed(0)
    rois, class_ids, _, targets = detection_targets(
        tf.constant(normalise(proposals_px, height, width), tf.float32),
        tf.constant([1, 2, 3], tf.int32),
        tf.constant(normalise(gt_boxes_px, height, width), tf.float32),
        tf.constant(gt_masks), train_rois_per_image=9, roi_positive_ratio=1.0,
        bbox_std_dev=[0.1, 0.1, 0.2, 0.2], mask_shape=[14, 14], use_mini_mask=use_mini_mask,
        roi_align_mode="aligned", image_shape=(height, width), seed=0)
    return gt_masks, rois.numpy(), class_ids.numpy(), targets.numpy()


@pytest.mark.parametrize("use_mini_mask", [False, True])
def test_aligned_mask_targets_sample_the_bin_centres(use_mini_mask):
    masks, gt_boxes_px, proposals_px, (height, width) = _mask_target_case()
    gt_masks, rois, class_ids, targets = _run_aligned_targets(
        masks, gt_boxes_px, proposals_px, (height, width), use_mini_mask)
    assert (class_ids > 0).all()
    compared = 0
    for roi, class_id, target in zip(rois, class_ids, targets):
        roi_px = (roi.astype(float) * [height - 1, width - 1, height - 1, width - 1]
                  + [0, 0, 1, 1])
        g = class_id - 1                                        # one GT per class here
        mask = gt_masks[..., g].astype(float)[..., None]
        if use_mini_mask:
            # The mini mask spans the GT box: pixel y -> (y - gy1) * mini_h / gt_h.
            gy1, gx1, gy2, gx2 = gt_boxes_px[g].astype(float)
            scale = np.array([mask.shape[0] / (gy2 - gy1), mask.shape[1] / (gx2 - gx1)] * 2)
            roi_px = (roi_px - [gy1, gx1, gy1, gx1]) * scale
        soft = roi_align(mask, roi_px, (14, 14), 1)[..., 0]
        decided = np.abs(soft - 0.5) > 1e-3                     # leave exact ties aside
        np.testing.assert_array_equal(target[decided], np.round(soft)[decided])
        compared += decided.sum()
    assert compared > 0.99 * targets.size


def test_aligned_targets_need_the_image_shape():
    with pytest.raises(ValueError, match="image_shape"):
        detection_targets(tf.zeros([2, 4]), tf.ones([1], tf.int32), tf.zeros([1, 4]),
                          tf.zeros([8, 8, 1]), train_rois_per_image=2, roi_positive_ratio=0.5,
                          bbox_std_dev=[1, 1, 1, 1], mask_shape=[4, 4], use_mini_mask=False,
                          roi_align_mode="aligned")


# ------------------------------------------------------------------------ the models
@pytest.mark.slow
def test_models_built_in_aligned_mode_train_and_detect(tmp_path, tiny_shapes):
    import mrcnn.model as modellib
    from mrcnn.data import DataGenerator

    from conftest import TinyConfig

    class Aligned(TinyConfig):
        ROI_ALIGN_MODE = "aligned"
        SAMPLING_RATIO = 3

    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("training", Aligned(), str(tmp_path))
    for name in ("roi_align_classifier", "roi_align_mask"):
        layer = model.keras_model.get_layer(name)
        assert (layer.mode, layer.sampling_ratio) == ("aligned", 3), name
    targets = model.keras_model.get_layer("proposal_targets")
    assert targets.settings["roi_align_mode"] == "aligned"
    assert targets.settings["image_shape"] == [64, 64]
    model.compile(0.01, total_steps=1)
    logs = model.keras_model.train_step(DataGenerator(tiny_shapes, model.config, seed=0)[0])
    assert np.isfinite(float(logs["loss"])) and float(logs["mrcnn_mask_loss"]) > 0

    inference = modellib.MaskRCNN("inference", Aligned(), str(tmp_path))
    assert inference.keras_model.get_layer("roi_align_mask").mode == "aligned"
    result = inference.detect([tiny_shapes.load_image(0)])[0]
    assert result["masks"].shape[:2] == (64, 64)

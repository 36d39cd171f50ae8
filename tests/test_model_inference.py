"""MaskRCNN inference helpers: anchors, molding, unmolding, detect_molded, run_graph."""
import keras
import numpy as np
import pytest

import mrcnn.model as modellib
from mrcnn import inference, utils
from mrcnn.data import load_image_gt, mold_image

from conftest import TinyConfig


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    keras.utils.set_random_seed(0)   # the random weights
    return modellib.MaskRCNN("inference", TinyConfig(), str(tmp_path_factory.mktemp("m")))


def test_get_anchors_equal_numpy_pyramid_and_graph_anchors(model):
    config = model.config
    anchors = model.get_anchors(config.IMAGE_SHAPE)
    shapes = utils.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    expected = utils.norm_boxes(utils.generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, shapes, config.BACKBONE_STRIDES,
        config.RPN_ANCHOR_STRIDE), config.IMAGE_SHAPE[:2])
    np.testing.assert_allclose(anchors, expected, atol=1e-6)
    # 64x64 image: feature maps 16, 8, 4, 2, 1 with 3 ratios each
    assert anchors.shape == ((256 + 64 + 16 + 4 + 1) * 3, 4)
    image = np.zeros((64, 64, 3), np.uint8)
    outputs = model.run_graph([image], [("anchors", model.keras_model.get_layer("anchors").output)])
    np.testing.assert_allclose(outputs["anchors"].reshape(-1, 4), expected, atol=1e-6)


def test_run_graph_returns_named_intermediate_tensors(model):
    image = np.random.RandomState(0).randint(0, 255, (64, 64, 3)).astype(np.uint8)
    outputs = model.run_graph([image], [
        ("proposals", model.keras_model.get_layer("ROI").output),
        ("detections", model.keras_model.get_layer("mrcnn_detection").output),
    ])
    assert outputs["proposals"].shape == (1, TinyConfig.POST_NMS_ROIS_INFERENCE, 4)
    assert outputs["detections"].shape == (1, TinyConfig.DETECTION_MAX_INSTANCES, 6)
    proposals = outputs["proposals"][0]
    assert np.all(proposals >= 0) and np.all(proposals <= 1)


def test_mold_inputs_resizes_and_describes_each_image(model):
    image = np.full((32, 48, 3), 200, np.uint8)
    molded, metas, windows = model.mold_inputs([image])
    assert molded.shape == (1, 64, 64, 3)
    # The long side 48 -> 64: scale 4/3, height round(32 * 4/3) = 43, so 21 rows of padding,
    # 10 above and 11 below: window rows 10..53 (exclusive), all 64 columns.
    assert list(windows[0]) == [10, 0, 53, 64]
    np.testing.assert_allclose(molded[0, 20, 20], 200 - np.asarray(TinyConfig.MEAN_PIXEL),
                               rtol=1e-5)
    np.testing.assert_allclose(molded[0, 0, 0], -np.asarray(TinyConfig.MEAN_PIXEL), rtol=1e-5)
    assert list(metas[0, 1:4]) == [32, 48, 3] and list(metas[0, 4:7]) == [64, 64, 3]
    assert metas[0, 11] == pytest.approx(4 / 3)


def test_unmold_detections_maps_boxes_and_pastes_masks_by_hand():
    # A 32x32 original image upscaled 2x into the whole 64x64 molded image.
    detections = np.zeros((4, 6), np.float32)
    # A box covering molded pixels y 8..24 (exclusive 24), x 16..48; normalised with
    # (box - [0, 0, 1, 1]) / 63.
    detections[0] = [8 / 63, 16 / 63, 23 / 63, 47 / 63, 2, 0.9]
    detections[1] = [0.5, 0.5, 0.5, 0.5, 1, 0.8]      # zero area: dropped
    masks = np.zeros((4, 28, 28, 4), np.float32)
    masks[0, :, :, 2] = 1.0                             # the class-2 mask fills the box
    masks[0, :, :14, 1] = 1.0                           # another class's mask: ignored
    boxes, class_ids, scores, full = inference.unmold_detections(
        detections, masks, (32, 32, 3), (64, 64, 3), (0, 0, 64, 64))
    # Original pixels: half of the molded ones.
    np.testing.assert_array_equal(boxes, [[4, 8, 12, 24]])
    np.testing.assert_array_equal(class_ids, [2])
    np.testing.assert_allclose(scores, [0.9])
    assert full.shape == (32, 32, 1)
    expected = np.zeros((32, 32), bool)
    expected[4:12, 8:24] = True
    np.testing.assert_array_equal(full[..., 0], expected)


def test_paste_masks_thresholds_at_one_half():
    mask = np.zeros((1, 4, 4), np.float32)
    mask[0, :, 2:] = 0.9          # right half on
    full = inference.paste_masks(mask, np.array([[2, 2, 10, 10]]), (12, 12))
    expected = np.zeros((12, 12), bool)
    expected[2:10, 6:10] = True   # the right half of the 8x8 box
    np.testing.assert_array_equal(full[..., 0], expected)


def test_detect_molded_equals_detect(model, tiny_shapes):
    config = model.config
    image_ids = [0, 1]
    molded, metas = [], []
    for image_id in image_ids:
        image, meta, _, _, _ = load_image_gt(tiny_shapes, config, image_id)
        molded.append(mold_image(image, config))
        metas.append(meta)
    from_molded = model.detect_molded(np.stack(molded), np.stack(metas))
    from_images = model.detect([tiny_shapes.load_image(i) for i in image_ids])
    for a, b in zip(from_molded, from_images):
        np.testing.assert_array_equal(a["class_ids"], b["class_ids"])
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5)
        np.testing.assert_array_equal(a["rois"], b["rois"])


def test_detect_rejects_a_model_in_training_mode(tmp_path):
    training_model = modellib.MaskRCNN("training", TinyConfig(), str(tmp_path))
    with pytest.raises(ValueError, match="mode='inference'"):
        training_model.detect([np.zeros((64, 64, 3), np.uint8)])


def test_log_prints_shape_and_range(capsys):
    modellib.log("values", np.array([[1.0, -2.0], [3.0, 4.0]]))
    out = capsys.readouterr().out
    assert "values" in out and "(2, 2)" in out and "-2.00000" in out and "4.00000" in out


def test_mold_inputs_converts_grey_and_rgba_and_names_a_bad_image():
    config = TinyConfig()
    rgb = np.random.RandomState(1).randint(0, 255, (40, 56, 3)).astype(np.uint8)
    grey = rgb[..., 0]
    rgba = np.concatenate([rgb, np.full((40, 56, 1), 7, np.uint8)], axis=-1)
    molded, _, _ = inference.mold_inputs([np.repeat(grey[..., None], 3, -1), rgb], config)
    converted, _, _ = inference.mold_inputs([grey, rgba], config)
    np.testing.assert_array_equal(converted, molded)
    assert inference.as_rgb(grey[..., None].astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match=r"image 1: the image is 40x56x5"):
        inference.mold_inputs([rgb, np.zeros((40, 56, 5), np.uint8)], config)


UPSTREAM_OUTPUTS = ("detections", "mrcnn_class", "mrcnn_bbox", "mrcnn_mask", "rpn_rois",
                    "rpn_class", "rpn_bbox")


def _random_images(count, seed=4):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 255, (64, 64, 3)).astype(np.uint8) for _ in range(count)]


def _background_bias(model, value):
    """Set the background logit's bias of the classifier; returns the previous biases.

    Random weights may let the background win every ROI (no detections at all); a bias
    of -10 makes each ROI's class one of the foreground classes, varying with the ROI.
    """
    bias = model.keras_model.get_layer("mrcnn_class_logits").bias
    previous = bias.numpy()
    bias.assign(np.concatenate([[value], previous[1:]]).astype(np.float32))
    return previous


def test_detection_masks_output_is_each_detections_class_channel(model):
    import tensorflow as tf

    molded, metas, _ = model.mold_inputs(_random_images(2))
    previous = _background_bias(model, -10.0)
    try:
        outputs = model.keras_model({"input_image": tf.constant(molded),
                                     "input_image_meta": tf.constant(metas)}, training=False)
    finally:
        model.keras_model.get_layer("mrcnn_class_logits").bias.assign(previous)
    assert set(UPSTREAM_OUTPUTS) < set(outputs)
    detections = outputs["detections"].numpy()
    mrcnn_mask = outputs["mrcnn_mask"].numpy()
    picked = outputs["detection_masks"].numpy()
    assert picked.shape == mrcnn_mask.shape[:4] and picked.dtype == np.float32
    classes_seen = set()
    for b in range(2):
        for d in range(detections.shape[1]):
            class_id = int(detections[b, d, 4])
            expected = mrcnn_mask[b, d, :, :, class_id] if class_id else np.zeros((28, 28))
            np.testing.assert_array_equal(picked[b, d], expected)
            classes_seen.add(class_id)
    assert len(classes_seen - {0}) >= 2   # seeded weights: classes 1 (3 rows) and 3 (13)


def test_detect_feeds_partial_batches_unpadded_and_traces_once(tmp_path, monkeypatch):
    # BATCH_SIZE 2, five images: batches of 2, 2 and 1 (not padded to 2), one trace for
    # every batch size; each image's detections are those of the image alone.
    keras.utils.set_random_seed(1)
    detector = modellib.MaskRCNN("inference", TinyConfig(), str(tmp_path))
    _background_bias(detector, -10.0)
    images = _random_images(5)
    sizes, predict = [], detector._predict

    def spy(molded, metas):
        sizes.append((len(molded), len(metas)))
        return predict(molded, metas)

    monkeypatch.setattr(detector, "_predict", spy)
    together = detector.detect(images)
    assert sizes == [(2, 2), (2, 2), (1, 1)]
    assert detector._predict_fn.experimental_get_tracing_count() == 1
    alone = [detector.detect([image])[0] for image in images]
    assert detector._predict_fn.experimental_get_tracing_count() == 1
    assert sum(len(r["class_ids"]) for r in together) > 0
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a["class_ids"], b["class_ids"])
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(a["rois"], b["rois"])
        np.testing.assert_array_equal(a["masks"], b["masks"])
    sizes.clear()
    molded, metas, _ = detector.mold_inputs(images[:3])
    from_molded = detector.detect_molded(molded, metas)
    assert sizes == [(2, 2), (1, 1)]
    for a, b in zip(from_molded, together[:3]):
        np.testing.assert_array_equal(a["rois"], b["rois"])


def test_the_graph_takes_more_images_than_batch_size(model):
    # BATCH_SIZE is 2; a batch of 3 runs and row 2 equals that image run alone.
    molded, metas, _ = model.mold_inputs(_random_images(3, seed=6))
    detections, masks = model._predict(molded, metas)
    assert detections.shape == (3, TinyConfig.DETECTION_MAX_INSTANCES, 6)
    assert masks.shape == (3, TinyConfig.DETECTION_MAX_INSTANCES, 28, 28)
    alone_detections, alone_masks = model._predict(molded[2:], metas[2:])
    np.testing.assert_allclose(detections[2], alone_detections[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(masks[2], alone_masks[0], atol=1e-5)


def test_unmold_takes_class_masks_or_every_class(model):
    detections = np.zeros((3, 6), np.float32)
    detections[0] = [0.1, 0.1, 0.6, 0.5, 3, 0.9]
    detections[1] = [0.4, 0.2, 0.9, 0.9, 1, 0.8]
    every_class = np.random.RandomState(9).uniform(size=(3, 28, 28, 4)).astype(np.float32)
    picked = np.stack([every_class[0, :, :, 3], every_class[1, :, :, 1],
                       np.zeros((28, 28), np.float32)])
    a = inference.unmold_detections(detections, every_class, (50, 60, 3), (64, 64, 3),
                                    (7, 0, 57, 64))
    b = inference.unmold_detections(detections, picked, (50, 60, 3), (64, 64, 3),
                                    (7, 0, 57, 64))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a[3].shape == (50, 60, 2) and a[3].any()


def test_subtract_mean_pixel_is_mold_image_bit_for_bit():
    config = TinyConfig()
    rng = np.random.RandomState(11)
    for image in (rng.randint(0, 256, (37, 53, 3)).astype(np.uint8),
                  rng.uniform(0, 255, (16, 8, 3)).astype(np.float32),
                  rng.randint(0, 256, (64, 64, 3)).astype(np.uint8)[:, ::2]):  # a view
        molded = inference.subtract_mean_pixel(image, config)
        assert molded.dtype == np.float32 and molded.shape == image.shape
        np.testing.assert_array_equal(molded, mold_image(image, config))


def test_pasted_masks_are_each_instance_in_its_own_plane():
    # Two overlapping boxes: each plane holds only its own box.
    masks = np.ones((2, 28, 28), np.float32)
    full = inference.paste_masks(masks, np.array([[0, 0, 6, 6], [3, 3, 9, 9]]), (10, 10))
    assert full.shape == (10, 10, 2) and full.dtype == bool and full.flags.writeable
    for i, (y1, x1, y2, x2) in enumerate([(0, 0, 6, 6), (3, 3, 9, 9)]):
        expected = np.zeros((10, 10), bool)
        expected[y1:y2, x1:x2] = True
        np.testing.assert_array_equal(full[:, :, i], expected)
    assert inference.paste_masks(masks[:0], np.zeros((0, 4), int), (10, 10)).shape == (10, 10, 0)

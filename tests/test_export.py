"""SavedModel export: raw images in, detections in original pixels out, no mrcnn needed.

The exported model runs in a fresh Python process that cannot import mrcnn (nor keras),
and its outputs are compared with `MaskRCNN.detect` on the same images.

Tolerances: the molding of both paths is identical for the test images (one needs no
resize, the other a 2x enlargement whose bilinear weights 1/4, 3/4 are exact in float),
so the graph sees the same input and class ids and scores must agree to float rounding.
Boxes may differ by 1 px where a rounded coordinate lies within float rounding of .5
(the export computes the window shift in float32 as unmold does, but in TF's order).
Masks come out box-local (each detection's 28x28 class mask) and are pasted here with
`inference.paste_masks`, the helper detect() uses, so IoU >= 0.99 per detection (1.0
measured). `export.paste_masks`, the TensorFlow paste, uses OpenCV's bilinear weights but
sums them as two matrix products: only pixels within float rounding of 0.5 can flip.
"""
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import export, inference
from mrcnn.config import Config
from mrcnn.shapes import ShapesDataset
import mrcnn.model as modellib


class ExportConfig(Config):
    NAME = "export"
    NUM_CLASSES = 4
    IMAGES_PER_GPU = 1
    BACKBONE = "resnet18"
    IMAGE_MIN_DIM = IMAGE_MAX_DIM = 128
    TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 32
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    POST_NMS_ROIS_INFERENCE = 64
    DETECTION_MAX_INSTANCES = 12
    DETECTION_MIN_CONFIDENCE = 0.0
    DETECTION_NMS_THRESHOLD = 0.7


def _scale_kernel(layer, factor):
    layer.kernel.assign(np.asarray(layer.kernel.numpy()) * factor)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A random inference model whose detections and masks are not degenerate.

    With zero biases and identity BatchNorm the graph is positively homogeneous, so
    scaling conv1 down brings the features (about 50 at random initialisation) to about
    1, where scores and box deltas are moderate; a larger mask kernel spreads the mask
    probabilities away from 0.5.
    """
    keras.utils.set_random_seed(0)
    mask_rcnn = modellib.MaskRCNN("inference", ExportConfig(),
                                  str(tmp_path_factory.mktemp("logs")))
    _scale_kernel(mask_rcnn.keras_model.get_layer("conv1"), 0.02)
    _scale_kernel(mask_rcnn.keras_model.get_layer("mrcnn_mask"), 30.0)
    return mask_rcnn


@pytest.fixture(scope="module")
def images():
    """Shapes images: a 96x128 one (no resize) and two 64x48 ones (resized 2x)."""
    large, small = ShapesDataset(), ShapesDataset()
    large.load_shapes(1, 96, 128, seed=1)
    small.load_shapes(2, 64, 48, seed=2)
    large.prepare()
    small.prepare()
    return {"large": large.load_image(0), "small": small.load_image(0),
            "small2": small.load_image(1)}


# --- shared with test_export_onnx.py and test_export_tflite.py -------------------------

def random_model(model_dir, config=None):
    """The random, non-degenerate model of test_export (scaled conv1 and mask kernels):
    moderate scores (unscaled, many saturate at exactly 1.0) and masks away from 0.5."""
    keras.utils.set_random_seed(0)
    mask_rcnn = modellib.MaskRCNN("inference", config or ExportConfig(), str(model_dir))
    _scale_kernel(mask_rcnn.keras_model.get_layer("conv1"), 0.02)
    _scale_kernel(mask_rcnn.keras_model.get_layer("mrcnn_mask"), 30.0)
    return mask_rcnn


def shapes_image(height, width, seed):
    dataset = ShapesDataset()
    dataset.load_shapes(1, height, width, seed=seed)
    dataset.prepare()
    return dataset.load_image(0)


def assert_equal_to_detect(expected, outputs, row, image_shape):
    """Same count and class ids, boxes within 1 px, scores within 1e-4, mask IoU >= 0.99."""
    count = int(outputs["num_detections"][row])
    assert count == len(expected["class_ids"]) > 0
    np.testing.assert_array_equal(outputs["class_ids"][row, :count], expected["class_ids"])
    np.testing.assert_allclose(outputs["scores"][row, :count], expected["scores"],
                               rtol=0, atol=1e-4)
    assert np.abs(outputs["boxes"][row, :count] - expected["rois"]).max() <= 1
    pasted = inference.paste_masks(outputs["masks"][row, :count],
                                   outputs["boxes"][row, :count], image_shape)
    assert pasted.shape == expected["masks"].shape
    for i in range(count):
        assert _mask_iou(pasted[..., i], expected["masks"][..., i]) >= 0.99, i
    assert expected["masks"].any()
    # Rows after the detections are zero, masks included: nothing image-sized is padded.
    for name in ("boxes", "class_ids", "scores", "masks"):
        assert not outputs[name][row, count:].any(), name


_SERVE_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["mrcnn"] = None   # any `import mrcnn` (or keras) now raises ImportError
    sys.modules["keras"] = None
    import numpy as np
    import tensorflow as tf
    try:
        import mrcnn  # noqa: F401
        blocked = False
    except ImportError:
        blocked = True
    export_dir, inputs, outputs = sys.argv[1:4]
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    data = np.load(inputs)
    results = {}
    for name in data.files:
        for key, value in serve(images=tf.constant(data[name])).items():
            results[name + "/" + key] = value.numpy()
    np.savez(outputs, **results)
    print(json.dumps({"mrcnn_blocked": blocked}))
""")


@pytest.fixture(scope="module")
def served(model, images, tmp_path_factory):
    """Outputs of the SavedModel, run in a clean process, for three calls."""
    root = tmp_path_factory.mktemp("export")
    export_dir = str(root / "saved_model")
    export.export_saved_model(model, export_dir)
    batches = {"large": images["large"][None], "small": images["small"][None],
               "pair": np.stack([images["small"], images["small2"]])}
    np.savez(root / "inputs.npz", **batches)
    process = subprocess.run(
        [sys.executable, "-I", "-c", _SERVE_SCRIPT, export_dir, str(root / "inputs.npz"),
         str(root / "outputs.npz")], cwd=str(root), capture_output=True, text=True,
        timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    status = json.loads(process.stdout.strip().splitlines()[-1])
    data = np.load(root / "outputs.npz")
    outputs = {}
    for key in data.files:
        name, field = key.split("/")
        outputs.setdefault(name, {})[field] = data[key]
    return status, outputs


def _mask_iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def _assert_same_detections(expected, outputs, row):
    count = int(outputs["num_detections"][row])
    assert count == len(expected["class_ids"]) > 0
    np.testing.assert_array_equal(outputs["class_ids"][row, :count], expected["class_ids"])
    np.testing.assert_allclose(outputs["scores"][row, :count], expected["scores"],
                               rtol=1e-5, atol=1e-6)
    assert np.abs(outputs["boxes"][row, :count] - expected["rois"]).max() <= 1
    masks = inference.paste_masks(outputs["masks"][row, :count],
                                  outputs["boxes"][row, :count], expected["masks"].shape)
    assert masks.shape == expected["masks"].shape
    for i in range(count):
        assert _mask_iou(masks[..., i], expected["masks"][..., i]) >= 0.99, i
    assert not outputs["masks"][row, count:].any()
    assert not outputs["class_ids"][row, count:].any()


def test_saved_model_loads_without_mrcnn(served):
    status, outputs = served
    assert status["mrcnn_blocked"]
    assert set(outputs["pair"]) == set(export.SERVING_OUTPUTS)
    # Box-local mask probabilities: nothing grows with the image.
    assert outputs["pair"]["masks"].dtype == np.float32
    assert outputs["pair"]["masks"].shape == (2, ExportConfig.DETECTION_MAX_INSTANCES, 28, 28)
    assert outputs["large"]["masks"].shape == (1, ExportConfig.DETECTION_MAX_INSTANCES, 28, 28)


def test_exported_detections_match_detect_for_two_sizes(model, images, served):
    _, outputs = served
    for name in ("large", "small"):
        expected = model.detect([images[name]])[0]
        _assert_same_detections(expected, outputs[name], 0)
        assert expected["masks"].any()


def test_a_batch_gives_each_image_its_own_detections(model, images, served):
    _, outputs = served
    expected = model.detect([images["small"], images["small2"]])
    for row in range(2):
        _assert_same_detections(expected[row], outputs["pair"], row)
    assert not np.array_equal(outputs["pair"]["boxes"][0], outputs["pair"]["boxes"][1])


# --- the TF molding and unmolding against the numpy path -------------------------------

@pytest.mark.parametrize("shape, exact", [((64, 48), True), ((96, 128), True),
                                          ((33, 129), True), ((50, 70), False),
                                          ((200, 300), False)])
def test_molding_matches_resize_image(shape, exact):
    config = ExportConfig()
    image = np.random.RandomState(sum(shape)).randint(0, 256, shape + (3,)).astype(np.uint8)
    molded, metas, windows = inference.mold_inputs([image], config)
    tf_molded, tf_meta, tf_window = export.mold_images(tf.constant(image[None]), config)
    np.testing.assert_array_equal(tf_meta.numpy(), metas)
    np.testing.assert_array_equal(tf_window.numpy(), windows[0])
    difference = np.abs(tf_molded.numpy() - molded)
    if exact:
        assert difference.max() == 0
    else:
        # TF's and OpenCV's float32 interpolation round differently, then truncation.
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


def test_a_crop_config_molds_as_pad64_like_detect():
    # Training crops of a 60x200 image: scale 128/60, 128x427 scaled, then a random
    # 128x128 crop. Inference keeps the scale and the whole image: 128x448, padded 10|11.
    image = np.random.RandomState(5).randint(0, 256, (60, 200, 3)).astype(np.uint8)
    crop, pad64 = ExportConfig(), ExportConfig()
    crop.IMAGE_RESIZE_MODE, pad64.IMAGE_RESIZE_MODE = "crop", "pad64"
    tf_molded, tf_meta, tf_window = export.mold_images(tf.constant(image[None]), crop)
    pad_molded, pad_meta, pad_window = export.mold_images(tf.constant(image[None]), pad64)
    _, metas, windows = inference.mold_inputs([image], crop)
    assert tf_molded.shape == (1, 128, 448, 3)
    assert list(tf_window.numpy()) == [0, 10, 128, 437] == list(windows[0])
    np.testing.assert_array_equal(tf_meta.numpy(), metas)
    np.testing.assert_array_equal(tf_molded.numpy(), pad_molded.numpy())
    np.testing.assert_array_equal(tf_meta.numpy(), pad_meta.numpy())


@pytest.mark.parametrize("shape", [(5000, 3), (5000, 40), (3, 5000)])
def test_molding_keeps_two_pixels_of_a_very_elongated_image(shape):
    # 128/5000 of 3 or 40 pixels rounds to 0 or 1; both paths keep 2 (utils.MIN_SCALED_SIDE)
    # and put them in the middle of the 128 square: 63 pixels of padding on either side.
    image = np.random.RandomState(6).randint(0, 256, shape + (3,)).astype(np.uint8)
    config = ExportConfig()
    with pytest.warns(inference.ImageSizeWarning, match="image 0 is"):
        _, metas, windows = inference.mold_inputs([image], config)
    _, tf_meta, tf_window = export.mold_images(tf.constant(image[None]), config)
    expected = [0, 63, 128, 65] if shape[0] > shape[1] else [63, 0, 65, 128]
    assert list(tf_window.numpy()) == expected == list(windows[0])
    np.testing.assert_array_equal(tf_meta.numpy(), metas)


def test_paste_masks_matches_the_numpy_paste():
    rng = np.random.RandomState(7)
    height, width = 60, 80
    small = rng.uniform(0, 1, (6, 7, 7)).astype(np.float32)
    masks = np.stack([np.kron(m, np.ones((4, 4), np.float32)) for m in small])  # 28x28
    boxes = np.array([[0, 0, 60, 80], [10, 20, 14, 23], [5, 5, 50, 33],
                      [30, 60, 60, 80], [0, 70, 1, 80], [22, 11, 51, 39]], np.int32)
    expected = inference.paste_masks(masks, boxes, (height, width))
    got = export.paste_masks(tf.constant(masks), tf.constant(boxes), height, width).numpy()
    assert got.shape == (6, height, width)
    for i in range(len(boxes)):
        assert expected[..., i].any()
        differing = got[i] != expected[..., i]
        assert differing.sum() <= 2, (i, differing.sum())
        y1, x1, y2, x2 = boxes[i]
        outside = np.ones((height, width), bool)
        outside[y1:y2, x1:x2] = False
        assert not got[i][outside].any()


def test_unmold_matches_the_numpy_unmold():
    """Boxes shifted out of the window, zero-area and padding rows dropped, masks pasted."""
    config = ExportConfig()
    original, molded_shape, window = (64, 48, 3), (128, 128, 3), np.array([0, 16, 128, 112])
    detections = np.zeros((5, 6), np.float32)
    detections[0] = [0.10, 0.20, 0.60, 0.70, 2, 0.9]
    detections[1] = [0.30, 0.30, 0.28, 0.50, 1, 0.8]     # y1 = y2 = 19 px: zero area
    detections[2] = [0.50, 0.15, 0.95, 0.80, 3, 0.7]
    # rows 3, 4: padding
    rng = np.random.RandomState(8)
    mask = rng.uniform(0, 1, (5, 28, 28, config.NUM_CLASSES)).astype(np.float32)
    boxes, class_ids, scores, full = inference.unmold_detections(
        detections, mask, original, molded_shape, window)
    out = export.unmold_detections(tf.constant(detections[None]), tf.constant(mask[None]),
                                   tf.constant(original[:2]), tf.constant(molded_shape[:2]),
                                   tf.constant(window, tf.int32))
    assert int(out["num_detections"][0]) == len(class_ids) == 2
    np.testing.assert_array_equal(out["class_ids"][0, :2], class_ids)
    np.testing.assert_array_equal(out["scores"][0, :2], scores)
    np.testing.assert_array_equal(out["boxes"][0, :2], boxes)
    pasted = inference.paste_masks(out["masks"][0, :2].numpy(), boxes, original)
    np.testing.assert_array_equal(pasted, full)
    assert not out["masks"][0, 2:].numpy().any() and not out["boxes"][0, 2:].numpy().any()


def test_unmold_takes_the_graphs_class_masks_or_every_class():
    """detection_masks [B, D, mh, mw] and mrcnn_mask [B, D, mh, mw, NC] unmold alike."""
    detections = np.zeros((2, 4, 6), np.float32)
    detections[0, 0] = [0.10, 0.20, 0.60, 0.70, 2, 0.9]
    detections[0, 1] = [0.50, 0.15, 0.95, 0.80, 3, 0.7]
    detections[1, 0] = [0.20, 0.20, 0.90, 0.50, 1, 0.8]
    every_class = np.random.RandomState(10).uniform(0, 1, (2, 4, 28, 28, 4)).astype(np.float32)
    class_ids = detections[..., 4].astype(int)
    picked = np.take_along_axis(every_class, class_ids[:, :, None, None, None], axis=4)[..., 0]
    picked[class_ids == 0] = 0
    args = (tf.constant([64, 48]), tf.constant([128, 128]), tf.constant([0, 16, 128, 112]))
    a = export.unmold_detections(tf.constant(detections), tf.constant(every_class), *args)
    b = export.unmold_detections(tf.constant(detections), tf.constant(picked), *args)
    assert list(a["num_detections"].numpy()) == [2, 1]
    for name in export.SERVING_OUTPUTS:
        np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())
    assert a["masks"].numpy()[0, :2].any(axis=(1, 2)).all()

"""The keypoint head: settings checked, layer names and shapes, the geometry of its
upsampling, the graphs with and without it, one training step, detect()'s keypoints and
checkpoints without a keypoint head."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import mrcnn.model as modellib
from mrcnn import training
from mrcnn.config import ConfigError
from mrcnn.nn.keypoint_head import keypoint_head

from conftest import TinyConfig
from keypoint_helpers import TinyKeypointConfig, hand_keypoint_batch


class KeypointOnlyConfig(TinyKeypointConfig):
    KEYPOINT_WITH_MASKS = False


class InferenceKeypointConfig(TinyKeypointConfig):
    IMAGES_PER_GPU = 1


def _config(**settings):
    return type("Custom", (TinyKeypointConfig,), settings)


@pytest.mark.parametrize("settings, attribute", [
    ({"NUM_KEYPOINTS": -1}, "NUM_KEYPOINTS"),
    ({"NUM_KEYPOINTS": 2.0}, "NUM_KEYPOINTS"),
    ({"KEYPOINT_NAMES": ["a", "b"]}, "KEYPOINT_NAMES"),
    ({"KEYPOINT_NAMES": ["a", "a", "b"], "KEYPOINT_FLIP_MAP": ()}, "KEYPOINT_NAMES"),
    ({"KEYPOINT_FLIP_MAP": [("left", "elbow")]}, "KEYPOINT_FLIP_MAP"),
    ({"KEYPOINT_FLIP_MAP": [("left", "left")]}, "KEYPOINT_FLIP_MAP"),
    ({"KEYPOINT_FLIP_MAP": [("left", "right"), ("right", "top")]}, "KEYPOINT_FLIP_MAP"),
    ({"KEYPOINT_NAMES": None}, "KEYPOINT_FLIP_MAP"),
    ({"KEYPOINT_MASK_SHAPE": [8, 8]}, "KEYPOINT_MASK_SHAPE"),
    ({"KEYPOINT_HEAD_CONV_SIZE": 0}, "KEYPOINT_HEAD_CONV_SIZE"),
    ({"KEYPOINT_LOSS_WEIGHT": -1.0}, "KEYPOINT_LOSS_WEIGHT"),
    ({"LOSS_WEIGHTS": {"mrcnn_keypoint_loss": 3.0}}, "LOSS_WEIGHTS"),
    ({"NUM_KEYPOINTS": 0, "KEYPOINT_WITH_MASKS": False}, "KEYPOINT_WITH_MASKS"),
])
def test_bad_keypoint_settings_name_the_attribute(settings, attribute):
    with pytest.raises(ConfigError, match=rf"^{attribute}\b"):
        _config(**settings)()


def test_good_keypoint_settings_and_the_default_pass():
    _config(LOSS_WEIGHTS={"mrcnn_keypoint_loss": 1.0})()
    _config(KEYPOINT_NAMES=None, KEYPOINT_FLIP_MAP=())()
    # Without keypoints the other keypoint settings are not read.
    TinyConfig.__new__(TinyConfig).validate()
    _config(NUM_KEYPOINTS=0, KEYPOINT_NAMES=["x"], KEYPOINT_MASK_SHAPE=[1, 1])()


def test_head_shapes_and_names():
    pooled = keras.Input((3, 5, 5, 4), batch_size=2)
    rois = keras.Input((3, 4), batch_size=2)
    logits = keypoint_head(pooled, rois, num_keypoints=6, conv_count=3, channels=8)
    model = keras.Model([pooled, rois], logits)
    assert tuple(logits.shape) == (2, 3, 20, 20, 6)
    weighted = [layer.name for layer in model.layers if layer.weights]
    assert weighted == ["mrcnn_kp_conv1", "mrcnn_kp_conv2", "mrcnn_kp_conv3", "mrcnn_kp_deconv"]
    assert all(layer.name.startswith("mrcnn_kp_") for layer in model.layers
               if not isinstance(layer, keras.layers.InputLayer))
    out = model([np.ones((2, 3, 5, 5, 4), np.float32), np.zeros((2, 3, 4), np.float32)])
    assert out.shape == (2, 3, 20, 20, 6) and out.dtype == tf.float32


def test_upsampling_keeps_each_pooled_bin_under_its_four_heatmap_cells():
    # One pooled bin (i, j) lit, head without convs, the deconv a box filter: the
    # heatmap's centre of mass is the centre of cells 4i..4i+3 (4j..4j+3).
    pooled = keras.Input((1, 6, 6, 1), batch_size=1)
    rois = keras.Input((1, 4), batch_size=1)
    model = keras.Model([pooled, rois], keypoint_head(pooled, rois, 1, conv_count=0))
    deconv = model.get_layer("mrcnn_kp_deconv")
    deconv.set_weights([np.ones_like(w) if w.ndim == 4 else np.zeros_like(w)
                        for w in deconv.get_weights()])
    for i, j in [(2, 3), (1, 4)]:
        x = np.zeros((1, 1, 6, 6, 1), np.float32)
        x[0, 0, i, j, 0] = 1.0
        heat = np.asarray(model([x, np.zeros((1, 1, 4), np.float32)]))[0, 0, :, :, 0]
        rows, columns = np.mgrid[:24, :24]
        centre = [np.sum(heat * rows) / heat.sum(), np.sum(heat * columns) / heat.sum()]
        np.testing.assert_allclose(centre, [4 * i + 1.5, 4 * j + 1.5], atol=1e-4)


def _graph_layers(model):
    return {layer.name for layer in training.iter_layers(model.keras_model)}


@pytest.fixture(scope="module")
def train_model(tmp_path_factory):
    return modellib.MaskRCNN("training", TinyKeypointConfig(),
                             str(tmp_path_factory.mktemp("kp_train")))


def test_training_graph_outputs(train_model):
    outputs = train_model.keras_model.output
    k, rows = 3, int(16 * 0.33)
    assert "input_gt_keypoints" in train_model.keras_model.input
    assert tuple(train_model.keras_model.input["input_gt_keypoints"].shape) == (None, None,
                                                                                k, 3)
    assert tuple(outputs["mrcnn_keypoint_logits"].shape) == (None, rows, 16, 16, k)
    assert tuple(outputs["target_keypoints"].shape) == (None, rows, k)
    assert outputs["target_keypoints"].dtype == "int32"
    assert "mrcnn_mask" in outputs
    assert train_model.keras_model.loss_names[-1] == "mrcnn_keypoint_loss"


def test_one_training_step_is_finite_and_moves_the_keypoint_head(train_model):
    keras.utils.set_random_seed(0)
    batch = hand_keypoint_batch(train_model.config)
    outputs = train_model.keras_model(batch, training=True)
    # Both GT boxes join the proposals, so every image has positives with labelled
    # keypoints (2 of 3 per instance: v = 0 for the third).
    weights = np.asarray(outputs["target_keypoint_weights"])
    assert weights.sum() >= 8 and np.all(weights[..., 2] == 0)
    training.set_trainable(train_model.keras_model, "heads")
    train_model.compile(0.01, total_steps=1)
    head = [layer for layer in training.iter_layers(train_model.keras_model)
            if layer.name.startswith("mrcnn_kp_") and layer.weights]
    before = [np.array(w) for layer in head for w in layer.get_weights()]
    logs = train_model.keras_model.train_step(batch)
    loss = float(logs["mrcnn_keypoint_loss"])
    # log(256) = 5.5 for a uniform heatmap; measured 6.6 at this seed's initialisation.
    assert np.isfinite(float(logs["loss"])) and 1.0 < loss < 50.0
    after = [np.array(w) for layer in head for w in layer.get_weights()]
    assert len(head) == 3
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


def test_a_checkpoint_without_keypoint_head_loads_by_name_reporting_it_missing(tmp_path,
                                                                             train_model):
    source = modellib.MaskRCNN("training", TinyConfig(), str(tmp_path))
    path = str(tmp_path / "mask_only.h5")
    source.save_weights(path)
    report = train_model.load_weights(path, by_name=True, verbose=0)
    assert sorted(n for n in report["missing"]) == ["mrcnn_kp_conv1", "mrcnn_kp_conv2",
                                                    "mrcnn_kp_deconv"]
    assert "mrcnn_mask" in report["loaded"] and "rpn_model" in report["loaded"]
    expected = source.keras_model.get_layer("mrcnn_mask").get_weights()
    loaded = train_model.keras_model.get_layer("mrcnn_mask").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(expected, loaded))


def test_keypoint_only_training_graph_has_no_mask_head(tmp_path):
    model = modellib.MaskRCNN("training", KeypointOnlyConfig(), str(tmp_path))
    outputs = model.keras_model.output
    assert not {"mrcnn_mask", "target_mask", "mask_class_ids"} & set(outputs)
    assert not any(name.startswith("mrcnn_mask") for name in _graph_layers(model))
    assert "mrcnn_mask_loss" not in model.keras_model.loss_names
    losses = training.compute_losses(hand_keypoint_batch(model.config),
                                     model.keras_model(hand_keypoint_batch(model.config),
                                                       training=True))
    assert set(losses) == set(model.keras_model.loss_names)
    assert all(np.isfinite(float(v)) for v in losses.values())


def test_without_keypoints_the_graphs_have_no_keypoint_layer_or_output(tmp_path):
    for mode in ("training", "inference"):
        model = modellib.MaskRCNN(mode, TinyConfig(), str(tmp_path))
        assert not any("kp" in name or "keypoint" in name for name in _graph_layers(model))
        assert not any("keypoint" in name for name in model.keras_model.output)
        assert "input_gt_keypoints" not in model.keras_model.input


@pytest.mark.parametrize("config_class", [InferenceKeypointConfig, KeypointOnlyConfig])
def test_detect_returns_keypoints_in_original_pixels_aligned_with_the_rois(tmp_path,
                                                                         config_class):
    class Config(config_class):
        IMAGES_PER_GPU = 1
    keras.utils.set_random_seed(1)
    model = modellib.MaskRCNN("inference", Config(), str(tmp_path))
    outputs = model.keras_model.output
    assert tuple(outputs["detection_keypoints"].shape) == (None, 8, 3, 3)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (50, 90, 3), dtype=np.uint8),
              rng.integers(0, 255, (70, 40, 3), dtype=np.uint8)]
    results = model.detect(images)
    for image, result in zip(images, results):
        keypoints = result["keypoints"]
        assert keypoints.dtype == np.float32
        assert keypoints.shape == (len(result["rois"]), 3, 3)
        assert np.all(keypoints[..., 0] >= 0) and np.all(keypoints[..., 0] <= image.shape[1] - 1)
        assert np.all(keypoints[..., 1] >= 0) and np.all(keypoints[..., 1] <= image.shape[0] - 1)
        assert np.all((keypoints[..., 2] > 0) & (keypoints[..., 2] <= 1))
        assert ("masks" in result) == Config.KEYPOINT_WITH_MASKS
    # Random weights with DETECTION_MIN_CONFIDENCE 0 detect something in some image.
    assert sum(len(r["rois"]) for r in results) > 0


def test_detect_molded_gives_the_keypoints_of_detect_with_aligned_pooling(tmp_path):
    class Aligned(InferenceKeypointConfig):
        ROI_ALIGN_MODE = "aligned"
    keras.utils.set_random_seed(2)
    model = modellib.MaskRCNN("inference", Aligned(), str(tmp_path))
    image = np.random.default_rng(3).integers(0, 255, (48, 72, 3), dtype=np.uint8)
    direct = model.detect([image])[0]
    molded, metas, _ = model.mold_inputs([image])
    again = model.detect_molded(molded, metas)[0]
    assert len(direct["rois"]) > 0
    np.testing.assert_array_equal(again["rois"], direct["rois"])
    np.testing.assert_allclose(again["keypoints"], direct["keypoints"], atol=1e-5)

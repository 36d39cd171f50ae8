"""keras.applications ResNet weights mapped onto the Caffe-named backbone.

No network: keras.applications models are built with weights=None and given seeded random
values (BatchNorm variances partly below 1e-3, where the epsilon fold must clip).
"""
import keras
import numpy as np
import pytest

from mrcnn import imagenet, weights_io
from mrcnn.config import Config
import mrcnn.model as modellib

from conftest import TinyResNet50Config

KERAS_EPS, OUR_EPS = 1.001e-5, 1e-3


def _randomise(model, seed):
    """Seeded, realistically scaled values for every weight of a keras.applications ResNet."""
    rng = np.random.RandomState(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            variance = rng.uniform(0.05, 2.0, channels)
            variance[: channels // 4] = rng.uniform(1e-6, 9e-4, channels // 4)  # clipped
            layer.set_weights([rng.uniform(0.5, 1.5, channels).astype("float32"),
                               rng.normal(0, 0.1, channels).astype("float32"),
                               rng.normal(0, 0.1, channels).astype("float32"),
                               variance.astype("float32")])
        elif isinstance(layer, keras.layers.Conv2D):
            kernel_shape = layer.kernel.shape
            fan_in = np.prod(kernel_shape[:3])
            layer.set_weights([
                rng.normal(0, np.sqrt(2.0 / fan_in), kernel_shape).astype("float32"),
                rng.normal(0, 0.05, layer.bias.shape).astype("float32")])


@pytest.fixture(scope="module")
def resnet50_pair():
    """(keras.applications ResNet50 with random values, our backbone with them converted)."""
    source = imagenet.keras_resnet("resnet50", weights=None)
    _randomise(source, seed=0)
    backbone = imagenet.backbone_model("resnet50")
    assigned = imagenet.transfer_weights(source, backbone)
    return source, backbone, assigned


def test_layer_names_follow_the_caffe_release():
    expected = {
        "conv1_conv": "conv1", "conv1_bn": "bn_conv1",
        "conv2_block1_0_conv": "res2a_branch1", "conv2_block1_0_bn": "bn2a_branch1",
        "conv2_block1_1_conv": "res2a_branch2a", "conv2_block3_3_bn": "bn2c_branch2c",
        "conv3_block2_2_conv": "res3b_branch2b", "conv4_block23_3_conv": "res4w_branch2c",
        "conv5_block3_1_bn": "bn5c_branch2a",
        "conv1_relu": None, "pool1_pool": None, "conv2_block1_out": None, "predictions": None,
    }
    assert {name: imagenet.caffe_layer_name(name) for name in expected} == expected


def test_every_weight_lands_in_its_counterpart(resnet50_pair):
    source, backbone, assigned = resnet50_pair
    ours = {layer.name: layer for layer in weights_io.weight_layers(backbone)}
    assert len(ours) == 2 * 53                       # 53 convs + 53 BNs in ResNet-50
    assert sorted(assigned) == sorted(ours)          # every one filled, each once
    clipped = 0
    for layer in source.layers:
        if not layer.weights:
            continue
        theirs = [np.asarray(w) for w in layer.get_weights()]
        mine = [np.asarray(w) for w in ours[imagenet.caffe_layer_name(layer.name)].get_weights()]
        if isinstance(layer, keras.layers.Conv2D):
            kernel = theirs[0][:, :, ::-1, :] if layer.name == "conv1_conv" else theirs[0]
            np.testing.assert_array_equal(mine[0], kernel)
            np.testing.assert_array_equal(mine[1], theirs[1])
            continue
        gamma, beta, mean, var = theirs
        gamma2, beta2, mean2, var2 = mine
        np.testing.assert_array_equal(beta2, beta)
        np.testing.assert_array_equal(mean2, mean)
        np.testing.assert_allclose(var2, np.maximum(var + KERAS_EPS - OUR_EPS, 0), atol=1e-7)
        np.testing.assert_allclose(gamma2 / np.sqrt(var2 + OUR_EPS),
                                   gamma / np.sqrt(var + KERAS_EPS), rtol=1e-5)
        unclipped = var + KERAS_EPS - OUR_EPS >= 0
        np.testing.assert_allclose(gamma2[unclipped], gamma[unclipped], rtol=1e-6)
        clipped += int((~unclipped).sum())
    assert clipped > 1000                            # the clipping branch was exercised


def _block_names(architecture_blocks):
    for stage, count in zip((2, 3, 4, 5), architecture_blocks):
        for index in range(1, count + 1):
            yield stage, index


def test_every_residual_block_computes_the_same_function(resnet50_pair):
    source, backbone, _ = resnet50_pair
    rng = np.random.RandomState(1)
    for stage, index in _block_names((3, 4, 6, 3)):
        letter = chr(ord("a") + index - 1)
        theirs = keras.Model(source.get_layer(f"conv{stage}_block{index}_1_conv").input,
                             source.get_layer(f"conv{stage}_block{index}_out").output)
        ours = keras.Model(backbone.get_layer(f"res{stage}{letter}_branch2a").input,
                           backbone.get_layer(f"res{stage}{letter}_out").output)
        channels = theirs.input.shape[-1]
        x = np.maximum(rng.normal(0, 1, (2, 9, 9, channels)), 0).astype("float32")
        expected = np.asarray(theirs(x, training=False))
        got = np.asarray(ours(x, training=False))
        assert got.shape == expected.shape
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=f"block conv{stage}_block{index}")


def test_stem_conv_on_rgb_equals_theirs_on_bgr(resnet50_pair):
    """Channel flip and epsilon fold: bn_conv1(conv1(RGB - mean)) == theirs on BGR."""
    source, backbone, _ = resnet50_pair
    theirs = keras.Model(source.input, source.get_layer("conv1_bn").output)
    ours = keras.Model(backbone.input, backbone.get_layer("bn_conv1").output)
    rng = np.random.RandomState(2)
    rgb = rng.uniform(0, 255, (2, 32, 48, 3)).astype("float32")
    mean_rgb = np.array(Config.MEAN_PIXEL, np.float32)
    expected = np.asarray(theirs(rgb[..., ::-1] - mean_rgb[::-1], training=False))
    got = np.asarray(ours(rgb - mean_rgb, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_max_pool_grid_is_theirs_shifted_by_two_input_pixels(resnet50_pair):
    """Ours pools conv1 pixels 2i..2i+2, theirs 2i-1..2i+1 (documented in the module).

    So our C1 on x equals theirs on x shifted two pixels up-left, except in the first two
    rows and columns: the shift moves image rows 0..1 into their zero padding, which
    conv1 pixels 0..1 (and through them pooled rows 0..1) read.
    """
    source, backbone, _ = resnet50_pair
    theirs = keras.Model(source.input, source.get_layer("pool1_pool").output)
    ours = keras.Model(backbone.input, backbone.get_layer("res2a_branch2a").input)
    x = np.random.RandomState(3).normal(0, 50, (1, 64, 64, 3)).astype("float32")
    got = np.asarray(ours(x, training=False))
    shifted = np.asarray(theirs(x[:, 2:, 2:, ::-1], training=False))   # BGR, shifted
    assert got.shape == shifted.shape == (1, 16, 16, 64)
    np.testing.assert_allclose(got[:, 2:, 2:], shifted[:, 2:, 2:], rtol=1e-4,
                               atol=1e-4 * np.abs(got).max())
    unshifted = np.asarray(theirs(x[..., ::-1], training=False))
    assert np.abs(unshifted[:, 2:, 2:] - got[:, 2:, 2:]).max() > 0.1 * np.abs(got).max()


def test_epsilon_fold_gives_the_same_batchnorm_output_by_hand():
    gamma, beta = np.array([2.0, 2.0, 0.5]), np.array([0.1, -0.2, 0.3])
    mean, var = np.array([0.5, -1.0, 0.0]), np.array([1.0, 5e-4, 0.0])
    g2, b2, m2, v2 = imagenet.fold_epsilon(gamma, beta, mean, var, KERAS_EPS, OUR_EPS)
    np.testing.assert_allclose(v2, [1.0 + KERAS_EPS - OUR_EPS, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(g2, [2.0, 2.0 * np.sqrt(OUR_EPS / (5e-4 + KERAS_EPS)),
                                    0.5 * np.sqrt(OUR_EPS / KERAS_EPS)], rtol=1e-6)
    x = np.random.RandomState(4).normal(0, 1, (5, 3)).astype("float32")
    theirs = keras.layers.BatchNormalization(epsilon=KERAS_EPS)
    ours = keras.layers.BatchNormalization(epsilon=OUR_EPS)
    theirs.build((None, 3))
    ours.build((None, 3))
    theirs.set_weights([a.astype("float32") for a in (gamma, beta, mean, var)])
    ours.set_weights([g2, b2, m2, v2])
    np.testing.assert_allclose(np.asarray(ours(x, training=False)),
                               np.asarray(theirs(x, training=False)), rtol=1e-5, atol=1e-6)


def test_mean_fold_is_exact_away_from_the_padding(resnet50_pair):
    source, _, _ = resnet50_pair
    theirs = keras.Model(source.input, source.get_layer("conv1_bn").output)
    backbone = imagenet.backbone_model("resnet50")
    mean_pixel = [120.0, 110.0, 100.0]       # far from Caffe's, so the fold matters
    imagenet.transfer_weights(source, backbone, mean_pixel=mean_pixel)
    ours = keras.Model(backbone.input, backbone.get_layer("bn_conv1").output)
    rgb = np.random.RandomState(5).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    caffe_bgr = np.array(imagenet.CAFFE_MEAN_BGR, np.float32)
    expected = np.asarray(theirs(rgb[..., ::-1] - caffe_bgr, training=False))
    got = np.asarray(ours(rgb - np.array(mean_pixel, np.float32), training=False))
    tolerance = 1e-4 * np.abs(expected).max()
    # conv1 output pixel j reads input rows 2j-3..2j+3: rows 2..13 never touch the padding.
    np.testing.assert_allclose(got[:, 2:14, 2:14], expected[:, 2:14, 2:14], rtol=1e-4,
                               atol=tolerance)
    assert np.abs(got[:, 0] - expected[:, 0]).max() > 10 * tolerance


def test_written_file_loads_into_mask_rcnn_by_name(tmp_path):
    """The offline path: keras.applications' file given by path, our file loaded by name."""
    source = imagenet.keras_resnet("resnet50", weights=None)
    _randomise(source, seed=6)
    local_file = str(tmp_path / "resnet50_notop.weights.h5")
    source.save_weights(local_file)
    converted = imagenet.imagenet_weights_file("resnet50", str(tmp_path / "imagenet.h5"),
                                               weights=local_file)

    class TinyConfig(TinyResNet50Config):
        NAME = "tiny"
        NUM_CLASSES = 2

    model = modellib.MaskRCNN("inference", TinyConfig(), str(tmp_path))
    before = {v.path: np.array(v.numpy()) for v in model.keras_model.weights}
    report = model.load_weights(converted, by_name=True, verbose=0)
    assert len(report["loaded"]) == 106 and not report["skipped"]
    assert "fpn_c5p5" in report["missing"] and "rpn_model" in report["missing"]
    for layer in source.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = np.asarray(layer.kernel.numpy())
            if layer.name == "conv1_conv":
                kernel = kernel[:, :, ::-1, :]
            mine = model.keras_model.get_layer(imagenet.caffe_layer_name(layer.name))
            np.testing.assert_array_equal(np.asarray(mine.kernel.numpy()), kernel)
    fpn = model.keras_model.get_layer("fpn_c5p5")
    np.testing.assert_array_equal(np.asarray(fpn.kernel.numpy()), before[fpn.kernel.path])


def test_transfer_covers_resnet101():
    source = imagenet.keras_resnet("resnet101", weights=None)
    backbone = imagenet.backbone_model("resnet101")
    assigned = imagenet.transfer_weights(source, backbone)
    names = {layer.name for layer in weights_io.weight_layers(backbone)}
    assert len(assigned) == len(names) == 2 * 104 and set(assigned) == names
    assert "res4w_branch2c" in names


def test_download_failure_says_how_to_pass_a_local_file(tmp_path, monkeypatch):
    monkeypatch.setattr(imagenet, "WEIGHTS_BASE_URL", "http://127.0.0.1:9/")
    with pytest.raises(imagenet.ImageNetWeightsError) as info:
        imagenet.imagenet_weights_file("resnet50", str(tmp_path / "out.h5"),
                                       cache_dir=str(tmp_path / "cache"))
    message = str(info.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "weights='/path/to/" in message
    assert not (tmp_path / "out.h5").exists()


def test_missing_local_file_and_resnet18_are_refused(tmp_path):
    with pytest.raises(imagenet.ImageNetWeightsError, match="does not exist"):
        imagenet.keras_resnet("resnet50", weights=str(tmp_path / "nope.h5"))
    with pytest.raises(ValueError, match="resnet18"):
        imagenet.keras_resnet("resnet18", weights=None)

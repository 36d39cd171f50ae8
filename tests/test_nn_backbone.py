"""BatchNorm modes, ResNet backbones, FPN and the RPN head."""
import keras
import numpy as np
import pytest

from mrcnn import utils
from mrcnn.nn.backbone import build_backbone, resnet_graph
from mrcnn.nn.batch_norm import BatchNorm
from mrcnn.nn.fpn import build_fpn
from mrcnn.nn.rpn import build_rpn_model, rpn_on_pyramid

EPSILON = 1e-3


# --------------------------------------------------------------------------- BatchNorm

def _bn_reference(x, mean, variance, gamma, beta):
    return (x - mean) / np.sqrt(variance + EPSILON) * gamma + beta


@pytest.fixture
def bn_data():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(6, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 0.2]).astype("float32")
    stats = {"gamma": np.array([1.5, 0.5, 2.0], "float32"),
             "beta": np.array([0.1, -0.2, 0.3], "float32"),
             "moving_mean": np.array([1.0, 2.0, -1.0], "float32"),
             "moving_variance": np.array([4.0, 0.25, 1.0], "float32")}
    return x, stats


def _make_bn(train_bn, stats):
    layer = BatchNorm(train_bn=train_bn)
    layer.build((None, 3))
    for name, value in stats.items():
        getattr(layer, name).assign(value)
    return layer


def _expected(x, stats, batch_statistics):
    if batch_statistics:
        mean, variance = x.mean(axis=0), x.var(axis=0)
    else:
        mean, variance = stats["moving_mean"], stats["moving_variance"]
    return _bn_reference(x, mean, variance, stats["gamma"], stats["beta"])


@pytest.mark.parametrize("train_bn, batch_stats_in_training, batch_stats_in_inference", [
    (None, True, False),
    (False, False, False),
    (True, True, True),
])
def test_batch_norm_modes_normalise_with_the_right_statistics(
        bn_data, train_bn, batch_stats_in_training, batch_stats_in_inference):
    x, stats = bn_data
    layer = _make_bn(train_bn, stats)
    inference = np.asarray(layer(x, training=False))
    np.testing.assert_allclose(inference, _expected(x, stats, batch_stats_in_inference),
                               rtol=1e-5, atol=1e-5)
    training = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(training, _expected(x, stats, batch_stats_in_training),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("train_bn, updates", [(None, True), (False, False), (True, True)])
def test_batch_norm_updates_moving_mean_only_when_training(bn_data, train_bn, updates):
    x, stats = bn_data
    layer = _make_bn(train_bn, stats)
    layer(x, training=False)
    # Inference never changes the state, whatever the mode.
    np.testing.assert_array_equal(layer.moving_mean.numpy(), stats["moving_mean"])
    layer(x, training=True)
    expected = 0.99 * stats["moving_mean"] + 0.01 * x.mean(axis=0) if updates \
        else stats["moving_mean"]
    np.testing.assert_allclose(layer.moving_mean.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_frozen_batch_norm_has_no_trainable_weights_and_stays_frozen(bn_data):
    x, stats = bn_data
    layer = _make_bn(False, stats)
    assert not layer.trainable
    assert layer.trainable_weights == []
    layer.trainable = True           # as a layer-selection regex would
    assert not layer.trainable
    assert layer.trainable_weights == []
    assert all(not v.trainable for v in layer.weights)
    np.testing.assert_allclose(np.asarray(layer(x, training=True)),
                               _expected(x, stats, False), rtol=1e-5, atol=1e-5)


def test_frozen_batch_norm_is_invisible_to_the_optimiser_of_a_model():
    inputs = keras.Input((3,))
    x = keras.layers.Dense(3, name="dense")(inputs)
    x = BatchNorm(train_bn=False, name="bn_frozen")(x)
    x = BatchNorm(train_bn=None, name="bn_trained")(x)
    model = keras.Model(inputs, x)
    model.trainable = True
    names = sorted(v.path for v in model.trainable_variables)
    assert names == ["bn_trained/beta", "bn_trained/gamma", "dense/bias", "dense/kernel"]


def test_batch_norm_true_keeps_batch_statistics_when_not_trainable(bn_data):
    x, stats = bn_data
    layer = _make_bn(True, stats)
    layer.trainable = False          # e.g. backbone excluded by layers="heads"
    np.testing.assert_allclose(np.asarray(layer(x, training=True)),
                               _expected(x, stats, True), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), stats["moving_mean"])


def test_batch_norm_follows_the_training_flag_of_a_functional_model(bn_data):
    x, stats = bn_data
    inputs = keras.Input((3,))
    layer = BatchNorm(train_bn=None)
    model = keras.Model(inputs, layer(inputs))
    for name, value in stats.items():
        getattr(layer, name).assign(value)
    np.testing.assert_allclose(model.predict(x, verbose=0), _expected(x, stats, False),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model(x, training=True)),
                               _expected(x, stats, True), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("train_bn", [None, False, True])
def test_batch_norm_config_round_trip(train_bn):
    layer = BatchNorm(train_bn=train_bn, name="bn")
    clone = BatchNorm.from_config(layer.get_config())
    assert clone.train_bn is train_bn
    assert clone.trainable is (train_bn is not False)
    assert clone.epsilon == pytest.approx(1e-3)
    assert clone.name == "bn"


def test_batch_norm_rejects_other_modes():
    with pytest.raises(ValueError, match="train_bn"):
        BatchNorm(train_bn="yes")


# --------------------------------------------------------------------------- ResNet

def _conv_params(k, cin, cout):
    return k * k * cin * cout + cout          # kernel + bias


def _bn_params(c):
    return 4 * c                              # gamma, beta, moving mean, moving variance


def _bottleneck_resnet_params(blocks):
    total = _conv_params(7, 3, 64) + _bn_params(64)
    cin = 64
    for count, (f1, f2, f3) in zip(blocks, [(64, 64, 256), (128, 128, 512),
                                            (256, 256, 1024), (512, 512, 2048)]):
        for i in range(count):
            total += (_conv_params(1, cin, f1) + _bn_params(f1) + _conv_params(3, f1, f2)
                      + _bn_params(f2) + _conv_params(1, f2, f3) + _bn_params(f3))
            if i == 0:
                total += _conv_params(1, cin, f3) + _bn_params(f3)
            cin = f3
    return total


def _resnet18_params():
    total = _conv_params(7, 3, 64) + _bn_params(64)
    cin = 64
    for width in (64, 128, 256, 512):
        for i in range(2):
            total += 2 * _bn_params(width) + _conv_params(3, cin, width) \
                + _conv_params(3, width, width)
            if i == 0 and cin != width:
                total += _conv_params(1, cin, width) + _bn_params(width)
            cin = width
    return total


def _kernel(model, name):
    return tuple(model.get_layer(name).kernel.shape)


@pytest.fixture(scope="module")
def resnet50_fpn():
    image = keras.Input((128, 128, 3), name="input_image")
    c1, c2, c3, c4, c5 = resnet_graph(image, "resnet50", stage5=True, train_bn=False)
    pyramid = build_fpn(c2, c3, c4, c5, 256)
    backbone = keras.Model(image, [c1, c2, c3, c4, c5])
    return keras.Model(image, [c1, c2, c3, c4, c5] + pyramid), backbone


def test_resnet50_has_upstream_layer_names_and_kernel_shapes(resnet50_fpn):
    model, _ = resnet50_fpn
    assert _kernel(model, "conv1") == (7, 7, 3, 64)
    assert tuple(model.get_layer("conv1").bias.shape) == (64,)
    assert tuple(model.get_layer("bn_conv1").gamma.shape) == (64,)
    assert _kernel(model, "res2a_branch2a") == (1, 1, 64, 64)
    assert _kernel(model, "res2a_branch2b") == (3, 3, 64, 64)
    assert _kernel(model, "res2a_branch2c") == (1, 1, 64, 256)
    assert _kernel(model, "res2a_branch1") == (1, 1, 64, 256)
    assert _kernel(model, "res2c_branch2a") == (1, 1, 256, 64)
    assert _kernel(model, "res3a_branch2a") == (1, 1, 256, 128)
    assert _kernel(model, "res3a_branch1") == (1, 1, 256, 512)
    assert _kernel(model, "res3d_branch2c") == (1, 1, 128, 512)
    assert _kernel(model, "res4a_branch1") == (1, 1, 512, 1024)
    assert _kernel(model, "res4f_branch2b") == (3, 3, 256, 256)
    assert _kernel(model, "res5a_branch1") == (1, 1, 1024, 2048)
    assert _kernel(model, "res5c_branch2c") == (1, 1, 512, 2048)
    assert tuple(model.get_layer("bn5c_branch2c").moving_variance.shape) == (2048,)
    names = {layer.name for layer in model.layers}
    blocks = {2: "abc", 3: "abcd", 4: "abcdef", 5: "abc"}
    for stage, letters in blocks.items():
        for block in letters:
            for branch in "abc":
                assert f"res{stage}{block}_branch2{branch}" in names
                assert f"bn{stage}{block}_branch2{branch}" in names
        assert f"res{stage}a_branch1" in names and f"bn{stage}a_branch1" in names
        assert f"res{stage}b_branch1" not in names
    assert "res4g_branch2a" not in names and "res5d_branch2a" not in names


def test_resnet_conv_block_strides_in_its_first_1x1(resnet50_fpn):
    model, _ = resnet50_fpn
    assert model.get_layer("conv1").strides == (2, 2)
    assert model.get_layer("res2a_branch2a").strides == (1, 1)
    assert model.get_layer("res2a_branch1").strides == (1, 1)
    for stage in (3, 4, 5):
        assert model.get_layer(f"res{stage}a_branch2a").strides == (2, 2)
        assert model.get_layer(f"res{stage}a_branch2b").strides == (1, 1)
        assert model.get_layer(f"res{stage}a_branch1").strides == (2, 2)


def test_resnet50_and_fpn_output_strides_on_128_pixels(resnet50_fpn):
    model, _ = resnet50_fpn
    shapes = [tuple(t.shape[1:]) for t in model.outputs]
    assert shapes[:5] == [(32, 32, 64), (32, 32, 256), (16, 16, 512), (8, 8, 1024),
                          (4, 4, 2048)]
    assert shapes[5:] == [(32, 32, 256), (16, 16, 256), (8, 8, 256), (4, 4, 256),
                          (2, 2, 256)]


def test_resnet50_parameter_count_matches_published_resnet50(resnet50_fpn):
    _, backbone = resnet50_fpn
    assert backbone.count_params() == _bottleneck_resnet_params((3, 4, 6, 3))
    # The published figure for ResNet-50 without its classifier (conv biases and the
    # four BatchNorm vectors included): 23,587,712.
    assert backbone.count_params() == 23_587_712


def test_frozen_backbone_trains_only_convolutions(resnet50_fpn):
    _, backbone = resnet50_fpn
    trainable = {v.path.split("/")[0] for v in backbone.trainable_variables}
    assert trainable and all(not name.startswith("bn") for name in trainable)
    assert all(isinstance(layer, BatchNorm) and not layer.trainable
               for layer in backbone.layers if layer.name.startswith("bn"))


def test_fpn_layer_names_and_shapes(resnet50_fpn):
    model, _ = resnet50_fpn
    assert _kernel(model, "fpn_c5p5") == (1, 1, 2048, 256)
    assert _kernel(model, "fpn_c4p4") == (1, 1, 1024, 256)
    assert _kernel(model, "fpn_c3p3") == (1, 1, 512, 256)
    assert _kernel(model, "fpn_c2p2") == (1, 1, 256, 256)
    for k in (2, 3, 4, 5):
        assert _kernel(model, f"fpn_p{k}") == (3, 3, 256, 256)
    for k in (2, 3, 4):
        assert isinstance(model.get_layer(f"fpn_p{k + 1}upsampled"), keras.layers.UpSampling2D)
        assert isinstance(model.get_layer(f"fpn_p{k}add"), keras.layers.Add)
    assert isinstance(model.get_layer("fpn_p6"), keras.layers.MaxPooling2D)


def test_fpn_top_down_sum_by_hand():
    """Identity laterals and smoothing: P4 = C4 + up2(C5), P6 = P5[::2, ::2]."""
    inputs = [keras.Input((s, s, 1)) for s in (16, 8, 4, 2)]
    model = keras.Model(inputs, build_fpn(*inputs, 1))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = np.zeros(layer.kernel.shape, "float32")
            kernel[kernel.shape[0] // 2, kernel.shape[1] // 2, 0, 0] = 1.0
            layer.kernel.assign(kernel)
    rng = np.random.default_rng(1)
    c2, c3, c4, c5 = (rng.normal(size=(1, s, s, 1)).astype("float32") for s in (16, 8, 4, 2))
    p2, p3, p4, p5, p6 = model.predict([c2, c3, c4, c5], verbose=0)

    def up(a):
        return a.repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_allclose(p5, c5, atol=1e-6)
    np.testing.assert_allclose(p4, c4 + up(c5), atol=1e-6)
    np.testing.assert_allclose(p3, c3 + up(c4 + up(c5)), atol=1e-5)
    np.testing.assert_allclose(p2, c2 + up(c3 + up(c4 + up(c5))), atol=1e-5)
    np.testing.assert_allclose(p6, p5[:, ::2, ::2], atol=1e-6)


def test_resnet18_basic_blocks_names_shapes_and_strides():
    image = keras.Input((128, 128, 3))
    c1, c2, c3, c4, c5 = resnet_graph(image, "resnet18", train_bn=None)
    pyramid = build_fpn(c2, c3, c4, c5, 32)
    model = keras.Model(image, [c2, c3, c4, c5] + pyramid)
    assert _kernel(model, "conv1") == (7, 7, 3, 64)
    assert _kernel(model, "res2a_branch2a") == (3, 3, 64, 64)
    assert _kernel(model, "res2b_branch2b") == (3, 3, 64, 64)
    assert _kernel(model, "res3a_branch2a") == (3, 3, 64, 128)
    assert _kernel(model, "res3a_branch1") == (1, 1, 64, 128)
    assert _kernel(model, "res5b_branch2b") == (3, 3, 512, 512)
    assert model.get_layer("res3a_branch2a").strides == (2, 2)
    assert model.get_layer("res3a_branch2b").strides == (1, 1)
    names = {layer.name for layer in model.layers}
    assert "res2a_branch1" not in names           # 64 -> 64, stride 1: identity shortcut
    assert "res2c_branch2a" not in names and "res3a_branch2c" not in names
    assert {"bn2a_branch2a", "bn2a_branch2b", "bn3a_branch1", "bn5b_branch2b"} <= names
    shapes = [tuple(t.shape[1:3]) for t in model.outputs]
    assert shapes == [(32, 32), (16, 16), (8, 8), (4, 4),
                      (32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    assert [t.shape[-1] for t in model.outputs[:4]] == [64, 128, 256, 512]
    backbone = keras.Model(image, [c1, c2, c3, c4, c5])
    assert backbone.count_params() == _resnet18_params()
    # train_bn=None: gamma and beta of every BatchNorm are trained.
    trainable = {v.path for v in backbone.trainable_variables}
    assert {"bn_conv1/gamma", "bn_conv1/beta", "bn3a_branch1/gamma"} <= trainable


def test_resnet_without_stage5():
    image = keras.Input((64, 64, 3))
    c1, c2, c3, c4, c5 = resnet_graph(image, "resnet18", stage5=False)
    assert c5 is None
    names = {layer.name for layer in keras.Model(image, c4).layers}
    assert not any(name.startswith("res5") for name in names)


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="resnet50"):
        resnet_graph(keras.Input((64, 64, 3)), "resnet34")


def test_build_backbone_calls_a_user_callable():
    calls = []

    def tiny_backbone(input_image, stage5, train_bn):
        calls.append((stage5, train_bn))
        x = input_image
        outputs = []
        for i in range(5):
            x = keras.layers.Conv2D(4, 3, strides=(4, 1, 2, 2, 2)[i], padding="same")(x)
            outputs.append(x)
        return outputs

    image = keras.Input((64, 64, 3))
    features = build_backbone(image, tiny_backbone, stage5=True, train_bn=None)
    assert calls == [(True, None)]
    assert [tuple(f.shape[1:3]) for f in features[1:]] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    with pytest.raises(ValueError, match="C1, C2, C3, C4, C5"):
        build_backbone(image, lambda input_image, stage5, train_bn: [input_image], True, None)
    names = build_backbone(keras.Input((64, 64, 3)), "resnet18")
    assert len(names) == 5


def test_resnet101_stage4_has_23_blocks_and_published_parameter_count():
    image = keras.Input((64, 64, 3))
    backbone = keras.Model(image, resnet_graph(image, "resnet101", train_bn=False))
    names = {layer.name for layer in backbone.layers}
    letters = "abcdefghijklmnopqrstuvw"
    assert all(f"res4{b}_branch2c" in names for b in letters)
    assert "res4x_branch2a" not in names
    assert backbone.count_params() == _bottleneck_resnet_params((3, 4, 23, 3))
    assert backbone.count_params() == 42_658_176      # published ResNet-101 without fc


# --------------------------------------------------------------------------- RPN

def test_rpn_model_layers_and_kernel_shapes():
    rpn = build_rpn_model(anchor_stride=1, anchors_per_location=3, depth=256)
    assert rpn.name == "rpn_model"
    assert rpn.inputs[0].name == "input_rpn_feature_map"
    assert tuple(rpn.inputs[0].shape) == (None, None, None, 256)
    assert _kernel(rpn, "rpn_conv_shared") == (3, 3, 256, 512)
    assert _kernel(rpn, "rpn_class_raw") == (1, 1, 512, 6)
    assert _kernel(rpn, "rpn_bbox_pred") == (1, 1, 512, 12)
    assert {layer.name for layer in rpn.layers if layer.weights} == {
        "rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred"}


def _marker_rpn(depth=2, anchors=3, anchor_stride=1):
    """An RPN whose logits for anchor a are (10a + 1, 10a + 2) * v, deltas
    (100a + 1, ..., 100a + 4) * v, where v is channel 0 of the feature cell."""
    rpn = build_rpn_model(anchor_stride, anchors, depth)
    shared = np.zeros((3, 3, depth, 512), "float32")
    shared[1, 1, 0, 0] = 1.0
    rpn.get_layer("rpn_conv_shared").kernel.assign(shared)
    cls = np.zeros((1, 1, 512, 2 * anchors), "float32")
    box = np.zeros((1, 1, 512, 4 * anchors), "float32")
    for a in range(anchors):
        cls[0, 0, 0, 2 * a:2 * a + 2] = [10 * a + 1, 10 * a + 2]
        box[0, 0, 0, 4 * a:4 * a + 4] = [100 * a + j + 1 for j in range(4)]
    rpn.get_layer("rpn_class_raw").kernel.assign(cls)
    rpn.get_layer("rpn_bbox_pred").kernel.assign(box)
    for name in ("rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred"):
        rpn.get_layer(name).bias.assign(np.zeros(rpn.get_layer(name).bias.shape, "float32"))
    return rpn


def test_rpn_output_rows_follow_generate_anchors_order():
    ratios = [0.5, 1, 2]
    rpn = _marker_rpn()
    height, width, y0, x0 = 4, 5, 2, 3
    feature_map = np.zeros((1, height, width, 2), "float32")
    feature_map[0, y0, x0, 0] = 1.0
    logits, probs, deltas = rpn.predict(feature_map, verbose=0)
    assert logits.shape == (1, height * width * 3, 2)
    rows = [(y0 * width + x0) * 3 + a for a in range(3)]        # 39, 40, 41
    expected_logits = np.zeros((height * width * 3, 2), "float32")
    expected_deltas = np.zeros((height * width * 3, 4), "float32")
    for a, row in enumerate(rows):
        expected_logits[row] = [10 * a + 1, 10 * a + 2]
        expected_deltas[row] = [100 * a + 1, 100 * a + 2, 100 * a + 3, 100 * a + 4]
    np.testing.assert_allclose(logits[0], expected_logits, atol=1e-5)
    np.testing.assert_allclose(deltas[0], expected_deltas, atol=1e-4)
    exp = np.exp(expected_logits - expected_logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs[0], exp / exp.sum(axis=1, keepdims=True), atol=1e-6)
    # The same rows of generate_anchors are the anchors of cell (y0, x0), ratios in order.
    stride = 8
    anchors = utils.generate_anchors(32, ratios, (height, width), stride, 1)
    assert len(anchors) == logits.shape[1]
    for a, row in enumerate(rows):
        y1, x1, y2, x2 = anchors[row]
        assert ((y1 + y2) / 2, (x1 + x2) / 2) == (y0 * stride, x0 * stride)
        assert (x2 - x1) / (y2 - y1) == pytest.approx(ratios[a])


def test_rpn_anchor_stride_2_gives_one_row_per_strided_anchor():
    rpn = build_rpn_model(anchor_stride=2, anchors_per_location=3, depth=2)
    logits, _, deltas = rpn.predict(np.zeros((1, 4, 6, 2), "float32"), verbose=0)
    expected = len(utils.generate_anchors(32, [0.5, 1, 2], (4, 6), 8, 2))
    assert logits.shape == (1, expected, 2) and deltas.shape == (1, expected, 4)


def test_rpn_on_pyramid_concatenates_levels_in_order():
    rpn = _marker_rpn()
    sizes = [8, 4, 2, 1, 1]
    maps = [keras.Input((s, s, 2)) for s in sizes]
    outputs = rpn_on_pyramid(rpn, maps)
    model = keras.Model(maps, outputs)
    assert [o.shape[1:] for o in outputs] == [(258, 2), (258, 2), (258, 4)]
    for name in ("rpn_class_logits", "rpn_class", "rpn_bbox"):
        assert isinstance(model.get_layer(name), keras.layers.Concatenate)
    # Level k is filled with the constant k + 1 on channel 0.
    values = [np.full((1, s, s, 2), k + 1, "float32") for k, s in enumerate(sizes)]
    logits, probs, deltas = model.predict(values, verbose=0)
    start = 0
    base = np.array([[1, 2], [11, 12], [21, 22]], "float32")
    for k, s in enumerate(sizes):
        count = s * s * 3
        level = logits[0, start:start + count].reshape(s * s, 3, 2)
        np.testing.assert_allclose(level, np.broadcast_to(base * (k + 1), level.shape),
                                   atol=1e-4)
        start += count
    assert start == logits.shape[1]
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-6)
    # Last row: P6 (value 5), anchor 2.
    np.testing.assert_allclose(deltas[0, -1], [1005, 1010, 1015, 1020], atol=1e-3)

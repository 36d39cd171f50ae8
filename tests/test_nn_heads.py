"""Classifier, box and mask heads: names, shapes, and equality with per-ROI application.

Upstream applied each head layer to every ROI through TimeDistributed. The references
here do exactly that in numpy: a loop over ROIs, each through the same convolutions,
BatchNorm and dense layers, so the folded graph must match them.
"""
import keras
import numpy as np
import pytest

from mrcnn.nn.batch_norm import BatchNorm
from mrcnn.nn.heads import (FoldRois, PoolSqueeze, UnfoldRois, build_fpn_mask_graph,
                            classifier_head, fpn_classifier_graph, mask_head)

EPSILON = 1e-3
B, N, C = 2, 3, 5


# --------------------------------------------------------------------------- numpy reference

def _conv_valid_full(x, kernel, bias):
    """A kernel as large as the input: [kh, kw, C] x [kh, kw, C, F] -> [F]."""
    return np.tensordot(x, kernel, axes=([0, 1, 2], [0, 1, 2])) + bias


def _conv3x3_same(x, kernel, bias):
    """[h, w, C] * [3, 3, C, F] with zero padding 1 -> [h, w, F]."""
    h, w, _ = x.shape
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, kernel.shape[-1]))
    for dy in range(3):
        for dx in range(3):
            out += padded[dy:dy + h, dx:dx + w] @ kernel[dy, dx]
    return out + bias


def _deconv2x2_stride2(x, kernel, bias):
    """Transposed conv, kernel [2, 2, F_out, C]: out[2i + a, 2j + b] = x[i, j] . K[a, b]."""
    h, w, _ = x.shape
    out = np.zeros((2 * h, 2 * w, kernel.shape[2]))
    for a in range(2):
        for b in range(2):
            out[a::2, b::2] = x @ kernel[a, b].T
    return out + bias


def _bn(values, weights, batch_axes=None):
    """BatchNorm on the last axis; moving statistics, or the moments of all ROIs."""
    gamma, beta, mean, variance = weights
    if batch_axes is not None:
        mean, variance = values.mean(axis=batch_axes), values.var(axis=batch_axes)
    return (values - mean) / np.sqrt(variance + EPSILON) * gamma + beta


def _relu(x):
    return np.maximum(x, 0.0)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _weights(model, name):
    return [np.asarray(w, dtype=np.float64) for w in model.get_layer(name).get_weights()]


def _randomise(model, seed):
    """Give every weight (BatchNorm statistics included) a random, well-scaled value."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for variable in layer.weights:
            shape = tuple(variable.shape)
            name = variable.path.split("/")[-1]
            if name == "moving_variance":
                value = rng.uniform(0.5, 2.0, shape)
            elif name == "gamma":
                value = rng.uniform(0.5, 1.5, shape)
            elif name == "kernel":
                # A transposed conv's kernel is [kh, kw, out, in].
                deconv = isinstance(layer, keras.layers.Conv2DTranspose)
                fan_in = shape[-1] if deconv else np.prod(shape[:-1])
                value = rng.normal(size=shape) / np.sqrt(fan_in)
            else:
                value = rng.normal(size=shape) * 0.3
            variable.assign(value.astype("float32"))


def _classifier_reference(model, pooled, batch_stats):
    """Per-ROI loop through the classifier head's layers."""
    rois = pooled.reshape((-1,) + pooled.shape[2:]).astype(np.float64)
    k1, b1 = _weights(model, "mrcnn_class_conv1")
    h = np.stack([_conv_valid_full(r, k1, b1) for r in rois])
    h = _relu(_bn(h, _weights(model, "mrcnn_class_bn1"), 0 if batch_stats else None))
    k2, b2 = _weights(model, "mrcnn_class_conv2")
    h = np.stack([r @ k2[0, 0] + b2 for r in h])
    h = _relu(_bn(h, _weights(model, "mrcnn_class_bn2"), 0 if batch_stats else None))
    wl, bl = _weights(model, "mrcnn_class_logits")
    wb, bb = _weights(model, "mrcnn_bbox_fc")
    logits = np.stack([r @ wl + bl for r in h])
    bbox = np.stack([(r @ wb + bb).reshape(-1, 4) for r in h])
    shape = pooled.shape[:2]
    return (logits.reshape(shape + logits.shape[1:]), _softmax(logits).reshape(
        shape + logits.shape[1:]), bbox.reshape(shape + bbox.shape[1:]))


def _mask_reference(model, pooled, batch_stats):
    """Per-ROI loop through the mask head's layers."""
    x = pooled.reshape((-1,) + pooled.shape[2:]).astype(np.float64)
    for i in range(1, 5):
        kernel, bias = _weights(model, f"mrcnn_mask_conv{i}")
        x = np.stack([_conv3x3_same(r, kernel, bias) for r in x])
        x = _relu(_bn(x, _weights(model, f"mrcnn_mask_bn{i}"),
                      (0, 1, 2) if batch_stats else None))
    kernel, bias = _weights(model, "mrcnn_mask_deconv")
    x = _relu(np.stack([_deconv2x2_stride2(r, kernel, bias) for r in x]))
    kernel, bias = _weights(model, "mrcnn_mask")
    x = _sigmoid(np.stack([r @ kernel[0, 0] + bias for r in x]))
    return x.reshape(pooled.shape[:2] + x.shape[1:])


# --------------------------------------------------------------------------- fold / unfold

def test_fold_and_unfold_put_roi_n_of_image_b_at_row_b_times_n_plus_n():
    x = np.zeros((B, N, 2, 2, 1), "float32")
    for b in range(B):
        for n in range(N):
            x[b, n] = 10 * b + n
    rois = np.zeros((B, N, 4), "float32")
    folded = np.asarray(FoldRois()(x))
    assert folded.shape == (B * N, 2, 2, 1)
    np.testing.assert_array_equal(folded[:, 0, 0, 0], [0, 1, 2, 10, 11, 12])
    np.testing.assert_array_equal(np.asarray(UnfoldRois()([folded, rois])), x)
    squeezed = np.asarray(PoolSqueeze()([folded[:, :1, :1], rois]))
    np.testing.assert_array_equal(squeezed, x[:, :, 0, 0])


def test_fold_layers_keep_static_shapes():
    pooled = keras.Input((7, 4, 4, 8), batch_size=2)
    rois = keras.Input((7, 4))
    folded = FoldRois()(pooled)
    assert tuple(folded.shape) == (14, 4, 4, 8)
    assert tuple(UnfoldRois()([folded, rois]).shape) == (None, 7, 4, 4, 8)
    flat = keras.Input((1, 1, 8))
    assert tuple(PoolSqueeze()([flat, rois]).shape) == (None, 7, 8)


@pytest.mark.parametrize("layer", [FoldRois(name="f"), UnfoldRois(name="u"),
                                   PoolSqueeze(name="p")])
def test_fold_layers_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.name == layer.name


# --------------------------------------------------------------------------- heads

def _classifier_model(train_bn, num_rois=N):
    pooled = keras.Input((num_rois, 4, 4, C), name="pooled")
    rois = keras.Input((num_rois, 4), name="rois")
    outputs = classifier_head(pooled, rois, num_classes=3, train_bn=train_bn,
                              fc_layers_size=6)
    return keras.Model([pooled, rois], list(outputs))


def _mask_model(train_bn):
    pooled = keras.Input((N, 3, 3, C), name="pooled")
    rois = keras.Input((N, 4), name="rois")
    return keras.Model([pooled, rois], mask_head(pooled, rois, num_classes=3,
                                                 train_bn=train_bn))


@pytest.fixture(scope="module")
def pooled_inputs():
    rng = np.random.default_rng(3)
    pooled = rng.normal(size=(B, N, 4, 4, C)).astype("float32")
    rois = rng.uniform(size=(B, N, 4)).astype("float32")
    return pooled, rois


@pytest.mark.parametrize("train_bn", [False, True])
def test_classifier_head_equals_per_roi_application(pooled_inputs, train_bn):
    pooled, rois = pooled_inputs
    model = _classifier_model(train_bn)
    _randomise(model, seed=4)
    logits, probs, bbox = model.predict([pooled, rois], verbose=0)
    ref_logits, ref_probs, ref_bbox = _classifier_reference(model, pooled, train_bn)
    assert logits.shape == (B, N, 3) and bbox.shape == (B, N, 3, 4)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bbox, ref_bbox, rtol=1e-4, atol=1e-4)


def test_classifier_head_with_unknown_roi_count(pooled_inputs):
    pooled, rois = pooled_inputs
    static, dynamic = _classifier_model(False), _classifier_model(False, num_rois=None)
    _randomise(static, seed=5)
    dynamic.set_weights(static.get_weights())
    assert tuple(dynamic.outputs[2].shape) == (None, None, 3, 4)
    for a, b in zip(static.predict([pooled, rois], verbose=0),
                    dynamic.predict([pooled, rois], verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("train_bn", [False, True])
def test_mask_head_equals_per_roi_application(pooled_inputs, train_bn):
    pooled, rois = pooled_inputs
    pooled = pooled[:, :, :3, :3]
    model = _mask_model(train_bn)
    _randomise(model, seed=6)
    masks = model.predict([pooled, rois], verbose=0)
    assert masks.shape == (B, N, 6, 6, 3)
    np.testing.assert_allclose(masks, _mask_reference(model, pooled, train_bn),
                               rtol=1e-4, atol=1e-5)


def test_heads_reload_from_keras_file(tmp_path, pooled_inputs):
    pooled, rois = pooled_inputs
    model = _classifier_model(None)
    _randomise(model, seed=7)
    path = tmp_path / "head.keras"
    model.save(path)
    clone = keras.models.load_model(path)
    assert clone.get_layer("mrcnn_class_bn1").train_bn is None
    for a, b in zip(model.predict([pooled, rois], verbose=0),
                    clone.predict([pooled, rois], verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def full_heads():
    """Both heads on a 64x64 image's pyramid, with upstream's default sizes."""
    num_classes, num_rois = 3, 4
    maps = [keras.Input((s, s, 256), name=f"p{k}") for k, s in zip(range(2, 6),
                                                                     (16, 8, 4, 2))]
    meta = keras.Input((12 + num_classes,), name="image_meta")
    rois = keras.Input((num_rois, 4), name="rois")
    logits, probs, bbox = fpn_classifier_graph(rois, maps, meta, 7, num_classes,
                                               train_bn=False, fc_layers_size=1024)
    masks = build_fpn_mask_graph(rois, maps, meta, 14, num_classes, train_bn=False)
    return keras.Model([rois, meta] + maps, [logits, probs, bbox, masks])


def test_heads_have_upstream_layer_names_and_kernel_shapes(full_heads):
    model = full_heads

    def kernel(name):
        return tuple(model.get_layer(name).kernel.shape)
    assert kernel("mrcnn_class_conv1") == (7, 7, 256, 1024)
    assert kernel("mrcnn_class_conv2") == (1, 1, 1024, 1024)
    assert kernel("mrcnn_class_logits") == (1024, 3)
    assert kernel("mrcnn_bbox_fc") == (1024, 12)
    for i in range(1, 5):
        assert kernel(f"mrcnn_mask_conv{i}") == (3, 3, 256, 256)
        assert tuple(model.get_layer(f"mrcnn_mask_bn{i}").gamma.shape) == (256,)
    assert kernel("mrcnn_mask_deconv") == (2, 2, 256, 256)
    assert model.get_layer("mrcnn_mask_deconv").strides == (2, 2)
    assert kernel("mrcnn_mask") == (1, 1, 256, 3)
    for name in ("mrcnn_class_bn1", "mrcnn_class_bn2"):
        assert tuple(model.get_layer(name).moving_mean.shape) == (1024,)
    for name in ("roi_align_classifier", "roi_align_mask", "pool_squeeze", "mrcnn_class",
                 "mrcnn_bbox"):
        assert model.get_layer(name) is not None
    bns = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    assert len(bns) == 6 and all(not layer.trainable_weights for layer in bns)
    assert [tuple(o.shape) for o in model.outputs] == [
        (None, 4, 3), (None, 4, 3), (None, 4, 3, 4), (None, 4, 28, 28, 3)]


def test_heads_run_on_pooled_pyramid_features(full_heads):
    rng = np.random.default_rng(8)
    rois = np.array([[[0.0, 0.0, 0.5, 0.5], [0.2, 0.1, 0.9, 0.7],
                      [0.1, 0.1, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0]]], "float32")
    meta = np.zeros((1, 15), "float32")
    meta[0, 4:7] = [64, 64, 3]
    maps = [rng.normal(size=(1, s, s, 256)).astype("float32") for s in (16, 8, 4, 2)]
    logits, probs, bbox, masks = full_heads.predict([rois, meta] + maps, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, _softmax(logits.astype(np.float64)), atol=1e-5)
    assert bbox.shape == (1, 4, 3, 4) and np.isfinite(bbox).all()
    assert masks.shape == (1, 4, 28, 28, 3)
    assert ((masks > 0) & (masks < 1)).all()
    # Different boxes pool different features, hence different class scores.
    assert not np.allclose(logits[0, 0], logits[0, 1])

"""Weight files in matterport/Mask_RCNN's Keras-2 HDF5 layout load by name.

The test writes such a file itself with h5py, from an independent list of upstream's
layer names and weight shapes for a small ResNet-50 configuration: root attributes
layer_names/backend/keras_version, one group per layer with its "weight_names"
("layer/kernel:0", ...), weightless layers with empty lists, the nested `rpn_model`
group, BatchNorm moving statistics, and upstream's group order (which is not block
order: res2a_branch1 comes after res2a_branch2c).
"""
import os
import re
import shutil

import h5py
import numpy as np
import pytest

from mrcnn import weights_io
import mrcnn.model as modellib

from conftest import TinyResNet50Config

HEADS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]


class TinyConfig(TinyResNet50Config):
    NAME = "shapes"
    NUM_CLASSES = 3


class FiveClasses(TinyConfig):
    """The same weights' architecture with another class count (for the CLI test)."""
    NUM_CLASSES = 5


# --- upstream's layers, written out independently of our graph -----------------------

def _conv(name, kh, kw, cin, cout):
    return [(name, [(f"{name}/kernel:0", (kh, kw, cin, cout)), (f"{name}/bias:0", (cout,))])]


def _bn(name, channels):
    return [(name, [(f"{name}/{w}:0", (channels,))
                    for w in ("gamma", "beta", "moving_mean", "moving_variance")])]


def upstream_layers(num_classes, pyramid=16, fc=16, pool=7, anchors_per_location=3):
    """[(group name, [(weight name, shape)])] in the order upstream's Keras 2 wrote them.

    ResNet-50 (stages of 3, 4, 6, 3 bottleneck blocks) as in upstream's resnet_graph, where
    a stage's first block creates branch2a..2c before the shortcut branch1.
    """
    layers = [("input_image", [])]
    layers += [("zero_padding2d_1", [])] + _conv("conv1", 7, 7, 3, 64) + _bn("bn_conv1", 64)
    layers += [("activation_1", []), ("max_pooling2d_1", [])]
    channels = 64
    widths = {2: (64, 256), 3: (128, 512), 4: (256, 1024), 5: (512, 2048)}
    for stage, blocks in zip((2, 3, 4, 5), (3, 4, 6, 3)):
        width, out = widths[stage]
        for index in range(blocks):
            block = chr(ord("a") + index)
            prefix = f"{stage}{block}_branch"
            layers += _conv(f"res{prefix}2a", 1, 1, channels, width) + _bn(f"bn{prefix}2a", width)
            layers += _conv(f"res{prefix}2b", 3, 3, width, width) + _bn(f"bn{prefix}2b", width)
            layers += _conv(f"res{prefix}2c", 1, 1, width, out) + _bn(f"bn{prefix}2c", out)
            if index == 0:
                layers += _conv(f"res{prefix}1", 1, 1, channels, out) + _bn(f"bn{prefix}1", out)
            layers += [(f"res{stage}{block}_out", [])]
            channels = out
    for level, cin in ((5, 2048), (4, 1024), (3, 512), (2, 256)):
        layers += _conv(f"fpn_c{level}p{level}", 1, 1, cin, pyramid)
    for level in (2, 3, 4, 5):
        layers += _conv(f"fpn_p{level}", 3, 3, pyramid, pyramid)
    layers += [("fpn_p6", [])]
    rpn = (_conv("rpn_conv_shared", 3, 3, pyramid, 512)
           + _conv("rpn_class_raw", 1, 1, 512, 2 * anchors_per_location)
           + _conv("rpn_bbox_pred", 1, 1, 512, 4 * anchors_per_location))
    layers += [("rpn_model", [weight for _, weights in rpn for weight in weights])]
    layers += [("ROI", [])]
    layers += _conv("mrcnn_class_conv1", pool, pool, pyramid, fc) + _bn("mrcnn_class_bn1", fc)
    layers += _conv("mrcnn_class_conv2", 1, 1, fc, fc) + _bn("mrcnn_class_bn2", fc)
    layers += [("mrcnn_class_logits", [("mrcnn_class_logits/kernel:0", (fc, num_classes)),
                                       ("mrcnn_class_logits/bias:0", (num_classes,))]),
               ("mrcnn_bbox_fc", [("mrcnn_bbox_fc/kernel:0", (fc, 4 * num_classes)),
                                  ("mrcnn_bbox_fc/bias:0", (4 * num_classes,))]),
               ("mrcnn_bbox", []), ("mrcnn_detection", [])]
    cin = pyramid
    for i in range(1, 5):
        layers += _conv(f"mrcnn_mask_conv{i}", 3, 3, cin, 256) + _bn(f"mrcnn_mask_bn{i}", 256)
        cin = 256
    # Conv2DTranspose kernels are (kh, kw, out, in).
    layers += _conv("mrcnn_mask_deconv", 2, 2, 256, 256) + _conv("mrcnn_mask", 1, 1, 256,
                                                                   num_classes)
    return layers


def write_upstream_file(path, layers, seed):
    """Write `layers` in Keras 2's HDF5 layout with seeded values; return {key: array}."""
    rng = np.random.RandomState(seed)
    values = {}
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([name.encode() for name, _ in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.3"
        for name, weights in layers:
            group = f.create_group(name)
            group.attrs["weight_names"] = np.array([w.encode() for w, _ in weights])
            for key, shape in weights:
                value = rng.normal(0, 0.1, shape).astype(np.float32)
                if "moving_variance" in key:
                    value = np.abs(value) + 0.5
                group.create_dataset(key, data=value)
                values[key[:-2]] = value
    return values


@pytest.fixture(scope="module")
def upstream_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("upstream") / "mask_rcnn_upstream.h5")
    values = write_upstream_file(path, upstream_layers(TinyConfig.NUM_CLASSES), seed=0)
    return path, values


def _model_weights(model):
    """{"inner layer/weight": variable} of every weight of the Keras model."""
    found = {}
    for layer in model.keras_model.layers:
        inner_layers = layer.layers if hasattr(layer, "layers") else [layer]
        for inner in inner_layers:
            for variable in inner.weights:
                key = f"{inner.name}/{variable.name}"
                assert key not in found, f"two variables named {key}"
                found[key] = variable
    return found


def _inference_model(tmp_path, config=None):
    return modellib.MaskRCNN("inference", config or TinyConfig(), str(tmp_path))


# --- tests ---------------------------------------------------------------------------

def test_generated_file_has_upstream_layout(upstream_file):
    path, _ = upstream_file
    with h5py.File(path, "r") as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert names.index("res2a_branch1") == names.index("bn2a_branch2c") + 1
        assert list(f["rpn_model"].attrs["weight_names"][:2]) == [
            b"rpn_conv_shared/kernel:0", b"rpn_conv_shared/bias:0"]
        assert f["rpn_model"]["rpn_class_raw"]["kernel:0"].shape == (1, 1, 512, 6)
        assert len(f["max_pooling2d_1"].attrs["weight_names"]) == 0


def test_every_weight_lands_in_its_variable(upstream_file, tmp_path):
    path, values = upstream_file
    model = _inference_model(tmp_path)
    report = model.load_weights(path, by_name=True, verbose=0)
    assert report["missing"] == []
    variables = _model_weights(model)
    # Our graph has exactly upstream's weights: same names, same shapes, nothing extra.
    assert sorted(variables) == sorted(values)
    for key, variable in variables.items():
        np.testing.assert_array_equal(np.asarray(variable.numpy()), values[key], err_msg=key)
    assert model.epoch == 0


def test_exclude_keeps_the_heads_initial_values(upstream_file, tmp_path):
    path, values = upstream_file
    model = _inference_model(tmp_path)
    variables = _model_weights(model)
    initial = {key: np.array(v.numpy()) for key, v in variables.items()}
    report = model.load_weights(path, by_name=True, exclude=HEADS, verbose=0)
    assert not set(HEADS) & set(report["loaded"])
    for key, variable in variables.items():
        expected = initial[key] if key.split("/")[0] in HEADS else values[key]
        np.testing.assert_array_equal(np.asarray(variable.numpy()), expected, err_msg=key)
    assert not np.array_equal(initial["mrcnn_mask/kernel"], values["mrcnn_mask/kernel"])


def test_other_class_count_names_the_layer_and_both_shapes(upstream_file, tmp_path):
    path, _ = upstream_file
    config = TinyConfig()
    config.NUM_CLASSES = 5
    model = _inference_model(tmp_path, config)
    before = {key: np.array(v.numpy()) for key, v in _model_weights(model).items()}
    with pytest.raises(weights_io.WeightsFileError) as info:
        model.load_weights(path, by_name=True, verbose=0)
    message = str(info.value)
    shapes = {"mrcnn_class_logits": ((16, 5), (16, 3)), "mrcnn_bbox_fc": ((16, 20), (16, 12)),
              "mrcnn_mask": ((1, 1, 256, 5), (1, 1, 256, 3))}
    named = [layer for layer in shapes if f"'{layer}'" in message]
    assert len(named) == 1, message
    model_shape, file_shape = shapes[named[0]]
    assert str(model_shape) in message and str(file_shape) in message
    assert "exclude" in message
    # Nothing was assigned: the error comes before any variable changes.
    for key, variable in _model_weights(model).items():
        np.testing.assert_array_equal(np.asarray(variable.numpy()), before[key])
    # With the class-specific heads excluded the same file loads.
    report = model.load_weights(path, by_name=True, exclude=HEADS, verbose=0)
    assert "res5c_branch2c" in report["loaded"]


def test_checkpoint_path_sets_the_epoch_and_log_dir(upstream_file, tmp_path):
    path, _ = upstream_file
    run_dir = tmp_path / "logs" / "shapes20250101T1200"
    run_dir.mkdir(parents=True)
    checkpoint = str(run_dir / "mask_rcnn_shapes_0012.h5")
    shutil.copy(path, checkpoint)
    model = _inference_model(tmp_path / "logs")
    model.load_weights(checkpoint, by_name=True, verbose=0)
    assert model.epoch == 12
    assert os.path.basename(model.log_dir) == "shapes20250101T1200"


# --- python -m mrcnn.convert ---------------------------------------------------------

def test_convert_writes_our_format_with_the_same_values(upstream_file, tmp_path):
    from mrcnn import convert
    path, values = upstream_file
    destination = str(tmp_path / "converted.h5")
    report = convert.convert_upstream_weights(path, destination, TinyConfig())
    stored, attributes = weights_io.read_weights(destination)
    assert "max_pooling2d_1" not in stored and "ROI" not in stored     # weightless dropped
    assert sorted(stored) == sorted(report["loaded"])
    flat = {key: value for layer in stored.values() for key, value in layer.items()}
    assert sorted(flat) == sorted(values)
    for key, value in flat.items():
        np.testing.assert_array_equal(value, values[key], err_msg=key)
    assert '"BACKBONE": "resnet50"' in attributes["config"]
    assert attributes["converted_from"] == "mask_rcnn_upstream.h5"
    model = _inference_model(tmp_path)
    model.load_weights(destination, by_name=True, verbose=0)
    for key, variable in _model_weights(model).items():
        np.testing.assert_array_equal(np.asarray(variable.numpy()), values[key])


def test_convert_refuses_a_file_missing_layers_unless_allowed(tmp_path):
    from mrcnn import convert
    layers = [(name, weights) for name, weights in upstream_layers(TinyConfig.NUM_CLASSES)
              if name != "fpn_p5"]
    source = str(tmp_path / "partial.h5")
    write_upstream_file(source, layers, seed=1)
    with pytest.raises(weights_io.WeightsFileError, match="fpn_p5"):
        convert.convert_upstream_weights(source, str(tmp_path / "out.h5"), TinyConfig())
    assert not (tmp_path / "out.h5").exists()
    report = convert.convert_upstream_weights(source, str(tmp_path / "out.h5"), TinyConfig(),
                                              allow_missing=True)
    assert report["missing"] == ["fpn_p5"]
    stored, _ = weights_io.read_weights(str(tmp_path / "out.h5"))
    assert "fpn_p5" not in stored and "fpn_p4" in stored


def test_convert_command_line(upstream_file, tmp_path, capsys):
    from mrcnn import convert
    path, _ = upstream_file
    destination = str(tmp_path / "cli.h5")
    status = convert.main([path, destination, "--config", f"{__name__}:TinyConfig"])
    assert status == 0 and os.path.exists(destination)
    assert "converted" in capsys.readouterr().out

    status = convert.main([path, str(tmp_path / "bad.h5"), "--config", f"{__name__}:FiveClasses"])
    error = capsys.readouterr().err
    assert status == 2 and not (tmp_path / "bad.h5").exists()
    match = re.search(r"layer '(mrcnn_\w+)'.* has shape \(([\d, ]+)\) in the model but "
                      r"\(([\d, ]+)\)", error)
    assert match and match.group(2) != match.group(3), error
    assert convert.main([path, destination, "--config", "no_colon"]) == 2


def test_convert_to_keras_native_weights(upstream_file, tmp_path):
    from mrcnn import convert
    path, values = upstream_file
    destination = str(tmp_path / "converted.weights.h5")
    convert.convert_upstream_weights(path, destination, TinyConfig())
    model = _inference_model(tmp_path)
    model.keras_model.load_weights(destination)
    for key, variable in _model_weights(model).items():
        np.testing.assert_array_equal(np.asarray(variable.numpy()), values[key], err_msg=key)

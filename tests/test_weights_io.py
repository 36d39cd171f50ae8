"""Name-keyed HDF5 weight files: round trip, upstream layout, atomic writes, clear errors."""
import h5py
import keras
import numpy as np
import pytest

from mrcnn import weights_io


def _model(num_classes=3, seed=0):
    """A small model with a nested sub-model, like the RPN inside Mask R-CNN."""
    keras.utils.set_random_seed(seed)
    inner_input = keras.Input((4, 4, 8))
    inner = keras.layers.Conv2D(6, 3, padding="same", name="rpn_conv_shared")(inner_input)
    inner = keras.layers.Conv2D(2, 1, name="rpn_class_raw")(inner)
    rpn = keras.Model(inner_input, inner, name="rpn_model")
    image = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(image)
    x = keras.layers.BatchNormalization(name="bn_conv1")(x)
    y = rpn(x)
    z = keras.layers.Dense(num_classes, name="mrcnn_class_logits")(keras.layers.Flatten()(x))
    return keras.Model(image, [y, z])


def _values(model):
    return {v.path: np.array(v.numpy()) for v in model.weights}


def _write_random_keras2_file(path, model, write_names, seed):
    """A Keras-2 layout file of random values for `model`, written with h5py.

    write_names(attrs, name, names) stores each name list ("layer_names", "weight_names")
    in the form under test; the groups hold the values in the model's order.
    Returns {variable path: stored value}.
    """
    rng = np.random.RandomState(seed)
    expected = {}
    with h5py.File(path, "w") as f:
        layers = weights_io.weight_layers(model)
        write_names(f.attrs, "layer_names", [layer.name for layer in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in layers:
            group = f.create_group(layer.name)
            pairs = weights_io._named_variables(layer)
            write_names(group.attrs, "weight_names", [key for key, _ in pairs])
            for key, variable in pairs:
                value = rng.normal(size=variable.shape).astype(np.float32)
                group.create_dataset(key, data=value)
                expected[variable.path] = value
    return expected


def test_round_trip_by_name_into_a_fresh_model(tmp_path):
    source, target = _model(seed=1), _model(seed=2)
    path = str(tmp_path / "weights.h5")
    weights_io.save_weights(source, path, attributes={"epoch": 7})
    report = weights_io.load_weights(target, path)
    assert sorted(report["loaded"]) == ["bn_conv1", "conv1", "mrcnn_class_logits", "rpn_model"]
    assert report["attributes"]["epoch"] == 7
    for name, value in _values(source).items():
        np.testing.assert_array_equal(_values(target)[name], value)


def test_file_has_the_keras2_upstream_layout(tmp_path):
    path = str(tmp_path / "weights.h5")
    weights_io.save_weights(_model(), path)
    with h5py.File(path, "r") as f:
        layer_names = [n.decode() for n in f.attrs["layer_names"]]
        assert layer_names == ["conv1", "bn_conv1", "rpn_model", "mrcnn_class_logits"]
        bn_names = [n.decode() for n in f["bn_conv1"].attrs["weight_names"]]
        assert bn_names == ["bn_conv1/gamma:0", "bn_conv1/beta:0", "bn_conv1/moving_mean:0",
                            "bn_conv1/moving_variance:0"]
        rpn_names = [n.decode() for n in f["rpn_model"].attrs["weight_names"]]
        assert rpn_names == ["rpn_conv_shared/kernel:0", "rpn_conv_shared/bias:0",
                             "rpn_class_raw/kernel:0", "rpn_class_raw/bias:0"]
        assert f["rpn_model"]["rpn_conv_shared"]["kernel:0"].shape == (3, 3, 8, 6)


def test_loads_a_file_written_like_upstream_with_shuffled_group_order(tmp_path):
    """Stored order differs from model order and weights are matched by name only."""
    model = _model()
    path = str(tmp_path / "upstream.h5")

    def reversed_lists(attrs, name, names):
        attrs[name] = np.array([n.encode() for n in names[::-1]])

    expected = _write_random_keras2_file(path, model, reversed_lists, seed=3)
    weights_io.load_weights(model, path)
    for name, value in _values(model).items():
        np.testing.assert_array_equal(value, expected[name])


def test_shape_mismatch_names_layer_and_shapes_and_exclude_skips_it(tmp_path):
    path = str(tmp_path / "weights.h5")
    weights_io.save_weights(_model(num_classes=3), path)
    target = _model(num_classes=5)
    with pytest.raises(weights_io.WeightsFileError, match=r"mrcnn_class_logits.*\(128, 5\).*\(128, 3\)"):
        weights_io.load_weights(target, path)
    before = _values(target)
    report = weights_io.load_weights(target, path, exclude=["mrcnn_class_logits"])
    assert "mrcnn_class_logits" not in report["loaded"]
    after = _values(target)
    for name in before:
        if name.startswith("mrcnn_class_logits"):
            np.testing.assert_array_equal(after[name], before[name])


def test_no_matching_layer_is_an_error(tmp_path):
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="unrelated")])
    path = str(tmp_path / "other.h5")
    weights_io.save_weights(other, path)
    with pytest.raises(weights_io.WeightsFileError, match="no layer of the model matches"):
        weights_io.load_weights(_model(), path)


def test_interrupted_save_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.h5"
    model = _model()
    weights_io.save_weights(model, str(path), attributes={"epoch": 1})
    original = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", fail)
    with pytest.raises(OSError, match="disk full"):
        weights_io.save_weights(model, str(path), attributes={"epoch": 2})
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.h5"]


def test_all_finite_detects_nan():
    model = _model()
    assert weights_io.all_finite(model)
    variable = model.get_layer("conv1").kernel
    value = variable.numpy()
    value[0, 0, 0, 0] = np.nan
    variable.assign(value)
    assert not weights_io.all_finite(model)


def test_reads_name_lists_split_over_numbered_attributes(tmp_path):
    """Keras 2 splits a list too long for one HDF5 attribute into name0, name1, ..."""
    model = _model()
    path = str(tmp_path / "split.h5")

    def split_lists(attrs, name, names):
        data = np.array([n.encode() for n in names])
        attrs[f"{name}0"], attrs[f"{name}1"] = data[:1], data[1:]

    expected = _write_random_keras2_file(path, model, split_lists, seed=4)
    report = weights_io.load_weights(model, path)
    assert len(report["loaded"]) == 4 and "layer_names1" not in report["attributes"]
    for name, value in _values(model).items():
        np.testing.assert_array_equal(value, expected[name])


def test_long_name_lists_are_written_split_and_read_back(tmp_path):
    names = [f"layer_{i:05d}_" + "x" * 50 for i in range(2000)]    # 2000 x 62 bytes
    with h5py.File(str(tmp_path / "names.h5"), "w") as f:
        weights_io.write_name_list(f.attrs, "layer_names", names)
        keys = sorted(f.attrs.keys())
        assert keys == ["layer_names0", "layer_names1"]
        assert all(f.attrs[k].nbytes <= weights_io.ATTRIBUTE_LIMIT_BYTES for k in keys)
        assert weights_io.read_name_list(f.attrs, "layer_names") == names
        weights_io.write_name_list(f.attrs, "weight_names", ["a/kernel:0", "a/bias:0"])
        assert f.attrs["weight_names"].tolist() == [b"a/kernel:0", b"a/bias:0"]
        assert weights_io.read_name_list(f.attrs, "missing") is None

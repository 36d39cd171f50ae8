"""Weights files in the HDF5 layout of Keras 2, keyed by layer and weight name.

Upstream matterport/Mask_RCNN saved its weights (`mask_rcnn_coco.h5`, its training
checkpoints) with Keras 2's `save_weights` in HDF5. That layout is:

    /                      attrs: layer_names, backend, keras_version
    /<layer name>          attrs: weight_names = ["<layer>/<weight>:0", ...]
    /<layer name>/<layer>/<weight>:0     the array

An attribute list too long for an HDF5 object header (64 KiB) is split by Keras 2 into
`layer_names0`, `layer_names1`, ... (likewise `weight_names0`, ...); both forms are
read, and written the same way.

A nested model (upstream's `rpn_model`) is one group whose weight names carry the inner
layer's name ("rpn_conv_shared/kernel:0"). Keras 3's native `.weights.h5` keys weights by
position instead, so a checkpoint of the training graph would not load into the inference
graph, which has other layers. This module writes and reads the name-keyed layout for our
own checkpoints and upstream files alike, matching every stored weight by its name, never
by position.
"""
import os
import tempfile

import h5py
import keras
import numpy as np


# The largest attribute Keras 2 stores whole: HDF5's object header limit, less a margin.
ATTRIBUTE_LIMIT_BYTES = 64512


class WeightsFileError(ValueError):
    """A weights file that cannot be loaded into the model; the message names the layer."""


def write_name_list(attrs, name, names):
    """Store a list of strings as attribute `name`, split as Keras 2 splits long lists.

    attrs: an h5py AttributeManager. names: list of str. A list whose byte array exceeds
    ATTRIBUTE_LIMIT_BYTES goes into `name0`, `name1`, ... each under the limit.
    """
    data = np.array([n.encode("utf8") for n in names])
    if data.nbytes <= ATTRIBUTE_LIMIT_BYTES:
        attrs[name] = data
        return
    chunk = max(1, ATTRIBUTE_LIMIT_BYTES // max(1, data.dtype.itemsize))
    for index, start in enumerate(range(0, len(data), chunk)):
        attrs[f"{name}{index}"] = data[start:start + chunk]


def read_name_list(attrs, name):
    """The list of strings stored by `write_name_list` (or Keras 2), or None if absent."""
    if name in attrs:
        return [_text(value) for value in attrs[name]]
    if f"{name}0" not in attrs:
        return None
    names, index = [], 0
    while f"{name}{index}" in attrs:
        names.extend(_text(value) for value in attrs[f"{name}{index}"])
        index += 1
    return names


def weight_layers(model):
    """Top-level layers of `model` that own weights, in model order."""
    return [layer for layer in model.layers if layer.weights]


def _weight_key(owner, variable):
    """The name stored for `variable`: "<layer>/<weight>:0".

    `owner` is the layer that holds the variable directly (for a nested model, the inner
    layer), so the key is the same in our files and in upstream's.
    """
    return f"{owner.name}/{variable.name}:0"


def _named_variables(layer):
    """[(key, variable)] for every weight of a top-level layer, nested models flattened."""
    if isinstance(layer, keras.Model):
        pairs = []
        for inner in layer.layers:
            pairs.extend(_named_variables(inner))
        return pairs
    return [(_weight_key(layer, variable), variable) for variable in layer.weights]


def save_weights(model, filepath, attributes=None):
    """Write every weight of `model` to `filepath`, atomically.

    The file is written beside its destination under a temporary name and renamed into
    place only once complete, so an interrupted save never leaves a half-written file
    where a checkpoint is expected.

    Args:
        model: a keras.Model.
        filepath: destination path (".h5").
        attributes: optional dict of extra root attributes (e.g. {"epoch": 3}).
    """
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".h5.tmp", dir=directory)
    os.close(handle)
    try:
        with h5py.File(temporary, "w") as f:
            _write_layers(f, model)
            for key, value in (attributes or {}).items():
                f.attrs[key] = value
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp creates 0600 files
        os.replace(temporary, filepath)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_layers(f, model):
    layers = weight_layers(model)
    write_name_list(f.attrs, "layer_names", [layer.name for layer in layers])
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = keras.__version__.encode("utf8")
    for layer in layers:
        group = f.create_group(layer.name)
        pairs = _named_variables(layer)
        write_name_list(group.attrs, "weight_names", [key for key, _ in pairs])
        for key, variable in pairs:
            group.create_dataset(key, data=np.asarray(variable.numpy()))


def read_weights(filepath):
    """All weights of a name-keyed HDF5 file.

    Returns:
        (weights, attributes): weights is {layer name: {weight key: array}} with keys
        "<inner layer>/<weight>" (":0" removed); attributes are the root attributes.
    """
    try:
        f = h5py.File(filepath, "r")
    except OSError as error:
        raise WeightsFileError(f"cannot open weights file {filepath!r}: {error}") from error
    with f:
        if read_name_list(f.attrs, "layer_names") is None and "model_weights" in f:
            f = f["model_weights"]  # a whole-model file saved with model.save()
        layer_names = read_name_list(f.attrs, "layer_names")
        if layer_names is None:
            raise WeightsFileError(
                f"{filepath!r} is not a name-keyed HDF5 weights file (no 'layer_names' "
                f"attribute); Keras 3 '.weights.h5' files load with keras_model.load_weights")
        weights = {}
        for layer_name in layer_names:
            if layer_name not in f:
                raise WeightsFileError(
                    f"{filepath!r} lists layer {layer_name!r} but holds no group for it")
            group = f[layer_name]
            weights[layer_name] = {
                _strip_suffix(key): np.asarray(group[key])
                for key in read_name_list(group.attrs, "weight_names") or []
            }
        attributes = {key: f.attrs[key] for key in f.attrs
                      if not _is_name_list_key(key, "layer_names")}
    return weights, attributes


def _is_name_list_key(key, name):
    return key == name or (key.startswith(name) and key[len(name):].isdigit())


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _strip_suffix(key):
    return key[:-2] if key.endswith(":0") else key


def _match_key(key, candidates):
    """Find `key` ("layer/weight") among stored keys, tolerating Keras-2 name scopes.

    Keras 2 sometimes stored scoped names such as "mrcnn_class_conv1/mrcnn_class_conv1/
    kernel" or "rpn_model/rpn_conv_shared/kernel"; the last two components decide.
    """
    if key in candidates:
        return key
    tail = "/".join(key.split("/")[-2:])
    matches = [c for c in candidates if "/".join(c.split("/")[-2:]) == tail]
    return matches[0] if len(matches) == 1 else None


def load_weights(model, filepath, exclude=None):
    """Assign the weights stored in `filepath` to the layers of `model` with the same names.

    Every weight is matched by layer name and weight name. Layers of the model that the file
    does not hold keep their values; file layers the model does not have are ignored.

    Args:
        model: a keras.Model.
        filepath: HDF5 weights file in the name-keyed layout.
        exclude: layer names to leave untouched (e.g. the class-specific heads when the
            number of classes differs).
    Returns:
        dict with lists "loaded", "skipped" (in the file, not in the model or excluded) and
        "missing" (model layers with weights that the file lacks), and "attributes".
    Raises:
        WeightsFileError: no layer matches at all, or a stored array's shape differs from
            the model's variable (naming the layer, the weight and both shapes).
    """
    exclude = set(exclude or [])
    stored, attributes = read_weights(filepath)
    report = {"loaded": [], "skipped": [], "missing": [], "attributes": attributes}
    assignments = []
    model_layers = {layer.name: layer for layer in weight_layers(model)}
    for name, layer in model_layers.items():
        if name in exclude:
            continue
        if name not in stored:
            report["missing"].append(name)
            continue
        assignments.extend(_layer_assignments(layer, stored[name], filepath))
        report["loaded"].append(name)
    report["skipped"] = sorted(set(stored) - set(report["loaded"]))
    if not report["loaded"]:
        raise WeightsFileError(
            f"no layer of the model matches a layer in {filepath!r}: the file holds "
            f"{sorted(stored)[:8]}..., the model has {sorted(model_layers)[:8]}...")
    for variable, value in assignments:
        variable.assign(value)
    return report


def _layer_assignments(layer, stored_layer, filepath):
    """[(variable, array)] for one layer, checking that every weight exists and fits."""
    assignments = []
    candidates = list(stored_layer)
    for key, variable in _named_variables(layer):
        found = _match_key(_strip_suffix(key), candidates)
        if found is None:
            raise WeightsFileError(
                f"layer {layer.name!r}: weight {key!r} is not in {filepath!r} "
                f"(the file has {candidates})")
        value = stored_layer[found]
        if tuple(value.shape) != tuple(variable.shape):
            raise WeightsFileError(
                f"layer {layer.name!r}: weight {key!r} has shape {tuple(variable.shape)} in "
                f"the model but {tuple(value.shape)} in {filepath!r}; if the number of "
                f"classes differs, pass exclude=[...] with this layer's name")
        assignments.append((variable, value))
    return assignments


def all_finite(model):
    """True when every weight of `model` is finite (no NaN or infinity)."""
    return all(np.all(np.isfinite(np.asarray(v.numpy()))) for v in model.weights)

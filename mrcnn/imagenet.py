"""ImageNet initialisation of the ResNet-50/101 backbone from keras.applications.

keras.applications ships ImageNet-trained ResNet50/ResNet101 weights (converted from the
original Caffe release) under Keras 3 layer names. This module maps them onto the Caffe
layer names of `mrcnn.nn.backbone` and writes a name-keyed weights file (only backbone
layers) that `MaskRCNN.load_weights(path, by_name=True)` loads:

    keras.applications          mrcnn backbone
    conv1_conv, conv1_bn        conv1, bn_conv1
    conv{s}_block{i}_1_conv     res{s}{letter i}_branch2a  (and _bn -> bn{s}{letter}_branch2a)
    conv{s}_block{i}_2_conv     res{s}{letter i}_branch2b
    conv{s}_block{i}_3_conv     res{s}{letter i}_branch2c
    conv{s}_block1_0_conv       res{s}a_branch1            (projection shortcut)

with block i = 1, 2, ... lettered a, b, ... Both graphs put a block's stride in its first
1x1 conv (`_1_conv` / `branch2a`) and in the projection, and use "same" 3x3 convs, so
every residual block computes the same function. The stems differ in four ways:

1. Input channels. keras.applications' "caffe" preprocessing feeds BGR minus the BGR
   mean (103.939, 116.779, 123.68); our graph takes RGB minus Config.MEAN_PIXEL. The
   input channels of `conv1`'s kernel are reversed, so our conv1 on an RGB image equals
   theirs on the BGR image.
2. Mean pixel. MEAN_PIXEL (123.7, 116.8, 103.9) differs from the Caffe mean by at most
   0.04 grey levels, a constant input offset that is left as it is by default (below
   uint8 resolution). `mean_pixel=` folds the difference into conv1's bias instead,
   which is exact wherever the 7x7 kernel does not reach into the zero padding (all but
   the outermost 2 output pixels on each side of conv1's output).
3. BatchNorm epsilon: 1.001e-5 there, 1e-3 here (Keras' default, as upstream's weights
   were trained with). The converted moving variance is var + 1.001e-5 - 1e-3 so that
   var' + 1e-3 == var + 1.001e-5. Where var < 1e-3 - 1.001e-5 that would be negative:
   var' is clipped at 0 and the remainder goes into gamma (gamma' = gamma * sqrt(1e-3 /
   (var + 1.001e-5))), so a BatchNorm on moving statistics (TRAIN_BN False, the default)
   computes exactly the same output. Trained with batch statistics (TRAIN_BN None/True),
   such a channel starts with that rescaled gamma.
4. Max pool. keras.applications zero-pads conv1's output by 1 and max-pools 3x3/2
   "valid", so pooled pixel i covers conv1 pixels 2i-1..2i+1. Our stem (as upstream and
   Caffe) pools "same", covering 2i..2i+2: the pooling grid sits one conv1 pixel (two
   input pixels) lower-right. Our stem on an image equals theirs on the image shifted
   two pixels up-left, except in the first two output rows and columns (the shift moves
   image rows 0..1 into their zero padding). No weight can change this;
   fine-tuning absorbs it, as it did for upstream, whose ResNet pooled the same way.

There is no ImageNet ResNet-18 in keras.applications; "resnet18" raises a ValueError.
"""
import os
import re

import keras
import numpy as np

from mrcnn import weights_io
from mrcnn.nn.backbone import resnet_graph

APPLICATIONS = {"resnet50": "ResNet50", "resnet101": "ResNet101"}
WEIGHTS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# keras.applications' "no top" weight files and their md5 sums.
NOTOP_FILES = {
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                 "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                  "88cf7a10940856eca736dc7b7e228a21"),
}
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
"""Mean subtracted by keras.applications' "caffe" preprocessing, in BGR order."""

_BLOCK_RE = re.compile(r"^conv(\d)_block(\d+)_(\d)_(conv|bn)$")
_BRANCHES = {"0": "1", "1": "2a", "2": "2b", "3": "2c"}


class ImageNetWeightsError(RuntimeError):
    """The keras.applications ImageNet weights could not be obtained."""


def caffe_layer_name(keras_name):
    """Our backbone's name for a keras.applications ResNet v1 layer, or None.

    "conv1_conv" -> "conv1", "conv1_bn" -> "bn_conv1", "conv3_block2_1_conv" ->
    "res3b_branch2a", "conv4_block1_0_bn" -> "bn4a_branch1"; None for layers without a
    counterpart (e.g. the classifier "predictions").
    """
    if keras_name == "conv1_conv":
        return "conv1"
    if keras_name == "conv1_bn":
        return "bn_conv1"
    match = _BLOCK_RE.match(keras_name)
    if not match:
        return None
    stage, block, branch, kind = match.groups()
    letter = chr(ord("a") + int(block) - 1)
    suffix = f"{stage}{letter}_branch{_BRANCHES[branch]}"
    return ("res" if kind == "conv" else "bn") + suffix


def fold_epsilon(gamma, beta, moving_mean, moving_variance, epsilon_from, epsilon_to):
    """BatchNorm weights for another epsilon, same inference output.

    Inference-mode BatchNorm computes gamma * (x - mean) / sqrt(var + eps) + beta. The
    variance is shifted by epsilon_from - epsilon_to; where that would be negative it is
    clipped at 0 and gamma takes the remaining factor.

    Args:
        gamma, beta, moving_mean, moving_variance: float [C].
    Returns:
        (gamma', beta, moving_mean, moving_variance') float32 [C] each.
    """
    variance = np.asarray(moving_variance, np.float64)
    folded = np.maximum(variance + epsilon_from - epsilon_to, 0.0)
    correction = np.sqrt((folded + epsilon_to) / (variance + epsilon_from))
    gamma = np.asarray(gamma, np.float64) * correction
    return tuple(np.asarray(a, np.float32) for a in (gamma, beta, moving_mean, folded))


def bgr_to_rgb_kernel(kernel):
    """A first conv kernel [kh, kw, 3, out] for RGB input from one trained on BGR."""
    return np.asarray(kernel)[:, :, ::-1, :]


def fold_mean_difference(kernel, bias, mean_pixel, reference_mean_rgb):
    """conv1 bias for inputs x - mean_pixel when the kernel expects x - reference_mean.

    (x - reference) = (x - mean_pixel) + (mean_pixel - reference): the constant term
    passes through the linear conv as sum over (kh, kw, c) of kernel * difference[c].

    Args:
        kernel: float [kh, kw, 3, out] for RGB input; bias: float [out].
        mean_pixel, reference_mean_rgb: RGB means [3].
    Returns:
        float32 bias [out].
    """
    difference = (np.asarray(mean_pixel, np.float64)
                  - np.asarray(reference_mean_rgb, np.float64))
    shift = np.einsum("hwco,c->o", np.asarray(kernel, np.float64), difference)
    return (np.asarray(bias, np.float64) + shift).astype(np.float32)


def keras_resnet(architecture, weights="imagenet", cache_dir=None):
    """keras.applications' ResNet50/101 without its classifier, on any image size.

    Args:
        architecture: "resnet50" or "resnet101".
        weights: "imagenet" (download, cached under `cache_dir`/models, by default
            ~/.keras/models), the local path of keras.applications' "..._notop.h5" file,
            or None (random initial values).
    Raises:
        ValueError: an architecture keras.applications has no ImageNet weights for.
        ImageNetWeightsError: the download failed or the local file does not exist.
    """
    if architecture not in APPLICATIONS:
        raise ValueError(f"ImageNet weights exist for {sorted(APPLICATIONS)} only, got "
                         f"{architecture!r} (ResNet-18 has none in keras.applications)")
    if weights == "imagenet":
        weights = download_notop_weights(architecture, cache_dir)
    elif weights is not None and not os.path.isfile(weights):
        raise ImageNetWeightsError(f"weights file {weights!r} does not exist")
    builder = getattr(keras.applications, APPLICATIONS[architecture])
    return builder(weights=weights, include_top=False, input_shape=(None, None, 3))


def download_notop_weights(architecture, cache_dir=None):
    """Path of keras.applications' "no top" ImageNet file, downloaded once.

    Raises:
        ImageNetWeightsError: when the file cannot be downloaded, saying where to get it
            and how to pass a local copy.
    """
    filename, md5 = NOTOP_FILES[architecture]
    url = WEIGHTS_BASE_URL + filename
    try:
        return keras.utils.get_file(filename, url, cache_subdir="models", file_hash=md5,
                                    cache_dir=cache_dir)
    except Exception as error:  # get_file wraps network errors in a bare Exception
        raise ImageNetWeightsError(
            f"Could not download the ImageNet weights of {architecture} from {url} "
            f"({error}). On a machine with network access download that file, copy it "
            f"here and pass its path: imagenet_weights_file({architecture!r}, "
            f"destination, weights='/path/to/{filename}') (or place it in "
            f"~/.keras/models/).") from error


def backbone_model(architecture):
    """Our ResNet backbone alone as a keras.Model: image [B, H, W, 3] -> [C2..C5]."""
    image = keras.Input(shape=(None, None, 3), name="input_image")
    _, c2, c3, c4, c5 = resnet_graph(image, architecture, stage5=True, train_bn=False)
    return keras.Model(image, [c2, c3, c4, c5], name=f"{architecture}_backbone")


def _converted_layer_weights(layer, target, mean_pixel):
    """The values of keras.applications `layer` in `target`'s weight order."""
    values = [np.asarray(v.numpy()) for v in layer.weights]
    if isinstance(layer, keras.layers.BatchNormalization):
        return list(fold_epsilon(*values, epsilon_from=layer.epsilon,
                                 epsilon_to=target.epsilon))
    kernel, bias = values
    if layer.name == "conv1_conv":
        kernel = bgr_to_rgb_kernel(kernel)
        if mean_pixel is not None:
            bias = fold_mean_difference(kernel, bias, mean_pixel, CAFFE_MEAN_BGR[::-1])
    return [kernel, bias]


def transfer_weights(source, backbone, mean_pixel=None):
    """Copy a keras.applications ResNet's weights into our backbone, converted.

    Args:
        source: keras.applications ResNet50/101 (include_top=False).
        backbone: a model holding our backbone layers (e.g. `backbone_model`).
        mean_pixel: optional RGB MEAN_PIXEL to fold into conv1's bias (see module doc).
    Returns:
        list of our layer names that received weights.
    Raises:
        ValueError: a source layer has no counterpart, or shapes differ.
    """
    targets = {layer.name: layer for layer in backbone.layers}
    assigned = []
    for layer in source.layers:
        if not layer.weights:
            continue
        name = caffe_layer_name(layer.name)
        if name is None or name not in targets:
            raise ValueError(f"keras.applications layer {layer.name!r} has no counterpart "
                             f"{name!r} in the backbone")
        target = targets[name]
        values = _converted_layer_weights(layer, target, mean_pixel)
        for variable, value in zip(target.weights, values):
            if tuple(variable.shape) != value.shape:
                raise ValueError(f"{layer.name} -> {name}: weight {variable.name} has shape "
                                 f"{tuple(variable.shape)}, the source {value.shape}")
            variable.assign(value)
        assigned.append(name)
    return assigned


def imagenet_weights_file(architecture, destination, weights="imagenet", mean_pixel=None,
                          cache_dir=None):
    """Write ImageNet backbone weights under our layer names to `destination`.

    Args:
        architecture: "resnet50" or "resnet101" (Config.BACKBONE).
        destination: path of the ".h5" file to write (name-keyed, see weights_io).
        weights: "imagenet" (downloaded by keras), a local path of keras.applications'
            "..._notop.h5" file (offline machines), or None (random; for tests).
        mean_pixel: optional RGB MEAN_PIXEL to fold the mean difference into conv1.
        cache_dir: where keras caches the download (default ~/.keras).
    Returns:
        destination; load it with `model.load_weights(destination, by_name=True)`.
    Raises:
        ImageNetWeightsError: the download failed (message says how to pass a file).
    """
    source = keras_resnet(architecture, weights=weights, cache_dir=cache_dir)
    backbone = backbone_model(architecture)
    transfer_weights(source, backbone, mean_pixel=mean_pixel)
    origin = "random" if weights is None else os.path.basename(str(weights))
    attributes = {"source": f"keras.applications.{APPLICATIONS[architecture]} ({origin})"}
    weights_io.save_weights(backbone, destination, attributes=attributes)
    return destination


def get_imagenet_weights(architecture="resnet101", weights="imagenet", cache_dir=None):
    """Path of a converted ImageNet backbone file, converted once and cached.

    The file is `mrcnn_<architecture>_imagenet.h5` next to keras' download cache
    (`cache_dir`/models, by default ~/.keras/models).

    Args:
        weights: "imagenet" (download) or the local path of keras.applications'
            "..._notop.h5" file.
    """
    if weights is None:
        raise ValueError("get_imagenet_weights needs weights='imagenet' or a file path")
    root = cache_dir or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(root, "models", f"mrcnn_{architecture}_imagenet.h5")
    if not os.path.exists(path):
        imagenet_weights_file(architecture, path, weights=weights, cache_dir=cache_dir)
    return path

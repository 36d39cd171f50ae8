"""ResNet backbones: the bottom-up pathway C1..C5 of the feature pyramid.

Layer names follow the Caffe ResNet release, as upstream matterport/Mask_RCNN, so its
weight files load by name: `conv1`, `bn_conv1`, `res{stage}{block}_branch2{a,b,c}`,
`bn{stage}{block}_branch2{a,b,c}`, and the projection shortcut `res{stage}a_branch1`,
`bn{stage}a_branch1`. Blocks are lettered a, b, c, ...

Output strides relative to the input image: C1 4 (after the stem's max pool), C2 4,
C3 8, C4 16, C5 32. Feature maps are NHWC.
"""
import keras

from mrcnn.nn.batch_norm import BatchNorm

# Blocks per stage 2..5; bottleneck widths per stage (the block's 1x1, 3x3, 1x1 convs).
BOTTLENECK_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}
BOTTLENECK_FILTERS = ((64, 64, 256), (128, 128, 512), (256, 256, 1024), (512, 512, 2048))
BASIC_BLOCKS = {"resnet18": (2, 2, 2, 2)}
BASIC_FILTERS = (64, 128, 256, 512)
ARCHITECTURES = tuple(BOTTLENECK_BLOCKS) + tuple(BASIC_BLOCKS)


def _block_letter(index):
    """Block 0 -> 'a', 1 -> 'b', ... (resnet101's stage 4 runs to 'w')."""
    return chr(ord("a") + index)


def _conv_bn(x, filters, kernel_size, name, bn_name, train_bn, strides=1, padding="valid",
             relu=True):
    """Conv2D (with bias) -> BatchNorm -> optional ReLU."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                            use_bias=True, name=name)(x)
    x = BatchNorm(train_bn=train_bn, name=bn_name)(x)
    if relu:
        x = keras.layers.Activation("relu")(x)
    return x


def _shortcut(x, filters, stage, strides, train_bn):
    """Projection shortcut of a block's first unit: 1x1 conv `res{stage}a_branch1` + BN."""
    return _conv_bn(x, filters, 1, f"res{stage}a_branch1", f"bn{stage}a_branch1", train_bn,
                    strides=strides, relu=False)


def _merge(x, shortcut, stage, block):
    """Residual addition and the block's output ReLU `res{stage}{block}_out`."""
    x = keras.layers.Add()([x, shortcut])
    return keras.layers.Activation("relu", name=f"res{stage}{block}_out")(x)


def bottleneck_block(x, filters, stage, block, strides=1, project=False, train_bn=False):
    """ResNet bottleneck: 1x1 -> 3x3 -> 1x1 plus a shortcut.

    Args:
        x: float [B, H, W, C].
        filters: (f1, f2, f3) widths of the three convs.
        stage, block: int stage (2..5) and block letter, for the layer names.
        strides: stride of the block, applied in the first 1x1 conv and the projection
            (the Caffe layout upstream's weights were trained with).
        project: True for a stage's first block (upstream's conv_block): 1x1 projection
            shortcut; False (identity_block) adds the input unchanged.
        train_bn: TRAIN_BN mode of the BatchNorm layers.
    Returns:
        float [B, H / strides, W / strides, f3].
    """
    f1, f2, f3 = filters
    conv, bn = f"res{stage}{block}_branch", f"bn{stage}{block}_branch"
    y = _conv_bn(x, f1, 1, conv + "2a", bn + "2a", train_bn, strides=strides)
    y = _conv_bn(y, f2, 3, conv + "2b", bn + "2b", train_bn, padding="same")
    y = _conv_bn(y, f3, 1, conv + "2c", bn + "2c", train_bn, relu=False)
    shortcut = _shortcut(x, f3, stage, strides, train_bn) if project else x
    return _merge(y, shortcut, stage, block)


def basic_block(x, filters, stage, block, strides=1, project=False, train_bn=False):
    """ResNet basic block (ResNet-18/34): 3x3 -> 3x3 plus a shortcut.

    Args:
        x: float [B, H, W, C].
        filters: int width of both convs.
        stage, block: for the layer names `res{stage}{block}_branch2{a,b}`.
        strides: stride of the first 3x3 conv and the projection.
        project: use the 1x1 projection shortcut `res{stage}a_branch1` (when the shape
            changes); otherwise add the input unchanged.
        train_bn: TRAIN_BN mode of the BatchNorm layers.
    Returns:
        float [B, H / strides, W / strides, filters].
    """
    conv, bn = f"res{stage}{block}_branch", f"bn{stage}{block}_branch"
    y = _conv_bn(x, filters, 3, conv + "2a", bn + "2a", train_bn, strides=strides,
                 padding="same")
    y = _conv_bn(y, filters, 3, conv + "2b", bn + "2b", train_bn, padding="same",
                 relu=False)
    shortcut = _shortcut(x, filters, stage, strides, train_bn) if project else x
    return _merge(y, shortcut, stage, block)


def stem(input_image, train_bn=False):
    """Stage 1: pad 3, 7x7/2 conv `conv1`, BN `bn_conv1`, ReLU, 3x3/2 max pool.

    Input float [B, H, W, 3]; output C1 float [B, H/4, W/4, 64].
    """
    x = keras.layers.ZeroPadding2D((3, 3))(input_image)
    x = _conv_bn(x, 64, 7, "conv1", "bn_conv1", train_bn, strides=2)
    return keras.layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)


def resnet_graph(input_image, architecture, stage5=True, train_bn=False):
    """Build a ResNet on `input_image`.

    Args:
        input_image: float [B, H, W, 3] molded image (H, W multiples of 32, or None).
        architecture: "resnet50", "resnet101" (bottleneck blocks, upstream's weight
            layout) or "resnet18" (basic blocks, widths 64..512, two blocks per stage).
        stage5: build stage 5; if False, C5 is None.
        train_bn: TRAIN_BN mode of every BatchNorm (None, False or True).
    Returns:
        [C1, C2, C3, C4, C5], float [B, H/s, W/s, C] with s = 4, 4, 8, 16, 32.
    """
    if architecture in BOTTLENECK_BLOCKS:
        block, counts, widths = bottleneck_block, BOTTLENECK_BLOCKS[architecture], \
            BOTTLENECK_FILTERS
    elif architecture in BASIC_BLOCKS:
        block, counts, widths = basic_block, BASIC_BLOCKS[architecture], BASIC_FILTERS
    else:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    x = c1 = stem(input_image, train_bn)
    channels = 64
    outputs = [c1]
    for stage, (count, width) in enumerate(zip(counts, widths), start=2):
        if not stage5 and stage == 5:
            outputs.append(None)
            break
        out_channels = width[-1] if isinstance(width, tuple) else width
        strides = 1 if stage == 2 else 2
        for index in range(count):
            first = index == 0
            x = block(x, width, stage, _block_letter(index),
                      strides=strides if first else 1,
                      project=first and (strides != 1 or channels != out_channels),
                      train_bn=train_bn)
        channels = out_channels
        outputs.append(x)
    return outputs


def build_backbone(input_image, backbone, stage5=True, train_bn=False):
    """C1..C5 from a built-in architecture name or a user callable.

    Args:
        input_image: float [B, H, W, 3] molded image.
        backbone: Config.BACKBONE, a name in ARCHITECTURES or a
            callable(input_image, stage5=..., train_bn=...) -> [C1, C2, C3, C4, C5].
        stage5, train_bn: as in resnet_graph.
    Returns:
        [C1, C2, C3, C4, C5] with output strides 4, 4, 8, 16, 32.
    """
    if callable(backbone):
        features = backbone(input_image, stage5=stage5, train_bn=train_bn)
        features = list(features)
        if len(features) != 5:
            raise ValueError(f"BACKBONE callable must return [C1, C2, C3, C4, C5], "
                             f"got {len(features)} tensors")
        return features
    return resnet_graph(input_image, backbone, stage5=stage5, train_bn=train_bn)

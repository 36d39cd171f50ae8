"""Region Proposal Network head, shared by every pyramid level.

The head is a nested keras.Model named `rpn_model` (as upstream, so its weights load by
name from upstream files): a 3x3 conv `rpn_conv_shared` (512, ReLU, stride anchor_stride)
followed by two 1x1 convs, `rpn_class_raw` (2 logits per anchor) and `rpn_bbox_pred`
(4 deltas per anchor).

Anchor order: the conv outputs [B, h, w, A * k] are reshaped to [B, h * w * A, k], so
row (y * w + x) * A + a holds anchor a (a ratio index) of feature cell (y, x): the
(y, x, ratio) order of utils.generate_anchors. Concatenating levels P2..P6 in that order
gives the order of utils.generate_pyramid_anchors.
"""
import keras

RPN_OUTPUT_NAMES = ("rpn_class_logits", "rpn_class", "rpn_bbox")


def rpn_graph(feature_map, anchors_per_location, anchor_stride, conv_size=512):
    """Apply the RPN head layers to one feature map.

    Args:
        feature_map: float [B, h, w, depth].
        anchors_per_location: A, the number of anchor ratios per cell.
        anchor_stride: 1 for an anchor at every cell, 2 for every other cell.
        conv_size: channels of `rpn_conv_shared` (Config.RPN_CONV_SIZE; upstream 512).
    Returns:
        rpn_class_logits float [B, h'*w'*A, 2] (background, foreground) before softmax,
        rpn_probs float [B, h'*w'*A, 2] softmax of the logits,
        rpn_bbox float [B, h'*w'*A, 4] deltas (dy, dx, log dh, log dw) divided by
        RPN_BBOX_STD_DEV; h' = ceil(h / anchor_stride), likewise w'.
    """
    shared = keras.layers.Conv2D(conv_size, (3, 3), padding="same", activation="relu",
                                 strides=anchor_stride, name="rpn_conv_shared")(feature_map)
    x = keras.layers.Conv2D(2 * anchors_per_location, (1, 1), padding="valid",
                            activation="linear", name="rpn_class_raw")(shared)
    rpn_class_logits = keras.layers.Reshape((-1, 2), name="rpn_class_logits_flat")(x)
    rpn_probs = keras.layers.Activation("softmax", name="rpn_class_probs",
                                          dtype="float32")(rpn_class_logits)
    x = keras.layers.Conv2D(4 * anchors_per_location, (1, 1), padding="valid",
                            activation="linear", name="rpn_bbox_pred")(shared)
    rpn_bbox = keras.layers.Reshape((-1, 4), name="rpn_bbox_flat")(x)
    return [rpn_class_logits, rpn_probs, rpn_bbox]


def build_rpn_model(anchor_stride, anchors_per_location, depth, conv_size=512):
    """The RPN head as a keras.Model `rpn_model`, to share its weights over levels.

    Args:
        anchor_stride: Config.RPN_ANCHOR_STRIDE.
        anchors_per_location: len(Config.RPN_ANCHOR_RATIOS).
        depth: channels of the feature maps (Config.TOP_DOWN_PYRAMID_SIZE).
        conv_size: channels of `rpn_conv_shared` (Config.RPN_CONV_SIZE; upstream 512).
    Returns:
        keras.Model with input `input_rpn_feature_map` float [B, None, None, depth] and
        outputs [rpn_class_logits, rpn_probs, rpn_bbox] as in rpn_graph.
    """
    feature_map = keras.Input(shape=(None, None, depth), name="input_rpn_feature_map")
    outputs = rpn_graph(feature_map, anchors_per_location, anchor_stride, conv_size)
    return keras.Model([feature_map], outputs, name="rpn_model")


def rpn_on_pyramid(rpn_model, feature_maps):
    """Run the shared RPN on every pyramid level and concatenate over levels.

    Args:
        rpn_model: from build_rpn_model.
        feature_maps: [P2, P3, P4, P5, P6], float [B, h_k, w_k, depth].
    Returns:
        rpn_class_logits float [B, A, 2], rpn_class float [B, A, 2] (softmax),
        rpn_bbox float [B, A, 4]; A = total anchors, in generate_pyramid_anchors order.
        The Concatenate layers are named `rpn_class_logits`, `rpn_class`, `rpn_bbox`.
    """
    per_level = [rpn_model([p]) for p in feature_maps]
    return [keras.layers.Concatenate(axis=1, name=name)([level[i] for level in per_level])
            for i, name in enumerate(RPN_OUTPUT_NAMES)]

"""XLA on the convolutional part of the inference graph: with and without jit_compile.

crop_and_resize and NMS have no XLA kernel, so only the sections before them can be
compiled: the backbone, the FPN and the RPN head (image -> P2..P6, rpn_class, rpn_bbox),
which hold most of detect()'s time. This times that sub-model in one tf.function with
jit_compile=False and in one with jit_compile=True, alternately in the same process
(seeded random weights, ResNet-50, one size x size image), checks both give the same
outputs, and prints one JSON line with the medians and the ratio.

    python bench/bench_xla.py [--size 1024] [--runs 3]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from bench_detect import _alternate_seconds, build_model  # noqa: E402

import numpy as np  # noqa: E402

PYRAMID_LAYERS = ("fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6")


def convolutional_part(keras_model):
    """Sub-model image -> (P2..P6, rpn_class, rpn_bbox) of an inference graph."""
    import keras

    outputs = [keras_model.get_layer(name).output for name in PYRAMID_LAYERS]
    outputs += [keras_model.outputs[5], keras_model.outputs[6]]     # rpn_class, rpn_bbox
    image = keras_model.input["input_image"] if isinstance(keras_model.input, dict) \
        else keras_model.input[0]
    return keras.Model(inputs=image, outputs=outputs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from mrcnn.console import quiet_tensorflow
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = build_model("resnet50", args.size)
    part = convolutional_part(model.keras_model)
    image = tf.constant(np.random.RandomState(0).normal(
        size=(1, args.size, args.size, 3)).astype(np.float32))
    plain = tf.function(lambda x: part(x, training=False), jit_compile=False)
    xla = tf.function(lambda x: part(x, training=False), jit_compile=True)
    difference = max(float(tf.reduce_max(tf.abs(a - b)))
                     for a, b in zip(plain(image), xla(image)))
    plain_s, xla_s = _alternate_seconds(lambda: [t.numpy() for t in plain(image)],
                                        lambda: [t.numpy() for t in xla(image)], args.runs)
    print(json.dumps({"section": "backbone+fpn+rpn", "size": args.size,
                      "plain_s": round(plain_s, 3), "xla_s": round(xla_s, 3),
                      "ratio": round(xla_s / plain_s, 3),
                      "max_abs_difference": difference}), flush=True)


if __name__ == "__main__":
    main()

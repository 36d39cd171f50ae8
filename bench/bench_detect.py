"""Detect latency for one 1024x1024 image against the backbone-only floor.

Prints one JSON line per backbone: median detect() seconds (molding, graph, unmolding and
mask pasting included) after warm-up, the graph alone and what remains (molding and
unmolding in numpy/OpenCV), the median backbone-only forward seconds on the same molded
input, and the ratio of detect to the backbone. Random weights: the graph's cost does not depend on them,
but DETECTION_MIN_CONFIDENCE is 0 so that detect() pastes the full
DETECTION_MAX_INSTANCES masks (the worst case for unmolding).

With --stages it also prints "stages_s": the seconds of the inference graph cut after each
stage (backbone C5, FPN P2, proposals, detections, masks = the whole graph), cumulative, so
the differences show where the graph's time goes.

    python bench/bench_detect.py [--backbones resnet50 resnet101] [--runs 5] [--stages]
"""
import argparse
import json
import statistics
import tempfile
import time

import numpy as np


def _median_seconds(fn, runs):
    fn()  # warm-up: tracing and first-call allocations
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# Layers after which the inference graph is cut, in graph order.
STAGE_LAYERS = (("backbone", "res5c_branch2c"), ("fpn", "fpn_p2"), ("proposals", "ROI"),
                ("detections", "mrcnn_detection"), ("masks", "mrcnn_mask_unfold"))


def stage_seconds(keras_model, feed, runs):
    """{stage: median seconds of the graph from its inputs up to that stage's layer}."""
    import keras
    import tensorflow as tf

    seconds = {}
    for stage, layer_name in STAGE_LAYERS:
        cut = keras.Model(keras_model.inputs, keras_model.get_layer(layer_name).output)
        forward = tf.function(lambda x, cut=cut: cut(x, training=False))
        seconds[stage] = round(_median_seconds(lambda: forward(feed).numpy(), runs), 4)
    return seconds


def bench_backbone(backbone, runs, size, stages=False):
    import keras
    import tensorflow as tf

    import mrcnn.model as modellib
    from mrcnn.config import Config

    class BenchConfig(Config):
        NAME = "bench"
        BACKBONE = backbone
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
        NUM_CLASSES = 81
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        DETECTION_MIN_CONFIDENCE = 0.0

    model_dir = tempfile.mkdtemp(prefix="mrcnn_bench_")
    model = modellib.MaskRCNN("inference", BenchConfig(), model_dir=model_dir)
    image = np.random.RandomState(0).randint(0, 255, (size, size, 3), dtype=np.uint8)
    detect_s = _median_seconds(lambda: model.detect([image]), runs)
    molded_images, metas, _ = model.mold_inputs([image])
    graph_s = _median_seconds(lambda: model._predict(molded_images, metas), runs)

    c5 = model.keras_model.get_layer("res5c_branch2c").output
    backbone_model = keras.Model(model.keras_model.get_layer("input_image").output, c5)
    molded, _, _ = model.mold_inputs([image])
    molded = tf.constant(molded)
    forward = tf.function(lambda x: backbone_model(x, training=False))
    backbone_s = _median_seconds(lambda: forward(molded).numpy(), runs)
    result = {"bench": "detect", "backbone": backbone, "image": f"{size}x{size}",
              "detect_s": round(detect_s, 4), "graph_s": round(graph_s, 4),
              "outside_graph_s": round(detect_s - graph_s, 4),
              "backbone_forward_s": round(backbone_s, 4),
              "detect_over_backbone": round(detect_s / backbone_s, 2), "runs": runs,
              "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"}
    if stages:
        feed = {"input_image": molded, "input_image_meta": tf.constant(metas)}
        result["stages_s"] = stage_seconds(model.keras_model, feed, runs)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "resnet101"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--stages", action="store_true",
                        help="also time the graph cut after each stage")
    args = parser.parse_args()
    for backbone in args.backbones:
        print(json.dumps(bench_backbone(backbone, args.runs, args.size, args.stages)),
              flush=True)


if __name__ == "__main__":
    main()

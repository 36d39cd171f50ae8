"""Detect latency for one 1024x1024 image against the backbone-only floor.

Prints one JSON line per backbone: median detect() seconds (molding, graph, unmolding and
mask pasting included) after warm-up, the graph alone and what remains (molding and
unmolding in numpy/OpenCV), the median backbone-only forward seconds on the same molded
input, and the ratio of detect to the backbone. Random weights: the graph's cost does not depend on them,
but DETECTION_MIN_CONFIDENCE is 0 so that detect() pastes the full
DETECTION_MAX_INSTANCES masks (the worst case for unmolding).

"outside_share" is the share of detect() outside the graph call (target: at most 3% for
100 detections at 1024x1024) and "peak_rss_mb" the process's peak resident memory so far.

With --stages it also prints "stages_s": the seconds of the inference graph cut after each
stage (backbone C5, FPN P2, proposals, detections, masks = the whole graph), cumulative, so
the differences show where the graph's time goes.

With --compare it first prints, for the first backbone, the earlier ways beside the
current ones, run alternately in the same process (the machine's load then weighs on
both alike; compare the ratios):

* "mold": utils.resize_image of a 480x640 uint8 image into the 1024 square against the
  same resize in float64 (utils.resize with preserve_range, padded, truncated);
* "paste": inference.paste_masks of 100 masks into a 1024x1024 image against writing
  each straight into the bool [H, W, N] result (strided over all N masks);
* "mask_fetch": after one graph call, bringing each detection's class mask
  [B, D, 28, 28] (the graph's detection_masks, what detect() fetches) to numpy, against
  the whole mrcnn_mask [B, D, 28, 28, NC] and picking the class channels in numpy;
* "partial_batch": one image with BATCH_SIZE 2 run alone against padded to two images by
  repeating it.

With --batches it first prints "throughput": images/s of detect() on N different
1024x1024 images with BATCH_SIZE = N (first backbone), and the peak RSS after each (in
increasing order of N, the peak of that batch size).

    python bench/bench_detect.py [--backbones resnet50 resnet101] [--runs 5] [--stages]
        [--compare] [--batches 1 4 8] [--batch-runs 2]
"""
import argparse
import json
import resource
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


def _peak_rss_mb():
    """Peak resident memory of this process so far, in MiB (Linux: ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _alternate_seconds(first, second, runs):
    """Median seconds of two functions timed alternately (each warmed up first)."""
    first()
    second()
    times = ([], [])
    for _ in range(runs):
        for fn, bucket in zip((first, second), times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def build_model(backbone, size, images_per_gpu=1, precision=None):
    """An inference MaskRCNN with random weights, 81 classes, size x size square images.

    precision: config.MIXED_PRECISION (None or "float32": float32)."""
    import mrcnn.model as modellib
    from mrcnn.config import Config

    class BenchConfig(Config):
        NAME = "bench"
        BACKBONE = backbone
        GPU_COUNT = 1
        IMAGES_PER_GPU = images_per_gpu
        NUM_CLASSES = 81
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        DETECTION_MIN_CONFIDENCE = 0.0
        MIXED_PRECISION = None if precision == "float32" else precision

    model_dir = tempfile.mkdtemp(prefix="mrcnn_bench_")
    return modellib.MaskRCNN("inference", BenchConfig(), model_dir=model_dir)


def compare_mold(runs, size=1024):
    """resize_image (float32 for uint8) against the float64 resize, 480x640 -> size."""
    from mrcnn import utils

    image = np.random.RandomState(1).randint(0, 256, (480, 640, 3), dtype=np.uint8)
    _, window, _, padding, _ = utils.resize_image(image, max_dim=size, min_dim=size)
    shape = (window[2] - window[0], window[3] - window[1])

    def float64_resize():
        resized = utils.resize(image, shape, preserve_range=True)
        return np.pad(resized, padding).astype(np.uint8)

    current = lambda: utils.resize_image(image, max_dim=size, min_dim=size)  # noqa: E731
    new_s, old_s = _alternate_seconds(current, float64_resize, max(runs, 50))
    differing = np.count_nonzero(current()[0] != float64_resize())
    return {"bench": "mold", "image": "480x640", "to": f"{size}x{size}",
            "resize_image_s": round(new_s, 5), "float64_resize_s": round(old_s, 5),
            "speedup": round(old_s / new_s, 2), "values_differing": int(differing)}


def _paste_into_hwn(masks, boxes, height, width):
    """The earlier paste: each mask written straight into bool [H, W, N]."""
    import cv2

    full = np.zeros((height, width, len(boxes)), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        resized = cv2.resize(masks[i], (int(x2 - x1), int(y2 - y1)),
                             interpolation=cv2.INTER_LINEAR)
        full[y1:y2, x1:x2, i] = resized >= 0.5
    return full


def compare_paste(runs, size=1024, count=100):
    """inference.paste_masks against writing [H, W, N] directly: 100 boxes in size^2."""
    from mrcnn import inference

    rng = np.random.RandomState(4)
    corners = rng.randint(0, int(size * 0.8), (count, 2))
    sides = rng.randint(int(size * 0.02), int(size * 0.2), (count, 2))
    boxes = np.concatenate([corners, corners + sides], axis=1)
    masks = rng.uniform(size=(count, 28, 28)).astype(np.float32)
    new_s, old_s = _alternate_seconds(
        lambda: inference.paste_masks(masks, boxes, (size, size)),
        lambda: _paste_into_hwn(masks, boxes, size, size), max(runs, 20))
    assert np.array_equal(inference.paste_masks(masks, boxes, (size, size)),
                          _paste_into_hwn(masks, boxes, size, size))
    return {"bench": "paste", "masks": count, "image": f"{size}x{size}",
            "paste_masks_s": round(new_s, 4), "paste_into_hwn_s": round(old_s, 4),
            "speedup": round(old_s / new_s, 2)}


def _class_channels(detections, masks):
    """Numpy: each detection's class channel of [B, D, h, w, NC] masks (the old unmold)."""
    picked = []
    for rows, image_masks in zip(detections, masks):
        class_ids = rows[:, 4].astype(np.int32)
        picked.append(image_masks[np.arange(len(rows)), :, :, class_ids])
    return picked


def compare_fetch(model, image, runs):
    """Host side of the masks of one graph call: the class masks detect() fetches against
    the whole mrcnn_mask with a numpy pick of the class channels (the earlier way)."""
    import tensorflow as tf

    molded, metas, _ = model.mold_inputs([image])
    outputs = model.keras_model({"input_image": tf.constant(molded),
                                 "input_image_meta": tf.constant(metas)}, training=False)
    detections = outputs["detections"].numpy()
    whole, picked = outputs["mrcnn_mask"], outputs["detection_masks"]
    new_s, old_s = _alternate_seconds(
        lambda: picked.numpy(), lambda: _class_channels(detections, whole.numpy()),
        max(runs, 50))
    count = int(np.count_nonzero(detections[0, :, 4]))
    np.testing.assert_array_equal(picked.numpy()[0][:count],
                                  _class_channels(detections, whole.numpy())[0][:count])
    return {"bench": "mask_fetch", "detections": count,
            "class_masks_s": round(new_s, 5), "whole_mask_and_pick_s": round(old_s, 5),
            "speedup": round(old_s / new_s, 1),
            "class_masks_mb": round(picked.numpy().nbytes / 2**20, 2),
            "whole_mask_mb": round(whole.numpy().nbytes / 2**20, 2)}


def compare_partial_batch(backbone, size, runs):
    """One image with BATCH_SIZE 2: run alone against padded to 2 by repeating it."""
    model = build_model(backbone, size, images_per_gpu=2)
    image = np.random.RandomState(2).randint(0, 255, (size, size, 3), dtype=np.uint8)
    molded, metas, _ = model.mold_inputs([image])
    padded = np.repeat(molded, 2, axis=0), np.repeat(metas, 2, axis=0)
    alone_s, padded_s = _alternate_seconds(lambda: model._predict(molded, metas),
                                           lambda: model._predict(*padded), runs)
    return {"bench": "partial_batch", "backbone": backbone, "batch_size": 2, "images": 1,
            "alone_s": round(alone_s, 4), "padded_s": round(padded_s, 4),
            "speedup": round(padded_s / alone_s, 2)}


def throughput(backbone, size, batches, runs):
    """detect() images/s for N images with BATCH_SIZE N, one JSON-able dict per N."""
    model = build_model(backbone, size)
    rng = np.random.RandomState(3)
    results = []
    for count in batches:
        model.config.IMAGES_PER_GPU = count
        images = [rng.randint(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(count)]
        seconds, _, outside = detect_seconds(model, images, runs)
        results.append({"bench": "throughput", "backbone": backbone,
                        "image": f"{size}x{size}", "batch": count,
                        "images_per_s": round(count / seconds, 3),
                        "detect_s": round(seconds, 3), "outside_share": round(outside / seconds, 4),
                        "peak_rss_mb": _peak_rss_mb()})
    return results


def detect_seconds(model, images, runs):
    """Medians of detect(images): whole call, its graph calls, and the rest (per call).

    The graph calls (`model._predict`: graph and fetch to numpy) are timed inside the
    same detect() calls, so "outside" is measured, not a difference of two medians.
    """
    predict, inside = model._predict, []

    def timed_predict(*args):
        start = time.perf_counter()
        result = predict(*args)
        inside.append(time.perf_counter() - start)
        return result

    model._predict = timed_predict
    try:
        model.detect(images)  # warm-up
        totals, graphs = [], []
        for _ in range(runs):
            inside.clear()
            start = time.perf_counter()
            model.detect(images)
            totals.append(time.perf_counter() - start)
            graphs.append(sum(inside))
    finally:
        del model._predict
    outside = [total - graph for total, graph in zip(totals, graphs)]
    return statistics.median(totals), statistics.median(graphs), statistics.median(outside)


def bench_backbone(backbone, runs, size, stages=False):
    import keras
    import tensorflow as tf

    model = build_model(backbone, size)
    image = np.random.RandomState(0).randint(0, 255, (size, size, 3), dtype=np.uint8)
    detect_s, graph_s, outside_s = detect_seconds(model, [image], runs)
    molded_images, metas, _ = model.mold_inputs([image])

    c5 = model.keras_model.get_layer("res5c_branch2c").output
    backbone_model = keras.Model(model.keras_model.get_layer("input_image").output, c5)
    molded = tf.constant(molded_images)
    forward = tf.function(lambda x: backbone_model(x, training=False))
    backbone_s = _median_seconds(lambda: forward(molded).numpy(), runs)
    result = {"bench": "detect", "backbone": backbone, "image": f"{size}x{size}",
              "detect_s": round(detect_s, 4), "graph_s": round(graph_s, 4),
              "outside_graph_s": round(outside_s, 4),
              "outside_share": round(outside_s / detect_s, 4),
              "backbone_forward_s": round(backbone_s, 4),
              "detect_over_backbone": round(detect_s / backbone_s, 2), "runs": runs,
              "peak_rss_mb": _peak_rss_mb(),
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
    parser.add_argument("--compare", action="store_true",
                        help="time the earlier molding, mask fetch and batch padding too")
    parser.add_argument("--batches", type=int, nargs="*", default=[],
                        help="detect() images/s for these batch sizes (e.g. 1 4 8)")
    parser.add_argument("--batch-runs", type=int, default=2)
    args = parser.parse_args()
    first = args.backbones[0]
    # Throughput first: peak_rss_mb only grows, so it is each batch's own peak.
    for result in throughput(first, args.size, args.batches, args.batch_runs):
        print(json.dumps(result), flush=True)
    if args.compare:
        print(json.dumps(compare_mold(args.runs, args.size)), flush=True)
        print(json.dumps(compare_paste(args.runs, args.size)), flush=True)
        model = build_model(first, args.size)
        image = np.random.RandomState(0).randint(0, 255, (args.size, args.size, 3),
                                                 dtype=np.uint8)
        print(json.dumps(compare_fetch(model, image, args.runs)), flush=True)
        del model
        print(json.dumps(compare_partial_batch(first, args.size, args.runs)), flush=True)
    for backbone in args.backbones:
        print(json.dumps(bench_backbone(backbone, args.runs, args.size, args.stages)),
              flush=True)


if __name__ == "__main__":
    main()

"""DetectionLayer alone: one class-shifted NMS per image against one NMS per class.

Prints one JSON line per DETECTION_MIN_CONFIDENCE: the median seconds of the whole layer
(refinement, NMS, top-k) with one class-shifted NMS per image (class_offset_nms_keep,
what DetectionLayer runs above PER_CLASS_NMS_MAX_CLASSES foreground classes) and with one
NMS per image and foreground class (per_class_nms_keep, what it ran before), timed
alternately in the same process; whether both gave the same rows, and whether the single
NMS passed its check (no per-class fallback).

Inputs: B images of N ROIs in clusters (many overlaps), NUM_CLASSES classes with random
probabilities (softmax of normal logits, one random class of each ROI raised by up to
--peak), small random deltas, a 1024x1024 molded image.

    python bench/bench_detection_layer.py [--rois 1000] [--classes 81] [--runs 50]
"""
import argparse
import json
import statistics
import time

import numpy as np


def bench_inputs(rng, batch, rois, classes, peak):
    """(rois [B, N, 4], probs [B, N, NC], deltas [B, N, NC, 4], image_meta [B, 12 + NC])."""
    from mrcnn.image_meta import compose_image_meta

    centres = rng.uniform(0.1, 0.9, (20, 2))[rng.integers(0, 20, (batch, rois))]
    centres = centres + rng.normal(0, 0.03, centres.shape)
    sizes = rng.uniform(0.03, 0.3, (batch, rois, 2))
    boxes = np.clip(np.concatenate([centres - sizes / 2, centres + sizes / 2], -1), 0, 1)
    logits = rng.normal(0, 1, (batch, rois, classes))
    raised = rng.integers(0, classes, (batch, rois, 1))
    np.put_along_axis(logits, raised, np.take_along_axis(logits, raised, -1)
                      + rng.uniform(0, peak, (batch, rois, 1)), -1)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    deltas = rng.normal(0, 0.3, (batch, rois, classes, 4))
    meta = compose_image_meta(0, (1024, 1024, 3), (1024, 1024, 3), (0, 0, 1024, 1024), 1.0,
                              np.ones(classes))
    return (boxes.astype(np.float32), probs.astype(np.float32), deltas.astype(np.float32),
            np.stack([meta] * batch).astype(np.float32))


def layer_with(keep_name, **settings):
    """DetectionLayer that runs the NMS function `keep_name` of mrcnn.nn.detection,
    whatever the number of classes."""
    import tensorflow as tf

    from mrcnn.nn import detection

    class ChosenNMSDetectionLayer(detection.DetectionLayer):
        def call(self, inputs):
            rois, probs, deltas, image_meta = (tf.cast(t, tf.float32) for t in inputs)
            class_ids, scores, boxes = detection.best_class_boxes(
                rois, probs, deltas, detection.normalised_window(image_meta),
                tf.constant(self.bbox_std_dev))
            candidates = (class_ids > 0) & (scores >= self.min_confidence)
            keep = getattr(detection, keep_name)(boxes, scores, class_ids, candidates,
                                                 probs.shape[-1], self.max_instances,
                                                 self.nms_threshold)
            return detection.top_detections(boxes, class_ids, scores, keep,
                                            self.max_instances)

    return ChosenNMSDetectionLayer(**settings)


def alternate_medians(fns, runs):
    """Median seconds of each function, calls interleaved so that load hits all alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def bench(min_confidence, args):
    import tensorflow as tf

    from mrcnn.nn import detection

    settings = dict(max_instances=args.max_instances, min_confidence=min_confidence,
                    nms_threshold=0.3, bbox_std_dev=[0.1, 0.1, 0.2, 0.2])
    inputs = [tf.constant(t) for t in bench_inputs(np.random.default_rng(0), args.batch,
                                                   args.rois, args.classes, args.peak)]
    layers = {"class_offset": layer_with("class_offset_nms_keep", **settings),
              "per_class": layer_with("per_class_nms_keep", **settings)}
    calls = {name: tf.function(layer) for name, layer in layers.items()}
    rows = {name: call(inputs).numpy() for name, call in calls.items()}
    seconds = alternate_medians({name: (lambda c=call: c(inputs).numpy())
                                 for name, call in calls.items()}, args.runs)

    class_ids, scores, boxes = detection.best_class_boxes(
        inputs[0], inputs[1], inputs[2], detection.normalised_window(inputs[3]),
        tf.constant(settings["bbox_std_dev"]))
    candidates = (class_ids > 0) & (scores >= min_confidence)
    _, holds = detection.class_offset_nms(boxes, scores, class_ids, candidates, args.classes,
                                          args.max_instances, 0.3)
    present = len(np.unique(class_ids.numpy()[candidates.numpy()]))
    return {"bench": "detection_layer", "images": args.batch, "rois": args.rois,
            "classes": args.classes, "min_confidence": min_confidence,
            "candidates": int(np.count_nonzero(candidates)), "classes_present": present,
            "detections": int(np.count_nonzero(rows["class_offset"][..., 5])),
            "per_class_s": round(seconds["per_class"], 5),
            "class_offset_s": round(seconds["class_offset"], 5),
            "speedup": round(seconds["per_class"] / seconds["class_offset"], 2),
            "same_rows": bool(np.array_equal(rows["per_class"], rows["class_offset"])),
            "single_nms_checked": bool(np.all(holds.numpy())), "runs": args.runs,
            "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rois", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=81)
    parser.add_argument("--max-instances", type=int, default=100)
    parser.add_argument("--peak", type=float, default=12.0,
                        help="largest raise of one class's logit (how peaked probs are)")
    parser.add_argument("--min-confidence", type=float, nargs="+", default=[0.0, 0.7])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    for min_confidence in args.min_confidence:
        print(json.dumps(bench(min_confidence, args)), flush=True)


if __name__ == "__main__":
    main()

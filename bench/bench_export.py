"""Latency of one image through detect(), the SavedModel, onnxruntime and LiteRT.

Same process, same image, same weights: one JSON line per path with the median seconds
per call after a warm-up call ("latency_s"), the ratio to detect() ("ratio_to_detect"),
the seconds the export and conversion took ("export_s"), the file size ("size_mb"), the
detection count and the share of detect()'s detections the path finds again (same
class, box IoU >= 0.5: "matched_vs_detect"); the quantized TFLite variants also report
"matched_vs_float32" against the float32 TFLite model and the median absolute score
difference of the matched detections.

Seeded random weights by default (the graph's cost does not depend on them; with
DETECTION_MIN_CONFIDENCE 0 every path returns the full DETECTION_MAX_INSTANCES), ResNet-50,
81 classes, a 1024x1024 shapes image. --weights W.h5 --config module:Class measures a
trained model instead (agreement figures then mean what they say on real detections), on
an image of the config's IMAGE_MAX_DIM.

--eval-images N (with a trained shapes model, e.g. --config mrcnn.shapes:ShapesConfig)
also runs every path over N held-out shapes images (seed 10000, as the end-to-end test)
and adds to its line: "mAP@0.5" and "mAP@[0.5:0.95]" (mask IoU, mrcnn.evaluate) and, by
mrcnn.agreement (same class, box IoU >= 0.9), the agreement with a reference ("vs":
detect() for the float paths, the float32 TFLite model for the quantized ones):
"matched_fraction", "mask_iou_mean" / "mask_iou_min" of the matched pairs, and
"delta_mAP@0.5" (path minus reference).

All runtimes share the machine's cores (onnxruntime and LiteRT use their default thread
counts; TensorFlow its own). detect() includes its numpy mask pasting; the exported paths
return box masks (pasting them is the caller's, ~ms for 100 masks; it is not in their
latency).

    python bench/bench_export.py [--backbone resnet50] [--size 1024] [--runs 3]
        [--paths detect saved_model onnx tflite tflite_float16 tflite_dynamic_range]
        [--weights W.h5 --config module:Class [--eval-images 50]]
"""
import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np

PATHS = ("detect", "saved_model", "onnx", "tflite", "tflite_float16", "tflite_dynamic_range")


def median_seconds(fn, runs):
    """(median seconds of `runs` calls after one warm-up call, the last result)."""
    result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def build_model(backbone, size, weights=None, config_spec=None):
    """An inference MaskRCNN: random weights (81 classes, size^2) or a weights file."""
    import mrcnn.model as modellib
    from mrcnn.config import Config

    if config_spec:
        from mrcnn.convert import load_config
        config = load_config(config_spec)
        config.IMAGES_PER_GPU = config.GPU_COUNT = 1   # BATCH_SIZE follows
    else:
        class BenchConfig(Config):
            NAME = "bench_export"
            BACKBONE = backbone
            IMAGES_PER_GPU = 1
            NUM_CLASSES = 81
            IMAGE_MIN_DIM = IMAGE_MAX_DIM = size
            DETECTION_MIN_CONFIDENCE = 0.0
        config = BenchConfig()
    import keras
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("inference", config, tempfile.mkdtemp(prefix="mrcnn_bench_"))
    if weights:
        model.load_weights(weights, by_name=True, verbose=0)
    else:
        # As the export tests: at random initialisation the features (~50) saturate the
        # class softmax and many scores tie at exactly 1.0, so which of the tied boxes a
        # runtime returns first is arbitrary. conv1 scaled down (the graph is positively
        # homogeneous) gives moderate, distinct scores; a larger mask kernel masks away
        # from 0.5.
        for name, factor in (("conv1", 0.02), ("mrcnn_mask", 30.0)):
            layer = model.keras_model.get_layer(name)
            layer.kernel.assign(np.asarray(layer.kernel.numpy()) * factor)
    return model


def box_iou(a, b):
    """IoU matrix of int pixel boxes a [N, 4], b [M, 4] (y2/x2 exclusive)."""
    a, b = np.asarray(a, float)[:, None], np.asarray(b, float)[None]
    height = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    width = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = height * width
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def match(reference, other):
    """[(i, j)]: each reference detection paired with an unused `other` detection of its
    class with the highest box IoU >= 0.5 (greedy in reference order)."""
    if not len(reference["class_ids"]) or not len(other["class_ids"]):
        return []
    overlaps = box_iou(reference["rois"], other["rois"])
    pairs, taken = [], set()
    for i in range(len(reference["class_ids"])):
        for j in np.argsort(-overlaps[i]):
            if overlaps[i, j] < 0.5:
                break
            if j not in taken and other["class_ids"][j] == reference["class_ids"][i]:
                taken.add(j)
                pairs.append((i, j))
                break
    return pairs


def as_detections(outputs):
    """Serving outputs (batch of one) -> {"rois", "class_ids", "scores", "box_masks"} of
    the real rows (box masks float [N, mh, mw])."""
    count = int(np.asarray(outputs["num_detections"])[0])
    return {"rois": np.asarray(outputs["boxes"])[0, :count],
            "class_ids": np.asarray(outputs["class_ids"])[0, :count],
            "scores": np.asarray(outputs["scores"])[0, :count],
            "box_masks": np.asarray(outputs["masks"])[0, :count]}


def with_full_masks(detections, image_shape):
    """A detect()-like result: box masks pasted to bool [H, W, N] ("masks")."""
    from mrcnn import utils

    if "masks" in detections:
        return detections
    return dict(detections, masks=utils.paste_masks(detections["box_masks"],
                                                    detections["rois"], image_shape))


class RecordingDetector:
    """`run` (one image -> detections) behind detect()'s interface for evaluate_map,
    keeping every image's result (full masks) for the agreement figures."""

    def __init__(self, run, config):
        self.run, self.config, self.results = run, config, []

    def detect(self, images, verbose=0):
        results = [with_full_masks(self.run(image), image.shape) for image in images]
        self.results += results
        return results


def evaluate_paths(made, paths, config, count):
    """{path: figures} over `count` held-out shapes images: mAP and agreement."""
    from mrcnn.agreement import detection_agreement
    from mrcnn.evaluate import COCO_IOU_THRESHOLDS, evaluate_map
    from mrcnn.shapes import ShapesDataset

    height, width = int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])
    dataset = ShapesDataset()
    dataset.load_shapes(count, height, width, seed=10_000)
    dataset.prepare()
    recorded, figures = {}, {}
    for path in paths:
        recorded[path] = RecordingDetector(made[path][2], config)
        result = evaluate_map(recorded[path], dataset, iou_thresholds=COCO_IOU_THRESHOLDS,
                              batch_size=1)
        figures[path] = {"eval_images": count, "mAP@0.5": round(result["mAP"][0.5], 4),
                         "mAP@[0.5:0.95]": round(result["mAP_range"], 4)}
    for path in paths:
        reference = "tflite" if path.startswith("tflite_") and "tflite" in paths else "detect"
        if path == reference:
            continue
        agreement = detection_agreement(recorded[reference].results, recorded[path].results)
        figures[path].update(
            {"vs": reference, "reference_count": agreement["reference_count"],
             "candidate_count": agreement["candidate_count"],
             "matched_fraction": round(agreement["matched_fraction"], 4),
             "mask_iou_mean": _rounded(agreement["mask_iou_mean"]),
             "mask_iou_min": _rounded(agreement["mask_iou_min"]),
             "delta_mAP@0.5": round(figures[path]["mAP@0.5"]
                                    - figures[reference]["mAP@0.5"], 4)})
    return figures


def _rounded(value):
    return None if value is None else round(value, 4)


def agreement(reference, other):
    pairs = match(reference, other)
    share = len(pairs) / len(reference["class_ids"]) if len(reference["class_ids"]) else 1.0
    score = (float(np.median([abs(reference["scores"][i] - other["scores"][j])
                              for i, j in pairs])) if pairs else None)
    return round(share, 4), score


def runners(model, paths, folder):
    """{path: (export seconds, file size MB or None, callable image -> detections)}."""
    from mrcnn import export
    from mrcnn.export import tflite

    made = {}
    for path in paths:
        start = time.perf_counter()
        if path == "detect":
            made[path] = (None, None, lambda image: model.detect([image])[0])
            continue
        if path == "saved_model":
            import tensorflow as tf
            target = os.path.join(folder, "saved_model")
            export.export_saved_model(model, target)
            serve = tf.saved_model.load(target).signatures["serving_default"]
            run = (lambda image, serve=serve: as_detections(
                {k: v.numpy() for k, v in serve(images=tf.constant(image[None])).items()}))
            size = _folder_mb(target)
        elif path == "onnx":
            import onnxruntime
            target = os.path.join(folder, "model.onnx")
            export.export_onnx(model, target)
            session = onnxruntime.InferenceSession(target, providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            run = (lambda image, session=session, names=names: as_detections(
                dict(zip(names, session.run(names, {"images": image[None]})))))
            size = os.path.getsize(target) / 2**20
        else:
            quantization = {"tflite": None, "tflite_float16": "float16",
                            "tflite_dynamic_range": "dynamic_range"}[path]
            saved = os.path.join(folder, "tflite_saved_model")
            if not os.path.isdir(saved):
                tflite.save_builtin_saved_model(model, saved)
            target = os.path.join(folder, f"{path}.tflite")
            tflite.convert_saved_model(saved, target, quantization)
            runner = tflite.TFLiteDetector(target).runner
            run = lambda image, runner=runner: as_detections(runner(images=image[None]))
            size = os.path.getsize(target) / 2**20
        made[path] = (time.perf_counter() - start, size, run)
    return made


def _folder_mb(folder):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(folder) for name in names) / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--config", default=None, help="module:Class (with --weights)")
    parser.add_argument("--eval-images", type=int, default=0,
                        help="also measure mAP and agreement on this many shapes images")
    args = parser.parse_args()
    if args.eval_images and not args.weights:
        parser.error("--eval-images needs --weights (and --config) of a trained model")

    from mrcnn.shapes import ShapesDataset

    model = build_model(args.backbone, args.size, args.weights, args.config)
    size = int(model.config.IMAGE_MAX_DIM) if args.config else args.size
    dataset = ShapesDataset()
    dataset.load_shapes(1, size, size, seed=0)
    dataset.prepare()
    image = dataset.load_image(0)
    paths = list(dict.fromkeys(["detect"] + args.paths))
    with tempfile.TemporaryDirectory(prefix="mrcnn_bench_export_") as folder:
        made = runners(model, paths, folder)
        evaluated = (evaluate_paths(made, paths, model.config, args.eval_images)
                     if args.eval_images else {})
        results = {}
        for path in paths:
            export_s, size, run = made[path]
            seconds, detections = median_seconds(lambda run=run: run(image), args.runs)
            results[path] = detections
            line = {"path": path, "backbone": model.config.BACKBONE,
                    "image": list(image.shape[:2]), "latency_s": round(seconds, 3),
                    "detections": int(len(detections["class_ids"]))}
            if path != "detect":
                line["ratio_to_detect"] = round(seconds / results["detect"]["latency"], 3)
                line["export_s"] = round(export_s, 1)
                line["size_mb"] = round(size, 1)
                line["matched_vs_detect"], _ = agreement(results["detect"], detections)
            if path in ("tflite_float16", "tflite_dynamic_range") and "tflite" in results:
                share, score = agreement(results["tflite"], detections)
                line["matched_vs_float32"] = share
                line["median_score_diff_vs_float32"] = score
            line.update(evaluated.get(path, {}))
            detections["latency"] = seconds
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

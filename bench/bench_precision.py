"""16-bit inference: detect() latency in bfloat16/float16 against float32, and agreement.

Latency (always): one ResNet-50 1024x1024 image, 81 classes, DETECTION_MIN_CONFIDENCE 0
(100 detections with masks), seeded random weights saved once in float32 and loaded into a
float32 and a 16-bit inference model, timed alternately in the same process so the
machine's load weighs on both alike. Prints one JSON line per policy with the medians and
the ratio to float32, and whether this CPU runs the policy natively
(mrcnn.precision_support).

Agreement (with --shapes-weights): a shapes checkpoint (e.g. the `logs/` of `make demo`,
or "last" for the newest there) runs on N held-out shapes images in float32 and in the
16-bit policy; prints the fraction of float32 detections matched (same class, box IoU >=
0.9, mrcnn.agreement), the mask IoU of matched pairs, and mAP@0.5 / mAP@[0.5:0.95] of both.

    python bench/bench_precision.py [--policies mixed_bfloat16] [--runs 3]
        [--shapes-weights logs/shapes.../mask_rcnn_shapes_0008.h5 | last] [--images 100]
"""
import argparse
import glob
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from bench_detect import _alternate_seconds, build_model  # noqa: E402

import numpy as np  # noqa: E402


def latency(policies, runs):
    import keras
    from mrcnn.precision_support import cpu_flags, cpu_runs_natively, has_accelerator

    keras.utils.set_random_seed(0)
    reference = build_model("resnet50", 1024)
    weights = os.path.join(reference.model_dir, "float32.h5")
    reference.save_weights(weights)
    image = np.random.RandomState(0).randint(0, 255, (1024, 1024, 3)).astype(np.uint8)
    for policy in policies:
        candidate = build_model("resnet50", 1024, precision=policy)
        candidate.load_weights(weights, verbose=0)
        f32, sixteen = _alternate_seconds(lambda: reference.detect([image]),
                                          lambda: candidate.detect([image]), runs)
        native = True if has_accelerator() else cpu_runs_natively(policy, cpu_flags())
        print(json.dumps({"latency": policy, "float32_s": round(f32, 3),
                          "sixteen_bit_s": round(sixteen, 3),
                          "ratio": round(sixteen / f32, 3), "native": native}), flush=True)


def _checkpoint(path):
    if path != "last":
        return path
    found = sorted(glob.glob(os.path.join("logs", "shapes*", "mask_rcnn_shapes_*.h5")))
    if not found:
        raise SystemExit("no shapes checkpoint under logs/: run `make demo` first")
    return found[-1]


def agreement(policies, weights, count):
    import mrcnn.model as modellib
    from mrcnn.agreement import detection_agreement
    from mrcnn.evaluate import evaluate_map
    from mrcnn.shapes import ShapesConfig, ShapesDataset

    val = ShapesDataset()
    val.load_shapes(count, 128, 128, seed=10_000)
    val.prepare()
    images = [val.load_image(i) for i in val.image_ids]
    thresholds = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))
    model_dir = tempfile.mkdtemp(prefix="mrcnn_bench_")

    def run(policy):
        class Inference(ShapesConfig):
            IMAGES_PER_GPU = 4
            MIXED_PRECISION = policy

        model = modellib.MaskRCNN("inference", Inference(), model_dir)
        model.load_weights(weights, verbose=0)
        maps = evaluate_map(model, val, iou_thresholds=thresholds)["mAP"]
        return model.detect(images), maps[0.5], float(np.mean(list(maps.values())))

    reference, ref_map50, ref_map = run(None)
    for policy in policies:
        results, map50, map_all = run(policy)
        figures = detection_agreement(reference, results)
        figures.update({"agreement": policy, "images": count, "weights": weights,
                        "float32_mAP@0.5": round(ref_map50, 4), "mAP@0.5": round(map50, 4),
                        "float32_mAP@[0.5:0.95]": round(ref_map, 4),
                        "mAP@[0.5:0.95]": round(map_all, 4)})
        print(json.dumps(figures), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", default=["mixed_bfloat16"],
                        choices=["mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shapes-weights", default=None)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args()
    from mrcnn.console import quiet_tensorflow
    quiet_tensorflow()
    if not args.no_latency:
        latency(args.policies, args.runs)
    if args.shapes_weights:
        agreement(args.policies, _checkpoint(args.shapes_weights), args.images)


if __name__ == "__main__":
    main()

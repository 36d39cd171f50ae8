"""Peak resident memory of detect() on one large image, per mask format.

Each run is a subprocess of its own, so its peak RSS (ru_maxrss) is that run's alone:

* "graph": the image made and molded, the inference graph run on it (`model._predict`,
  detections and each detection's 28x28 class mask fetched to numpy): the baseline;
* "full", "box", "rle": `detect([image], mask_format=...)`, the same image.

Random weights and DETECTION_MIN_CONFIDENCE 0, so every run returns the full
DETECTION_MAX_INSTANCES (100) detections; the mask head's last layer is set to output
probability 1 everywhere (zero kernel, bias 20), so each mask fills its box: the worst
case for the resident pages of the full stack ("--random-masks" keeps the random head,
whose masks are mostly below 0.5). "boxes_area_share" is the boxes' summed area over
the image's. Each run calls twice (a warm-up and the measured call, the warm-up's
result freed first). One JSON line per run, then a summary line with each format's
peak over the graph's ("target": "box" and "rle" at most 1.2x); "full_nominal_mb" is
the size of the bool [H, W, N] stack, of which only the pages the boxes' rows reach are
resident (utils.paste_masks maps them on first write).

    python bench/bench_detect_memory.py [--image 4000x3000] [--backbone resnet50]
        [--size 1024] [--runs graph full box rle] [--random-masks]
"""
import argparse
import json
import os
import resource
import subprocess
import sys

import numpy as np

RUNS = ("graph", "full", "box", "rle")


def _peak_rss_mb():
    """Peak resident memory of this process so far, in MiB (Linux: ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _image(width, height):
    return np.random.RandomState(0).randint(0, 256, (height, width, 3), dtype=np.uint8)


def fill_masks(model):
    """Make the mask head output 1 everywhere: every detection's mask fills its box."""
    layer = model.keras_model.get_layer("mrcnn_mask")
    kernel, bias = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.full_like(bias, 20.0)])


def measure(run, width, height, backbone, size, random_masks=False):
    """One run in this process: {"run", "peak_rss_mb", "detections", ...}."""
    import keras
    from bench_detect import build_model

    keras.utils.set_random_seed(0)   # the same random weights, so the same detections
    model = build_model(backbone, size)
    if not random_masks:
        fill_masks(model)
    image = _image(width, height)
    before = _peak_rss_mb()
    if run == "graph":
        for _ in range(2):
            molded, metas, _ = model.mold_inputs([image])
            detections, _ = model._predict(molded, metas)
        count = int(np.count_nonzero(detections[0, :, 4]))
        masks_mb = area = None
    else:
        for _ in range(2):
            result = None    # the warm-up's masks are freed before the measured call
            result = model.detect([image], mask_format=run)[0]
        count = len(result["class_ids"])
        rois = result["rois"].astype(np.int64)
        area = round(float(np.sum((rois[:, 2] - rois[:, 0]) * (rois[:, 3] - rois[:, 1])))
                     / (width * height), 3)
        masks = result["masks"]
        masks_mb = (round(masks.nbytes / 2**20, 2) if isinstance(masks, np.ndarray)
                    else round(sum(len(m["counts"]) for m in masks) / 2**20, 3))
    return {"bench": "detect_memory", "run": run, "image": f"{width}x{height}",
            "backbone": backbone, "molded": f"{size}x{size}", "detections": count,
            "masks_mb": masks_mb, "boxes_area_share": area, "rss_before_calls_mb": before,
            "peak_rss_mb": _peak_rss_mb()}


def run_in_subprocess(run, args):
    """measure(run) in a fresh interpreter; its JSON line as a dict."""
    command = [sys.executable, os.path.abspath(__file__), "--child", run,
               "--image", args.image, "--backbone", args.backbone, "--size", str(args.size)]
    command += ["--random-masks"] if args.random_masks else []
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", default="4000x3000", help="WIDTHxHEIGHT")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument("--random-masks", action="store_true",
                        help="keep the random mask head (masks mostly empty)")
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(v) for v in args.image.lower().split("x"))
    if args.child:
        print(json.dumps(measure(args.child, width, height, args.backbone, args.size,
                                 args.random_masks)),
              flush=True)
        return
    peaks, detections = {}, 0
    for run in args.runs:
        result = run_in_subprocess(run, args)
        peaks[run] = result["peak_rss_mb"]
        detections = max(detections, result["detections"])
        print(json.dumps(result), flush=True)
    if "graph" in peaks:
        summary = {"bench": "detect_memory_summary", "image": args.image,
                   "graph_peak_rss_mb": peaks["graph"], "target": 1.2}
        for run in peaks:
            if run != "graph":
                summary[f"{run}_over_graph"] = round(peaks[run] / peaks["graph"], 3)
        if "full" in peaks:
            summary["full_nominal_mb"] = round(width * height * detections / 2**20, 1)
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

"""Peak memory of the ROI target sampler (DetectionTargetLayer) with full-size masks.

With USE_MINI_MASK = False the ground-truth masks reach the graph as bool [B, H, W, G].
The figure is the peak resident memory during one traced call of the layer on one
image (traced beforehand, not run), above the memory held just before it (the inputs
included), read from Linux's /proc/self/status (VmHWM, reset through /proc/self/clear_refs).

Prints one JSON line per case:
    {"case": "targets_memory", "instances": G, "size": H, "positives": P,
     "masks_mb": bool input size, "peak_above_baseline_mb": ...}

    python bench/bench_targets_memory.py [--instances 100] [--size 1024] [--proposals 2000]

To compare with another version of the package, put its copy first on PYTHONPATH.
"""
import argparse
import json
import os

import numpy as np


def _rss_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _inputs(rng, instances, size, proposals):
    """One image: G random rectangles as masks and boxes, proposals around half of them."""
    y1 = rng.integers(0, size - 64, instances)
    x1 = rng.integers(0, size - 64, instances)
    y2 = y1 + rng.integers(32, 64 + 1, instances)
    x2 = x1 + rng.integers(32, 64 + 1, instances)
    masks = np.zeros((1, size, size, instances), bool)
    for i in range(instances):
        masks[0, y1[i]:y2[i], x1[i]:x2[i], i] = True
    boxes = np.stack([y1, x1, y2 - 1, x2 - 1], 1) / (size - 1)
    near = boxes[rng.integers(0, instances, proposals // 2)]
    near = near + rng.normal(0, 0.002, near.shape)
    far_y = rng.uniform(0, 0.9, proposals - len(near))
    far_x = rng.uniform(0, 0.9, proposals - len(near))
    far = np.stack([far_y, far_x, far_y + 0.05, far_x + 0.05], 1)
    rois = np.clip(np.concatenate([near, far]), 0, 1)[None].astype(np.float32)
    class_ids = np.ones((1, instances), np.int32)
    return rois, class_ids, boxes[None].astype(np.float32), masks


def measure(instances, size, proposals):
    import tensorflow as tf

    from mrcnn.config import Config
    from mrcnn.nn.targets import DetectionTargetLayer

    class FullMaskConfig(Config):
        NAME = "targets_memory"
        NUM_CLASSES = 2
        USE_MINI_MASK = False
        IMAGE_MAX_DIM = size
        IMAGE_MIN_DIM = size

    layer = DetectionTargetLayer(FullMaskConfig(), seed=1)
    call = tf.function(lambda *args: layer(list(args)), autograph=False)
    rng = np.random.default_rng(0)
    inputs = [tf.constant(x) for x in _inputs(rng, instances, size, proposals)]
    # Trace without running: a run before the measured one would leave its buffers in
    # TensorFlow's allocator pool and hide the peak.
    call = call.get_concrete_function(*(tf.TensorSpec(x.shape, x.dtype) for x in inputs))
    baseline = _rss_kb("VmRSS")
    _reset_peak()
    outputs = call(*inputs)
    peak = _rss_kb("VmHWM")
    positives = int(np.count_nonzero(outputs[1].numpy()))
    return {"case": "targets_memory", "instances": instances, "size": size,
            "positives": positives, "masks_mb": round(inputs[3].numpy().nbytes / 2**20, 1),
            "peak_above_baseline_mb": round((peak - baseline) / 1024, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--proposals", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(json.dumps(measure(args.instances, args.size, args.proposals)))


if __name__ == "__main__":
    main()

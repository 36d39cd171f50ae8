"""detect() against torchvision's Mask R-CNN on the same CPU, in the same run.

Both detect one 1024x1024 image with ResNet-50-FPN and 81 (ours) / 91 (torchvision's COCO
head) classes, random weights, a score threshold of 0 and at most 100 detections, so both
return 100 masks; torchvision's transform is set to 1024 (min_size = max_size = 1024) so
both convolve the same image size, and both use the same number of threads. torchvision
runs in a worker process (its own interpreter: `--torch-python`, by default this one),
and the two are timed alternately, each call in turn, so the machine's load weighs on
both alike. Prints one JSON line per precision with the medians and the ratio
ours / torchvision; "mixed_bfloat16" is ours in bfloat16 against torchvision in float32
(torchvision's reference figure).

torchvision is not a dependency of mrcnn; install it where the bench runs, e.g.
`pip install -e .[bench]` or into another environment given as --torch-python.

    python bench/bench_peers.py [--runs 5] [--threads 2] [--torch-python PATH]
        [--precisions float32 mixed_bfloat16]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_detect import build_model  # noqa: E402

import numpy as np  # noqa: E402

WORKER = r"""
import sys, time
import numpy as np
import torch, torchvision
threads = int(sys.argv[1])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torchvision.models.detection.maskrcnn_resnet50_fpn(
    weights=None, weights_backbone=None, min_size=1024, max_size=1024,
    box_score_thresh=0.0, box_detections_per_img=100).eval()
image = torch.from_numpy(np.random.RandomState(0).randint(
    0, 255, (3, 1024, 1024)).astype(np.float32) / 255.0)
def run():
    with torch.inference_mode():
        return model([image])[0]
out = run()                                     # warm-up
print("ready", len(out["boxes"]), torch.__version__, torchvision.__version__, flush=True)
for line in sys.stdin:
    start = time.perf_counter()
    out = run()
    print(time.perf_counter() - start, len(out["masks"]), flush=True)
"""


class TorchvisionWorker:
    """torchvision's maskrcnn_resnet50_fpn in a process of its own, timed on request."""

    def __init__(self, python, threads):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        self.process = subprocess.Popen([python, "-c", WORKER, str(threads)], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        ready = self.process.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise SystemExit(f"torchvision worker did not start with {python}: is "
                             f"torchvision installed there? (pip install -e .[bench])")
        self.detections, self.versions = int(ready[1]), ready[2:]

    def seconds(self):
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        seconds, count = self.process.stdout.readline().split()
        return float(seconds), int(count)

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torch-python", default=sys.executable)
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    args = parser.parse_args()
    from mrcnn.console import quiet_tensorflow
    quiet_tensorflow()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import keras
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    worker = TorchvisionWorker(args.torch_python, args.threads)
    image = np.random.RandomState(0).randint(0, 255, (1024, 1024, 3)).astype(np.uint8)
    try:
        for precision in args.precisions:
            keras.utils.set_random_seed(0)
            model = build_model("resnet50", 1024, precision=precision)
            model.detect([image])                        # trace and warm up
            ours, theirs = [], []
            for _ in range(args.runs):
                start = time.perf_counter()
                result = model.detect([image])[0]
                ours.append(time.perf_counter() - start)
                seconds, count = worker.seconds()
                theirs.append(seconds)
            ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
            print(json.dumps({
                "peers": precision, "threads": args.threads,
                "mrcnn_detect_s": round(ours_s, 3), "torchvision_s": round(theirs_s, 3),
                "ratio": round(ours_s / theirs_s, 3),
                "mrcnn_detections": int(len(result["class_ids"])),
                "torchvision_detections": count,
                "torch_torchvision": worker.versions}), flush=True)
    finally:
        worker.close()


if __name__ == "__main__":
    main()

"""The GPU path: op placement, detect and training throughput on one GPU.

Prints JSON lines (and writes them to --out when given):

* "devices": the GPUs TensorFlow sees, and whether it was built with CUDA;
* "placement": the whole inference graph run once with soft device placement off inside
  tf.device("/GPU:0"): it fails, naming the op, if any op of the graph has no GPU kernel
  (crop_and_resize and NMS have GPU kernels; integer shape arithmetic stays on the host
  by TensorFlow's own rule);
* "detect": images/s of detect() on B different 1024x1024 images (ResNet-50, 81 classes,
  100 detections with masks, random weights) for each batch size and precision;
* "xla": the backbone, FPN and RPN head with and without jit_compile (bench_xla.py);
  on 2 CPU cores XLA made them 1.46x slower, so the graph does not use it;
* "train": images/s of training steps at 1024x1024 (ResNet-50-FPN, shapes images,
  prepared batches) for each precision.

Targets (issue: the measured GPU path): training >= 20 images/s with mixed precision and
detect >= 15 images/s at batch 8 on one modern datacenter GPU.

    python bench/bench_gpu.py [--batches 1 8] [--precisions float32 mixed_float16]
        [--train-steps 10] [--out figures.jsonl]

`--size 128 --allow-cpu` runs the same steps small on a CPU, to try the script itself.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_detect import build_model  # noqa: E402

_lines = []
SIZE = 1024


def emit(record, out=None):
    line = json.dumps(record)
    print(line, flush=True)
    _lines.append(line)
    if out:
        with open(out, "w") as handle:
            handle.write("\n".join(_lines) + "\n")


def devices():
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    return {"bench": "devices", "gpus": [g.name for g in gpus],
            "built_with_cuda": tf.test.is_built_with_cuda(), "tensorflow": tf.__version__}


def placement():
    import tensorflow as tf

    model = build_model("resnet50", SIZE)
    image = np.random.RandomState(0).randint(0, 255, (SIZE, SIZE, 3)).astype(np.uint8)
    device = "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"
    tf.config.set_soft_device_placement(False)
    try:
        with tf.device(device):
            result = model.detect([image])[0]
        return {"bench": "placement", "device": device, "hard_placement": "ok",
                "detections": int(len(result["class_ids"]))}
    except Exception as error:   # the op without a GPU kernel is named in the message
        return {"bench": "placement", "device": device, "hard_placement": "failed",
                "error": str(error).splitlines()[0][:500]}
    finally:
        tf.config.set_soft_device_placement(True)


def detect_throughput(batch, precision, runs=5):
    model = build_model("resnet50", SIZE, batch, precision)
    rng = np.random.RandomState(0)
    images = [rng.randint(0, 255, (SIZE, SIZE, 3)).astype(np.uint8) for _ in range(batch)]
    model.detect(images)          # trace and warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.detect(images)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"bench": "detect", "precision": precision, "batch": batch,
            "size": SIZE, "seconds": round(seconds, 4),
            "images_per_s": round(batch / seconds, 2)}


def xla_ratio(runs=5):
    import tensorflow as tf
    from bench_detect import _alternate_seconds
    from bench_xla import convolutional_part

    model = build_model("resnet50", SIZE)
    part = convolutional_part(model.keras_model)
    image = tf.constant(np.random.RandomState(0).normal(
        size=(1, SIZE, SIZE, 3)).astype(np.float32))
    plain = tf.function(lambda x: part(x, training=False), jit_compile=False)
    xla = tf.function(lambda x: part(x, training=False), jit_compile=True)
    plain_s, xla_s = _alternate_seconds(lambda: [t.numpy() for t in plain(image)],
                                        lambda: [t.numpy() for t in xla(image)], runs)
    return {"bench": "xla", "section": "backbone+fpn+rpn", "size": SIZE,
            "plain_s": round(plain_s, 4), "xla_s": round(xla_s, 4),
            "ratio": round(xla_s / plain_s, 3)}


def train_throughput(precision, steps, batch=8):
    import tensorflow as tf
    import mrcnn.model as modellib
    from mrcnn.data import DataGenerator
    from mrcnn.shapes import ShapesConfig, ShapesDataset

    class GpuTrain(ShapesConfig):
        NAME = "gpu_train"
        BACKBONE = "resnet50"
        IMAGES_PER_GPU = batch
        IMAGE_MIN_DIM = SIZE
        IMAGE_MAX_DIM = SIZE
        RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
        MIXED_PRECISION = None if precision == "float32" else precision
        SEED = 0

    config = GpuTrain()
    dataset = ShapesDataset()
    dataset.load_shapes(2 * batch, SIZE, SIZE, seed=0)
    dataset.prepare()
    generator = DataGenerator(dataset, config, shuffle=True, seed=0)
    batches = [generator[i % len(generator)] for i in range(steps + 2)]
    model = modellib.MaskRCNN("training", config, tempfile.mkdtemp(prefix="mrcnn_gpu_"))
    model.compile(config.LEARNING_RATE, total_steps=steps + 2)
    step = tf.function(model.keras_model.train_step)
    for batch_data in batches[:2]:
        float(step(batch_data)["loss"])
    times = []
    for batch_data in batches[2:]:
        start = time.perf_counter()
        float(step(batch_data)["loss"])
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"bench": "train", "precision": precision, "batch": batch,
            "size": SIZE, "step_s": round(seconds, 4),
            "images_per_s": round(batch / seconds, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_float16"])
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--out", default=None)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--allow-cpu", action="store_true")
    args = parser.parse_args()
    global SIZE
    SIZE = args.size
    from mrcnn.console import quiet_tensorflow
    quiet_tensorflow()
    found = devices()
    emit(found, args.out)
    if not found["gpus"] and not args.allow_cpu:
        emit({"bench": "stopped", "reason": "TensorFlow sees no GPU"}, args.out)
        return 1
    emit(placement(), args.out)
    for precision in args.precisions:
        for batch in args.batches:
            emit(detect_throughput(batch, precision), args.out)
    try:
        emit(xla_ratio(), args.out)
    except Exception as error:     # XLA is a measurement here, not a requirement
        emit({"bench": "xla", "error": str(error).splitlines()[0][:500]}, args.out)
    for precision in args.precisions:
        emit(train_throughput(precision, args.train_steps), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train-step time for the shapes config and for the default config at batch 1.

Prints one JSON line per case: median seconds per optimizer step (after warm-up steps,
input pipeline excluded: batches are prepared beforehand), images per second, and the
time to prepare one batch with the input pipeline, so the ratio shows whether training
would be input-bound.

    python bench/bench_train.py [--cases shapes default] [--steps 5]
"""
import argparse
import json
import statistics
import tempfile
import time

import numpy as np


def _configs():
    from mrcnn.config import Config
    from mrcnn.shapes import ShapesConfig

    class DefaultBatch1(Config):
        NAME = "default"
        BACKBONE = "resnet101"
        IMAGES_PER_GPU = 1
        NUM_CLASSES = 4   # the shapes classes, so the shapes dataset can feed it

    return {"shapes": ShapesConfig, "default": DefaultBatch1}


def bench_case(name, config_class, steps):
    import tensorflow as tf

    import mrcnn.model as modellib
    from mrcnn.data import DataGenerator
    from mrcnn.shapes import ShapesDataset

    config = config_class()
    config.SEED = 0
    size = int(config.IMAGE_SHAPE[0])
    dataset = ShapesDataset()
    dataset.load_shapes(max(4 * config.BATCH_SIZE, 8), size, size, seed=0)
    dataset.prepare()
    generator = DataGenerator(dataset, config, shuffle=True, seed=0)

    start = time.perf_counter()
    batches = [generator[i % len(generator)] for i in range(steps + 2)]
    prepare_s = (time.perf_counter() - start) / len(batches)

    model_dir = tempfile.mkdtemp(prefix="mrcnn_bench_")
    model = modellib.MaskRCNN("training", config, model_dir=model_dir)
    model.compile(config.LEARNING_RATE, total_steps=steps + 2)
    keras_model = model.keras_model
    step = tf.function(keras_model.train_step)
    step(batches[0])  # trace and warm up
    step(batches[1])
    times = []
    for batch in batches[2:]:
        begin = time.perf_counter()
        logs = step(batch)
        float(logs["loss"])
        times.append(time.perf_counter() - begin)
    step_s = statistics.median(times)
    return {"bench": "train_step", "case": name, "backbone": config.BACKBONE,
            "image": f"{size}x{size}", "batch": config.BATCH_SIZE,
            "step_s": round(step_s, 4), "images_per_s": round(config.BATCH_SIZE / step_s, 2),
            "input_batch_s": round(prepare_s, 4),
            "input_over_step": round(prepare_s / step_s, 3),
            "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="+", default=["shapes", "default"])
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    configs = _configs()
    for name in args.cases:
        print(json.dumps(bench_case(name, configs[name], args.steps)), flush=True)


if __name__ == "__main__":
    main()

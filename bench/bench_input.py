"""Throughput of the training input pipeline, beside the train-step time.

Prints JSON lines:

* "rpn_targets": seconds of one build_rpn_targets call at 1024 x 1024 (261,888 anchors)
  for a few GT counts, with the anchor index (as DataGenerator uses it) and with the full
  IoU matrix (utils.compute_overlaps, the plain vectorised way) for comparison;
* "input_pipeline": images per second that `keras.Model.fit` receives from DataGenerator
  for the shapes config (128 x 128) and the default config (1024 x 1024, NUM_CLASSES = 4,
  fed by the shapes dataset at 1024 x 1024), with 1 worker and with every usable core.
  The consumer is a model whose training step does nothing, so the figure is what the
  pipeline can deliver. ``train_step_s`` (from --train-step-s, or measured with
  --measure-train-step as bench_train.py does) gives ``input_over_step``: the time to
  prepare one batch over the time of one training step; above 1 training is input-bound.

    python bench/bench_input.py [--cases shapes default] [--workers 1 0] [--steps 12]
        [--modes threads processes tfdata] [--train-step-s shapes=0.9 default=0.6]
        [--measure-train-step]

``--workers 0`` means every usable core. Modes: "threads" (PyDataset workers, the
default of DataGenerator), "processes" (PyDataset use_multiprocessing=True) and
"tfdata" (tf.data.Dataset.range(...).map(tf.numpy_function(batch)) with parallel calls).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _configs():
    from mrcnn.config import Config
    from mrcnn.shapes import ShapesConfig

    class DefaultConfig(Config):
        NAME = "default"
        NUM_CLASSES = 4   # the shapes classes, so the shapes dataset can feed it

    return {"shapes": ShapesConfig, "default": DefaultConfig}


def _dataset(config, count):
    from mrcnn.shapes import ShapesDataset

    size = int(config.IMAGE_SHAPE[0])
    dataset = ShapesDataset()
    dataset.load_shapes(count, size, size, seed=0)
    dataset.prepare()
    return dataset


# ----------------------------------------------------------------------------- RPN targets
def _median_time(function, repeats):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _dense_rpn_match(anchors, boxes):
    """The per-anchor assignment from the full [A, G] IoU matrix (for comparison)."""
    from mrcnn import utils

    overlaps = utils.compute_overlaps(anchors, boxes)
    best = overlaps.max(axis=0)
    return overlaps.argmax(axis=1), np.any((overlaps == best) & (best > 0), axis=1)


def bench_rpn_targets(repeats=5):
    from mrcnn import data

    config = _configs()["default"]()
    anchors = data.compute_anchors(config)
    table = data.AnchorTable(anchors)
    rng = np.random.RandomState(0)
    rows = []
    for count in (3, 20, 100):
        y1, x1 = rng.randint(0, 900, count), rng.randint(0, 900, count)
        h, w = rng.randint(16, 300, count), rng.randint(16, 300, count)
        boxes = np.stack([y1, x1, np.minimum(y1 + h, 1024), np.minimum(x1 + w, 1024)], 1)
        class_ids = np.ones(count, np.int32)
        indexed = _median_time(lambda: data.build_rpn_targets(
            None, table, class_ids, boxes, config, rng=np.random.default_rng(0)), repeats)
        dense = _median_time(lambda: _dense_rpn_match(anchors, boxes), repeats)
        rows.append({"bench": "rpn_targets", "image": "1024x1024", "anchors": len(anchors),
                     "gt_boxes": count, "build_rpn_targets_s": round(indexed, 4),
                     "dense_iou_matrix_only_s": round(dense, 4)})
    return rows


# ----------------------------------------------------------------------------- pipeline
class _NullModel:
    """A keras Model whose training step only receives the batch."""

    @staticmethod
    def make():
        import keras
        import tensorflow as tf

        class NullModel(keras.Model):
            def call(self, inputs):
                return inputs

            def train_step(self, batch):
                inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
                return {"images": tf.cast(tf.shape(inputs["input_image"])[0], tf.float32)}

        model = NullModel()
        model.compile()
        return model


class _EpochTimer:
    def __init__(self):
        import keras

        outer = self

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                outer.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                outer.times.append(time.perf_counter() - outer.start)

        self.times, self.start = [], None
        self.callback = Timer()


def _rate_keras(dataset, config, steps, workers, processes):
    from mrcnn import data

    generator = data.DataGenerator(dataset, config, seed=0, steps_per_epoch=steps,
                                   workers=workers, use_multiprocessing=processes)
    timer = _EpochTimer()
    _NullModel.make().fit(generator, epochs=2, shuffle=False, verbose=0,
                          callbacks=[timer.callback])
    return timer.times[-1] / steps   # the second epoch: warm


def _rate_tfdata(dataset, config, steps, workers):
    import tensorflow as tf

    from mrcnn import data

    generator = data.DataGenerator(dataset, config, seed=0, steps_per_epoch=steps, workers=1)
    first = generator[0][0]
    names = sorted(first)

    def batch(index):
        inputs = generator[int(index)][0]
        return [inputs[name] for name in names]

    def as_dict(index):
        values = tf.numpy_function(batch, [index], [tf.as_dtype(first[n].dtype) for n in names])
        for value, name in zip(values, names):
            value.set_shape(first[name].shape)
        return {name: value for name, value in zip(names, values)}

    pipeline = (tf.data.Dataset.range(steps)
                .map(as_dict, num_parallel_calls=workers, deterministic=True).prefetch(2))
    for _ in pipeline.take(2):
        pass
    start = time.perf_counter()
    for _ in pipeline:
        pass
    return (time.perf_counter() - start) / steps


def bench_pipeline(case, config, steps, workers, mode, train_step_s):
    dataset = _dataset(config, max(4 * config.BATCH_SIZE, 16))
    if mode == "tfdata":
        batch_s = _rate_tfdata(dataset, config, steps, workers)
    else:
        batch_s = _rate_keras(dataset, config, steps, workers, mode == "processes")
    row = {"bench": "input_pipeline", "case": case, "mode": mode,
           "image": "x".join(str(int(s)) for s in config.IMAGE_SHAPE[:2]),
           "batch": config.BATCH_SIZE, "workers": workers, "cpus": _cpus(),
           "batch_s": round(batch_s, 4),
           "images_per_s": round(config.BATCH_SIZE / batch_s, 2)}
    if train_step_s:
        row["train_step_s"] = round(train_step_s, 4)
        row["input_over_step"] = round(batch_s / train_step_s, 3)
    return row


def _cpus():
    from mrcnn.data import default_workers

    return default_workers()


def _measure_train_step(case, steps=4):
    """Median train-step seconds, with bench_train.py's method."""
    import bench_train

    return bench_train.bench_case(case, _configs()[case], steps)["step_s"]


def _parse_step_times(items):
    result = {}
    for item in items or []:
        name, _, value = item.partition("=")
        result[name] = float(value)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["shapes", "default"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 0])
    parser.add_argument("--modes", nargs="+", default=["threads"],
                        choices=["threads", "processes", "tfdata"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--train-step-s", nargs="*", default=None,
                        help="case=seconds, e.g. shapes=0.9 default=0.6")
    parser.add_argument("--measure-train-step", action="store_true")
    parser.add_argument("--skip-rpn", action="store_true")
    args = parser.parse_args()

    if not args.skip_rpn:
        for row in bench_rpn_targets():
            print(json.dumps(row), flush=True)
    step_times = _parse_step_times(args.train_step_s)
    configs = _configs()
    for case in args.cases:
        config = configs[case]()
        config.SEED = 0
        if args.measure_train_step and case not in step_times:
            step_times[case] = _measure_train_step(case)
        for mode in args.modes:
            for workers in args.workers:
                count = workers or _cpus()
                if mode != "threads" and count == 1:
                    continue
                row = bench_pipeline(case, config, args.steps, count, mode,
                                     step_times.get(case))
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

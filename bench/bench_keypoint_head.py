"""What the keypoint head costs: train-step and inference-graph time with and without it.

On mrcnn.shapes.ShapesConfig (128 x 128, ResNet-18, batch 8) the same prepared batches
(input pipeline excluded; keypoints are made from each GT box: its 4 corners and centre
repeated to K) run through

- "none": NUM_KEYPOINTS = 0 (the baseline, the graph of every existing config);
- "paper": K = 17 keypoints, the paper's head (eight 3x3 convs of 512, 14x14 pooling,
  56x56 heatmaps);
- "narrow": K = 17, four 3x3 convs of 64 (a CPU-sized head);
- "keypoint_only": "narrow" without the mask head (KEYPOINT_WITH_MASKS = False).

The cases alternate step by step, so load on the machine hits them alike. Prints one JSON
line per case: median seconds per optimizer step and per inference-graph call (batch 8,
random weights), and both as a ratio to "none" of the same run.

    python bench/bench_keypoint_head.py [--steps 6] [--cases none paper narrow keypoint_only]
"""
import argparse
import json
import statistics
import tempfile
import time

import numpy as np

CASES = {
    "none": {},
    "paper": {"NUM_KEYPOINTS": 17, "KEYPOINT_HEAD_CONV_SIZE": 512,
              "KEYPOINT_HEAD_CONV_COUNT": 8},
    "narrow": {"NUM_KEYPOINTS": 17, "KEYPOINT_HEAD_CONV_SIZE": 64,
               "KEYPOINT_HEAD_CONV_COUNT": 4},
    "keypoint_only": {"NUM_KEYPOINTS": 17, "KEYPOINT_HEAD_CONV_SIZE": 64,
                      "KEYPOINT_HEAD_CONV_COUNT": 4, "KEYPOINT_WITH_MASKS": False},
}


def _box_keypoints(boxes, count):
    """float32 [G, count, 3]: corners and centre of each (y1, x1, y2, x2) box, visible
    (rows of padding and crowds are zeroed by the caller)."""
    points = []
    for y1, x1, y2, x2 in boxes:
        corners = [(x1, y1), (x2 - 1, y1), (x1, y2 - 1), (x2 - 1, y2 - 1),
                   ((x1 + x2 - 1) / 2, (y1 + y2 - 1) / 2)]
        points.append([list(corners[k % 5]) + [2.0] for k in range(count)])
    return np.array(points, np.float32).reshape(len(boxes), count, 3)


def _batches(count, steps):
    from mrcnn.data import DataGenerator
    from mrcnn.shapes import ShapesConfig, ShapesDataset

    config = ShapesConfig()
    config.SEED = 0
    size = int(config.IMAGE_SHAPE[0])
    dataset = ShapesDataset()
    dataset.load_shapes(4 * config.BATCH_SIZE, size, size, seed=0)
    dataset.prepare()
    generator = DataGenerator(dataset, config, shuffle=True, seed=0)
    batches = []
    for i in range(steps + 2):
        batch = dict(generator[i % len(generator)][0])
        boxes = np.asarray(batch["input_gt_boxes"])
        keypoints = np.stack([_box_keypoints(image_boxes, count) for image_boxes in boxes])
        keypoints[np.asarray(batch["input_gt_class_ids"]) <= 0] = 0.0
        batch["input_gt_keypoints"] = keypoints
        batches.append(batch)
    return batches


def _models(name, settings):
    import mrcnn.model as modellib
    from mrcnn.shapes import ShapesConfig

    config_class = type(f"Bench_{name}", (ShapesConfig,), dict(settings))
    model_dir = tempfile.mkdtemp(prefix="mrcnn_bench_")
    training_model = modellib.MaskRCNN("training", config_class(), model_dir=model_dir)
    inference_model = modellib.MaskRCNN("inference", config_class(), model_dir=model_dir)
    return training_model, inference_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    import tensorflow as tf

    cases = ["none"] + [c for c in args.cases if c != "none"]
    batches = _batches(17, args.steps)
    runners = {}
    for name in cases:
        training_model, inference_model = _models(name, CASES[name])
        training_model.compile(0.001, total_steps=args.steps + 2)
        keras_model = training_model.keras_model
        inputs = set(keras_model.input)
        step = tf.function(keras_model.train_step)
        detector = tf.function(lambda images, metas, m=inference_model.keras_model: m(
            {"input_image": images, "input_image_meta": metas}, training=False))
        runners[name] = (step, detector, inputs)
    train_s = {name: [] for name in cases}
    infer_s = {name: [] for name in cases}
    for index, batch in enumerate(batches):
        for name in cases:
            step, detector, inputs = runners[name]
            feed = {key: value for key, value in batch.items() if key in inputs}
            begin = time.perf_counter()
            float(step(feed)["loss"])
            train_time = time.perf_counter() - begin
            images = tf.constant(batch["input_image"])
            metas = tf.constant(batch["input_image_meta"])
            begin = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), detector(images, metas))
            infer_time = time.perf_counter() - begin
            if index >= 2:                     # the first two trace and warm up
                train_s[name].append(train_time)
                infer_s[name].append(infer_time)
    base_train = statistics.median(train_s["none"])
    base_infer = statistics.median(infer_s["none"])
    for name in cases:
        train, infer = statistics.median(train_s[name]), statistics.median(infer_s[name])
        print(json.dumps({"bench": "keypoint_head", "case": name, **CASES[name],
                          "steps": args.steps, "train_step_s": round(train, 4),
                          "train_ratio_to_none": round(train / base_train, 3),
                          "inference_s": round(infer, 4),
                          "inference_ratio_to_none": round(infer / base_infer, 3)}))


if __name__ == "__main__":
    main()

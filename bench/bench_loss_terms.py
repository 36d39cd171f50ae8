"""How large upstream's weight-decay term is next to the five losses.

The training loss (`loss` in the progress bar) is the weighted sum of the five Mask R-CNN
losses plus WEIGHT_DECAY * sum(w^2) / size(w) over the decayed tensors
(mrcnn.training.weight_decay_loss); the validation loss leaves the decay out. This prints
one JSON line per model, freshly built (random weights): the decay term, and for the shapes
model also the five losses of one training batch and the decay's share of their total.

    python bench/bench_loss_terms.py
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tempfile  # noqa: E402

from mrcnn.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import numpy as np  # noqa: E402

import mrcnn.model as modellib  # noqa: E402
from mrcnn import training  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from mrcnn.data import DataGenerator  # noqa: E402
from mrcnn.shapes import ShapesConfig, ShapesDataset  # noqa: E402


class CocoLikeConfig(Config):
    """Upstream's COCO model (ResNet-101, 81 classes); the image size does not change the
    weights, so a small one keeps the build quick."""
    NAME = "coco"
    NUM_CLASSES = 81
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = IMAGE_MAX_DIM = 256


def decay_of(model, config):
    variables = [w for w in model.keras_model.weights if w.trainable]
    return float(training.weight_decay_loss(variables, config.WEIGHT_DECAY))


def main():
    model_dir = tempfile.mkdtemp(prefix="bench_loss_terms_")
    config = CocoLikeConfig()
    coco = modellib.MaskRCNN(mode="inference", config=config, model_dir=model_dir)
    print(json.dumps({"model": "resnet101_coco", "weight_decay": config.WEIGHT_DECAY,
                      "decay_term": decay_of(coco, config)}), flush=True)
    del coco

    config = ShapesConfig()
    shapes = modellib.MaskRCNN(mode="training", config=config, model_dir=model_dir)
    dataset = ShapesDataset()
    dataset.load_shapes(config.BATCH_SIZE, config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1], seed=0)
    dataset.prepare()
    inputs = DataGenerator(dataset, config, shuffle=False, seed=0, workers=1)[0][0]
    outputs = shapes.keras_model(inputs, training=False)
    losses = {name: float(value) for name, value in
              training.compute_losses(inputs, outputs, config).items()}
    decay = decay_of(shapes, config)
    total = sum(losses[name] * config.LOSS_WEIGHTS.get(name, 1.0) for name in losses)
    print(json.dumps({"model": "shapes", "weight_decay": config.WEIGHT_DECAY,
                      "decay_term": decay, "losses": losses,
                      "decay_share": float(np.float64(decay) / (total + decay))}), flush=True)


if __name__ == "__main__":
    main()

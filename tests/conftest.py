"""Shared fixtures: a tiny Mask R-CNN configuration and shapes datasets for it."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from mrcnn.config import Config  # noqa: E402
from mrcnn.shapes import ShapesDataset  # noqa: E402


class TinyConfig(Config):
    """The smallest sensible graph: 64x64 images, ResNet-18, narrow heads."""
    NAME = "tiny"
    NUM_CLASSES = 4
    IMAGES_PER_GPU = 2
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1
    BACKBONE = "resnet18"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 24, 32, 48)
    TOP_DOWN_PYRAMID_SIZE = 32
    RPN_CONV_SIZE = 32
    MASK_HEAD_CONV_SIZE = 16
    FPN_CLASSIF_FC_LAYERS_SIZE = 32
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    POST_NMS_ROIS_TRAINING = 64
    POST_NMS_ROIS_INFERENCE = 32
    TRAIN_ROIS_PER_IMAGE = 16
    MAX_GT_INSTANCES = 6
    DETECTION_MAX_INSTANCES = 8
    DETECTION_MIN_CONFIDENCE = 0.0
    MINI_MASK_SHAPE = (28, 28)
    TRAIN_BN = None
    ROI_INCLUDE_GT_BOXES = True
    ROI_FILL_NEGATIVES = True
    LEARNING_RATE = 0.01
    SEED = 0


class TinyResNet50Config(Config):
    """ResNet-50 (upstream's layer names) on 64x64 images with the narrowest heads: for
    tests of weight files keyed by those names."""
    IMAGES_PER_GPU = 1
    BACKBONE = "resnet50"
    IMAGE_MIN_DIM = IMAGE_MAX_DIM = 64
    TOP_DOWN_PYRAMID_SIZE = 16
    FPN_CLASSIF_FC_LAYERS_SIZE = 16
    POST_NMS_ROIS_INFERENCE = 16
    DETECTION_MAX_INSTANCES = 4


@pytest.fixture
def tiny_config():
    return TinyConfig()


def shapes_dataset(count, size=64, seed=0):
    dataset = ShapesDataset()
    dataset.load_shapes(count, size, size, seed=seed)
    dataset.prepare()
    return dataset


@pytest.fixture(scope="session")
def tiny_shapes():
    return shapes_dataset(12, 64, seed=0)

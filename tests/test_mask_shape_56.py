"""MASK_SHAPE [56, 56] (MASK_POOL_SIZE 28) through training, detect(), export and drawing.

The tiny config with 56x56 masks: the training graph's mask head and targets are 56x56 and a
training step gives finite losses that reach the mask head; detect() pastes 56x56 box masks
into full-image masks of each image's own size and gives the 56x56 probabilities in "box"
format; the SavedModel serves 56x56 box-local masks that paste to detect()'s; the drawing
helpers take the masks as they come.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import mrcnn.model as modellib
from mrcnn import export, inference, training, utils, visualize
from mrcnn.data import DataGenerator

from conftest import TinyConfig, shapes_dataset
from test_export import assert_equal_to_detect, random_model, shapes_image


class Mask56Config(TinyConfig):
    MASK_SHAPE = [56, 56]
    MASK_POOL_SIZE = 28
    MINI_MASK_SHAPE = (56, 56)


class Mask56InferenceConfig(Mask56Config):
    IMAGES_PER_GPU = 1


def _layer_output_shape(model, name):
    return tuple(model.keras_model.get_layer(name).output.shape)


@pytest.mark.slow   # ~22 s on 2 busy cores (building the training graph)
def test_training_step_with_56x56_masks(tmp_path):
    keras.utils.set_random_seed(0)
    config = Mask56Config()
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    # [B, TRAIN_ROIS_PER_IMAGE, 56, 56, NUM_CLASSES] predictions.
    assert _layer_output_shape(model, "mrcnn_mask")[-3:] == (56, 56, config.NUM_CLASSES)
    training.set_trainable(model.keras_model, "all")
    model.compile(0.01, total_steps=1)
    batch = DataGenerator(shapes_dataset(4, 64, seed=3), config, shuffle=False, seed=0)[0]
    mask_kernel = np.array(model.keras_model.get_layer("mrcnn_mask").weights[0].numpy())
    logs = model.keras_model.train_step(batch)
    assert np.isfinite(float(logs["loss"]))
    # ROI_INCLUDE_GT_BOXES puts positives in every batch: the mask loss is a real BCE.
    assert 0.0 < float(logs["mrcnn_mask_loss"]) < 5.0
    after = model.keras_model.get_layer("mrcnn_mask").weights[0].numpy()
    assert not np.array_equal(mask_kernel, after)


@pytest.fixture(scope="module")
def inference_model(tmp_path_factory):
    return random_model(tmp_path_factory.mktemp("logs56"), Mask56InferenceConfig())


@pytest.fixture(scope="module")
def images():
    return {"square": shapes_image(64, 64, seed=1), "wide": shapes_image(48, 96, seed=2)}


def test_detect_pastes_56x56_masks_into_full_image_masks(inference_model, images):
    assert _layer_output_shape(inference_model, "mrcnn_mask")[-3:] == (56, 56, 4)
    for image in images.values():
        full = inference_model.detect([image])[0]
        count = len(full["class_ids"])
        assert count > 0
        assert full["masks"].shape == (*image.shape[:2], count)
        assert full["masks"].dtype == bool and full["masks"].any()
        box = inference_model.detect([image], mask_format="box")[0]
        assert box["masks"].shape == (count, 56, 56)
        np.testing.assert_array_equal(box["rois"], full["rois"])
        # "full" is the box probabilities pasted (bilinear, then thresholded at 0.5).
        np.testing.assert_array_equal(
            utils.paste_masks(box["masks"], box["rois"], image.shape), full["masks"])


@pytest.mark.slow   # ~33 s on 2 busy cores (tracing the serving graph)
def test_saved_model_serves_56x56_masks_that_paste_to_detect(inference_model, images,
                                                              tmp_path):
    export_dir = export.export_saved_model(inference_model, str(tmp_path / "saved_model"))
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    image = images["wide"]
    outputs = {k: v.numpy() for k, v in serve(images=tf.constant(image[None])).items()}
    assert outputs["masks"].shape == (1, Mask56InferenceConfig.DETECTION_MAX_INSTANCES, 56, 56)
    assert_equal_to_detect(inference_model.detect([image])[0], outputs, 0, image.shape)


def test_drawing_helpers_take_56x56_masks(inference_model, images, tmp_path):
    image = images["square"]
    r = inference_model.detect([image])[0]
    names = ["BG", "square", "circle", "triangle"]
    visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"], names,
                                r["scores"], save_path=str(tmp_path / "instances.png"))
    visualize.display_top_masks(image, r["masks"], r["class_ids"], names,
                                save_path=str(tmp_path / "top.png"))
    box = inference_model.detect([image], mask_format="box")[0]
    np.random.seed(0)
    visualize.draw_rois(image, box["rois"], box["rois"], box["masks"], box["class_ids"], names,
                        save_path=str(tmp_path / "rois.png"))
    for name in ("instances.png", "top.png", "rois.png"):
        assert (tmp_path / name).stat().st_size > 1000, name

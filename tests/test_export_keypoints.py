"""Exported keypoint models: the SavedModel, ONNX and TFLite files serve detect()'s
keypoints, in the input's pixels and rows; keypoint-only models export without a mask head."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import mrcnn.model as modellib
from mrcnn import export
from mrcnn.export.keypoints import keypoints_to_original

from keypoint_helpers import TinyKeypointConfig


class ServingConfig(TinyKeypointConfig):
    IMAGES_PER_GPU = 1


def _image(height, width, seed):
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def test_window_mapping_by_hand():
    # A 40 x 80 image molded into 64 x 64 at window (16, 0, 48, 64): scale 0.8.
    points = tf.constant([[[[32.5, 30.5, 0.7], [70.0, 10.0, 0.2]]]])
    mapped = np.asarray(keypoints_to_original(points, tf.constant([40, 80]),
                                              tf.constant([16, 0, 48, 64])))[0, 0]
    # (32.5 + 0.5) / 0.8 - 0.5 = 40.75, (30.5 - 16 + 0.5) / 0.8 - 0.5 = 18.25; the second
    # point is clipped to column 79, row 0.
    np.testing.assert_allclose(mapped, [[40.75, 18.25, 0.7], [79.0, 0.0, 0.2]], atol=1e-5)


@pytest.mark.slow
def test_saved_model_serves_the_keypoints_of_detect(tmp_path):
    keras.utils.set_random_seed(4)
    model = modellib.MaskRCNN("inference", ServingConfig(), str(tmp_path / "logs"))
    # The long side is IMAGE_MAX_DIM: no resize, so TensorFlow's molding equals detect()'s.
    image = _image(40, 64, 5)
    expected = model.detect([image])[0]
    assert len(expected["rois"]) > 0
    export_dir = str(tmp_path / "saved_model")
    export.export_saved_model(model, export_dir)
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    outputs = {k: np.asarray(v) for k, v in serve(images=tf.constant(image[None])).items()}
    count = int(outputs["num_detections"][0])
    assert outputs["keypoints"].shape == (1, 8, 3, 3) and outputs["keypoints"].dtype == np.float32
    np.testing.assert_array_equal(outputs["boxes"][0, :count], expected["rois"])
    np.testing.assert_allclose(outputs["keypoints"][0, :count], expected["keypoints"],
                               atol=1e-3)
    assert np.all(outputs["keypoints"][0, count:] == 0)


def test_keypoint_only_serving_has_keypoints_and_empty_masks(tmp_path):
    class KeypointOnly(ServingConfig):
        KEYPOINT_WITH_MASKS = False
    keras.utils.set_random_seed(4)
    model = modellib.MaskRCNN("inference", KeypointOnly(), str(tmp_path))
    image = _image(40, 64, 5)
    expected = model.detect([image])[0]
    outputs = export.run_serving(model.keras_model, model.config, tf.constant(image[None]))
    count = int(outputs["num_detections"][0])
    assert count == len(expected["rois"]) > 0
    np.testing.assert_allclose(np.asarray(outputs["keypoints"])[0, :count],
                               expected["keypoints"], atol=1e-3)
    assert tuple(outputs["masks"].shape[2:]) == (1, 1)


@pytest.mark.slow
def test_onnx_serves_the_keypoints_of_detect(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    keras.utils.set_random_seed(4)
    model = modellib.MaskRCNN("inference", ServingConfig(), str(tmp_path / "logs"))
    image = _image(40, 64, 5)
    expected = model.detect([image])[0]
    path = model.export_onnx(str(tmp_path / "keypoints.onnx"))     # ~60 CPU-s
    session = onnxruntime.InferenceSession(path)
    names = [output.name for output in session.get_outputs()]
    assert names == list(export.SERVING_OUTPUTS) + ["keypoints"]
    outputs = dict(zip(names, session.run(None, {session.get_inputs()[0].name: image[None]})))
    count = int(outputs["num_detections"][0])
    assert count == len(expected["rois"]) > 0
    # Measured 5e-5 against detect().
    np.testing.assert_allclose(outputs["keypoints"][0, :count], expected["keypoints"],
                               atol=1e-3)


@pytest.mark.slow
def test_tflite_serves_the_keypoints_of_detect(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter
    from test_export import assert_equal_to_detect, random_model, shapes_image

    # test_export's non-degenerate random model: an untrained head otherwise gives scores
    # of exactly 1.0 and one-pixel boxes, whose NMS and order TFLite's kernels settle
    # differently from TensorFlow's.
    model = random_model(tmp_path / "logs", ServingConfig())
    image = shapes_image(40, 64, 5)
    expected = model.detect([image])[0]
    path = export.export_tflite(model, str(tmp_path / "keypoints.tflite"))   # ~20 CPU-s
    outputs = Interpreter(model_path=path).get_signature_runner()(images=image[None])
    assert_equal_to_detect(expected, outputs, 0, image.shape)
    count = int(outputs["num_detections"][0])
    assert outputs["keypoints"].shape == (1, 8, 3, 3) and outputs["keypoints"].dtype == np.float32
    np.testing.assert_allclose(outputs["keypoints"][0, :count], expected["keypoints"],
                               atol=1e-3)
    assert np.all(outputs["keypoints"][0, count:] == 0)

"""python -m mrcnn.export: weights + config in, an exported model out; clear errors."""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import weights_io
from mrcnn.export import __main__ as cli

from test_export import ExportConfig, random_model, shapes_image


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A name-keyed .h5 of the random test model, and that model."""
    model = random_model(tmp_path_factory.mktemp("logs"))
    path = tmp_path_factory.mktemp("weights") / "export_test.h5"
    weights_io.save_weights(model.keras_model, str(path))
    return str(path), model


def test_saved_model_from_the_command_line_equals_detect(weights, tmp_path, capsys):
    path, model = weights
    out = str(tmp_path / "saved_model")
    status = cli.main(["--weights", path, "--config", "test_export:ExportConfig",
                       "--format", "saved_model", out])
    assert status == 0, capsys.readouterr().err
    assert f"wrote saved_model to {out}" in capsys.readouterr().out
    image = shapes_image(96, 128, 1)
    served = tf.saved_model.load(out).signatures["serving_default"](
        images=tf.constant(image[None]))
    expected = model.detect([image])[0]
    count = int(served["num_detections"][0])
    # Random weights would not give these detections: the file's weights were loaded.
    assert count == len(expected["class_ids"]) > 0
    np.testing.assert_allclose(served["scores"][0, :count], expected["scores"], atol=1e-5)


def test_a_missing_optional_package_is_named(weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)   # find_spec now reports it missing
    status = cli.main(["--weights", weights[0], "--config", "test_export:ExportConfig",
                       "--format", "onnx", str(tmp_path / "m.onnx")])
    assert status == 2
    err = capsys.readouterr().err
    assert "tf2onnx" in err and "mrcnn[onnx]" in err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--format", "onnx", "--quantization", "float16"], "apply to --format tflite only"),
    (["--format", "saved_model", "--opset", "17"], "--opset applies to --format onnx"),
    (["--format", "saved_model", "--config", "test_export:nothing"], "nothing"),
])
def test_bad_arguments_are_explained(weights, tmp_path, capsys, arguments, message):
    base = ["--weights", weights[0], "--config", "test_export:ExportConfig"]
    status = cli.main(base + arguments + [str(tmp_path / "out")])
    assert status == 2
    assert message in capsys.readouterr().err


def test_a_missing_weights_file_is_named(tmp_path, capsys):
    missing = str(tmp_path / "nowhere.h5")
    status = cli.main(["--weights", missing, "--config", "test_export:ExportConfig",
                       "--format", "saved_model", str(tmp_path / "out")])
    assert status == 2
    assert "nowhere.h5" in capsys.readouterr().err


def test_weights_of_another_graph_are_refused(tmp_path, capsys):
    class OtherHeads(ExportConfig):
        FPN_CLASSIF_FC_LAYERS_SIZE = 16
    other = random_model(tmp_path / "logs", OtherHeads())
    path = str(tmp_path / "other.h5")
    weights_io.save_weights(other.keras_model, path)
    status = cli.main(["--weights", path, "--config", "test_export:ExportConfig",
                       "--format", "saved_model", str(tmp_path / "out")])
    assert status == 2
    assert "other.h5" in capsys.readouterr().err


def test_the_module_runs_as_a_program():
    process = subprocess.run([sys.executable, "-m", "mrcnn.export", "--help"],
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 0
    assert "--format {saved_model,onnx,tflite}" in process.stdout

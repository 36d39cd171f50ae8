"""ONNX export: onnxruntime, in a process that cannot import TensorFlow, equals detect().

One conversion per module (tf2onnx takes 30-50 s here). The images need no resize or an
integer one (2x), where TensorFlow's molding equals OpenCV's exactly, so the graph sees
the same input as in detect() and the differences left are onnxruntime's float
arithmetic (scores agree to ~1e-6) and box coordinates within float rounding of .5.
Masks come out box-local ([D, 28, 28] probabilities) and are pasted here with
`inference.paste_masks`, the helper detect() itself uses.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mrcnn import export, inference

from test_export import (ExportConfig, assert_equal_to_detect, random_model,
                         shapes_image as _shapes_image)

pytest.importorskip("tf2onnx", reason="ONNX export needs tf2onnx (extra [onnx])")
pytest.importorskip("onnxruntime", reason="running the ONNX model needs onnxruntime "
                                          "(extra [onnx])")

pytestmark = pytest.mark.slow   # one conversion: ~50 s on 2 cores


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return random_model(tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def images():
    """Four sizes, three aspect ratios; molded without resize (128 long side) or at 2x."""
    return {"landscape": _shapes_image(96, 128, 1),   # 4:3, no resize
            "portrait": _shapes_image(128, 72, 3),    # 9:16, no resize
            "small": _shapes_image(64, 48, 2),        # 4:3, 2x
            "wide": _shapes_image(32, 64, 4)}         # 1:2, 2x (the long side caps it)


_ORT_SCRIPT = textwrap.dedent("""
    import json, sys
    for name in ("tensorflow", "keras", "mrcnn"):
        sys.modules[name] = None   # `import tensorflow` (or keras, mrcnn) now fails
    try:
        import tensorflow  # noqa: F401
        blocked = False
    except ImportError:
        blocked = True
    import numpy as np
    import onnxruntime
    model_path, inputs, outputs = sys.argv[1:4]
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    data = np.load(inputs)
    results = {}
    for key in data.files:
        for name, value in zip(names, session.run(names, {"images": data[key]})):
            results[key + "/" + name] = value
    np.savez(outputs, **results)
    print(json.dumps({"tensorflow_blocked": blocked, "outputs": names,
                      "input": [str(d) for d in session.get_inputs()[0].shape]}))
""")


def run_onnxruntime(model_path, batches, folder):
    """Run the ONNX model on each batch in a clean process without TensorFlow."""
    np.savez(folder / "inputs.npz", **batches)
    process = subprocess.run(
        [sys.executable, "-I", "-c", _ORT_SCRIPT, str(model_path), str(folder / "inputs.npz"),
         str(folder / "outputs.npz")], cwd=str(folder), capture_output=True, text=True,
        timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    status = json.loads(process.stdout.strip().splitlines()[-1])
    data = np.load(folder / "outputs.npz")
    outputs = {}
    for key in data.files:
        batch, name = key.split("/")
        outputs.setdefault(batch, {})[name] = data[key]
    return status, outputs


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "mask_rcnn.onnx"
    assert model.export_onnx(str(path)) == str(path)
    return path


@pytest.fixture(scope="module")
def served(onnx_path, images, tmp_path_factory):
    batches = {name: image[None] for name, image in images.items()}
    batches["pair"] = np.stack([images["small"], _shapes_image(64, 48, 5)])
    return run_onnxruntime(onnx_path, batches, tmp_path_factory.mktemp("ort"))


def test_runs_in_onnxruntime_without_tensorflow(served):
    status, outputs = served
    assert status["tensorflow_blocked"]
    assert status["outputs"] == list(export.SERVING_OUTPUTS)
    assert status["input"][1:] != ["96", "128", "3"]   # image size left dynamic
    pair = outputs["pair"]
    D, (mh, mw) = ExportConfig.DETECTION_MAX_INSTANCES, ExportConfig.MASK_SHAPE
    assert pair["masks"].shape == (2, D, mh, mw) and pair["masks"].dtype == np.float32
    assert pair["boxes"].shape == (2, D, 4) and pair["boxes"].dtype == np.int32
    assert pair["class_ids"].dtype == np.int32 and pair["num_detections"].shape == (2,)


@pytest.mark.parametrize("name", ["landscape", "portrait", "small", "wide"])
def test_detections_equal_detect(model, images, served, name):
    _, outputs = served
    expected = model.detect([images[name]])[0]
    assert_equal_to_detect(expected, outputs[name], 0, images[name].shape)


def test_a_batch_gives_each_image_its_own_detections(model, images, served):
    _, outputs = served
    second = _shapes_image(64, 48, 5)
    expected = model.detect([images["small"], second])
    for row in range(2):
        assert_equal_to_detect(expected[row], outputs["pair"], row, second.shape)
    assert not np.array_equal(outputs["pair"]["boxes"][0], outputs["pair"]["boxes"][1])


def test_no_detections_come_back_as_empty_arrays(tmp_path):
    """A model whose threshold no score reaches: zero counts and all-zero rows."""
    config = ExportConfig()
    config.DETECTION_MIN_CONFIDENCE = 1.0
    strict = random_model(tmp_path / "logs", config)
    image = _shapes_image(64, 48, 2)
    assert len(strict.detect([image])[0]["class_ids"]) == 0
    path = export.export_onnx(strict, str(tmp_path / "strict.onnx"))
    _, outputs = run_onnxruntime(path, {"one": image[None]}, tmp_path)
    one = outputs["one"]
    assert one["num_detections"].tolist() == [0]
    count = int(one["num_detections"][0])
    assert one["boxes"][0, :count].shape == (0, 4)
    assert one["masks"][0, :count].shape == (0, 28, 28)
    assert inference.paste_masks(one["masks"][0, :count], one["boxes"][0, :count],
                                 image.shape).shape == (64, 48, 0)
    assert not one["masks"].any() and not one["scores"].any()


def test_missing_tf2onnx_is_named(model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(ImportError, match=r"'tf2onnx'.*mrcnn\[onnx\]"):
        export.export_onnx(model, str(tmp_path / "x.onnx"))


def test_a_training_model_is_refused(tmp_path):
    class Fake:
        mode = "training"
    with pytest.raises(ValueError, match="mode='inference'"):
        export.export_onnx(Fake(), str(tmp_path / "x.onnx"))

"""The tutorial notebooks run top to bottom, draw their figures and are stored clean.

Each notebook is executed in a fresh Jupyter kernel (the "python3" kernel of this
environment) in its own temporary directory, so the checkpoints it writes under ./logs
stay there. MRCNN_NOTEBOOK_QUICK=1 makes the notebooks shrink their image counts, steps
and epochs; the inline matplotlib backend turns figures into image/png outputs.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
import time

import pytest

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT_DIR, "notebooks")
NOTEBOOKS = ["train_shapes.ipynb", "inspect_data.ipynb", "inspect_model.ipynb",
             "inspect_weights.ipynb", "demo.ipynb", "train_keypoints.ipynb"]
# Notebooks that must show at least this many images (figures) when run.
MIN_IMAGES = {"train_shapes.ipynb": 4, "inspect_data.ipynb": 8, "inspect_model.ipynb": 8,
              "inspect_weights.ipynb": 1, "demo.ipynb": 5, "train_keypoints.ipynb": 3}
CELL_TIMEOUT_S = 600
# Parts of TensorFlow's start-up lines, which the notebooks' first cell keeps out of the
# outputs (mrcnn.console).
STARTUP_NOISE = ("absl::InitializeLog", "port.cc", "cudart_stub.cc", "cuInit",
                 "cpu_feature_guard.cc", "DT_INT32")
# Lines each notebook prints when its checks hold (values worked out by hand in the comments).
EXPECTED_TEXT = {
    "train_shapes.ipynb": ["mAP@0.5 = ", "mAP@[0.5:0.95] = "],
    "inspect_data.ipynb": [
        # 128x128 images, strides 4..64, 3 ratios: 3 * (32^2 + 16^2 + 8^2 + 4^2 + 2^2).
        "anchors in all: 4092 = 3072 + 768 + 192 + 48 + 12",
        "IoU of each refined anchor with its ground truth box:",
    ],
    "inspect_model.ipynb": [
        "detect() returned the same boxes: True",
        "mrcnn_mask is mrcnn_mask_unfold folded: True",
        "IoU of each refined positive anchor with its ground truth box:",
    ],
    "inspect_weights.ipynb": ["showing the initial weights"],
    "demo.ipynb": ["second call: 5 images"],
    "train_keypoints.ipynb": [
        "NUM_KEYPOINTS: 3  KEYPOINT_NAMES: ('apex', 'left_corner', 'right_corner')",
        # Quick mode: 1 epoch of 4 steps of 2 images.
        "steps: 4  images per step: 2",
        "keypoint AP@OKS0.5 = ",
    ],
}


def _read(name):
    import nbformat

    with open(os.path.join(NOTEBOOK_DIR, name), encoding="utf-8") as f:
        return nbformat.read(f, as_version=4)


def _images(nb):
    """The image/png outputs of an executed notebook."""
    return [output for cell in nb.cells if cell.cell_type == "code"
            for output in cell.get("outputs", [])
            if output.get("output_type") in ("display_data", "execute_result")
            and "image/png" in output.get("data", {})]


def _text(nb):
    """All stream and plain-text outputs of an executed notebook, concatenated."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "text/plain" in output.get("data", {}):
                parts.append(output["data"]["text/plain"])
    return "".join(parts)


def _stderr(nb):
    """The stderr stream outputs of an executed notebook, concatenated."""
    return "".join(output.get("text", "") for cell in nb.cells
                   for output in cell.get("outputs", [])
                   if output.get("output_type") == "stream" and output.get("name") == "stderr")


def _values_after(text, label):
    """The numbers of the printed array after `label`, e.g. "label: [1. 0.98]"."""
    match = re.search(re.escape(label) + r"\s*\[([^\]]*)\]", text)
    assert match, f"no array printed after {label!r}"
    return [float(v) for v in match.group(1).split()]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs(name):
    nb = _read(name)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code_cells, "a notebook without code"
    for cell in code_cells:
        assert cell.outputs == [], f"cell {cell.id} has stored outputs"
        assert cell.execution_count is None, f"cell {cell.id} has an execution count"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_notebooks_match_their_generator():
    result = subprocess.run([sys.executable, os.path.join(NOTEBOOK_DIR, "build_notebooks.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _demo_model_dir():
    """The model_dir of `make demo`: its command in the Makefile, parsed by the sample."""
    with open(os.path.join(ROOT_DIR, "Makefile"), encoding="utf-8") as f:
        makefile = f.read()
    match = re.search(r"^demo:.*\n\t\$\(BIN\)/python (samples/shapes/shapes\.py .*)$",
                      makefile, re.M)
    assert match, "no demo target running samples/shapes/shapes.py"
    script, *args = match.group(1).split()
    spec = importlib.util.spec_from_file_location("shapes_sample", os.path.join(ROOT_DIR, script))
    sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sample)
    return sample.parse_args(args).model_dir


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_look_for_checkpoints_where_make_demo_writes_them(name, monkeypatch, capsys):
    # The first code cell, run where Jupyter runs it (the notebook's folder), without its
    # IPython magic and without the stderr filter (this is the test process).
    monkeypatch.chdir(NOTEBOOK_DIR)
    monkeypatch.delenv("MRCNN_MODEL_DIR", raising=False)
    monkeypatch.setenv("MRCNN_QUIET_TF", "0")
    setup = next(cell.source for cell in _read(name).cells if cell.cell_type == "code")
    namespace = {}
    exec("\n".join(line for line in setup.splitlines() if not line.startswith("%")), namespace)
    assert namespace["MODEL_DIR"] == _demo_model_dir() == os.path.join(ROOT_DIR, "logs")


@pytest.fixture
def quick_notebook_env(monkeypatch, tmp_path):
    """Environment of the kernel: quick settings, inline figures, checkpoints under
    tmp_path/logs. TF_CPP_MIN_LOG_LEVEL is left as a user's shell has it (unset)."""
    monkeypatch.setenv("MRCNN_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MRCNN_MODEL_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("MRCNN_QUIET_TF", raising=False)
    monkeypatch.setenv("PYTHONHASHSEED", "0")


def _execute(name, cwd):
    from nbclient import NotebookClient

    nb = _read(name)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    return nb, time.perf_counter() - start


# The notebooks that train (quick mode: 10-20 steps) take 30-36 s each on 2 cores; the
# others 8 s. train_keypoints (4 steps of 2 images) takes about 0.7 times train_shapes'
# time: 122 s against 171 s, one after the other on a busy machine (38 against 58 CPU s).
TRAINING_NOTEBOOKS = ("train_shapes.ipynb", "inspect_model.ipynb", "demo.ipynb",
                      "train_keypoints.ipynb")


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name in TRAINING_NOTEBOOKS else name
    for name in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(name, tmp_path, quick_notebook_env):
    nb, seconds = _execute(name, tmp_path)
    print(json.dumps({"notebook": name, "seconds": round(seconds, 1)}))

    errors = [output for cell in nb.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors
    noise = [line for line in _stderr(nb).splitlines()
             if any(marker in line for marker in STARTUP_NOISE)]
    assert not noise, noise
    text = _text(nb)
    assert "quick settings" in text
    for expected in EXPECTED_TEXT[name]:
        assert expected in text, expected
    assert len(_images(nb)) >= MIN_IMAGES[name], f"{len(_images(nb))} images"
    _check_values(name, text)
    if name == "train_shapes.ipynb":
        _check_printed_map(text, tmp_path / "logs")
    if name == "train_keypoints.ipynb":
        _check_printed_keypoint_ap(text, tmp_path / "logs")
        checkpoints = [f for _, _, files in os.walk(tmp_path / "logs") for f in files
                       if f.startswith("mask_rcnn_kpshapes_") and f.endswith(".h5")]
        assert checkpoints
    if name in ("train_shapes.ipynb", "inspect_model.ipynb", "demo.ipynb"):
        # These trained in quick mode: a checkpoint was written under the working directory.
        checkpoints = [f for _, _, files in os.walk(tmp_path / "logs") for f in files
                       if f.startswith("mask_rcnn_shapes_") and f.endswith(".h5")]
        assert checkpoints


def _check_printed_map(text, model_dir):
    """The mAP the notebook prints is that of the checkpoint it wrote, on its held-out images.

    Quick mode trains 15 steps, so both values are about 0 (150 steps of 8 images gave
    0.014 on 6 images, 300 gave 0.0): what learning reaches is test_e2e_shapes' business.
    Here the printed numbers are recomputed from the checkpoint with 3 decimals, so a
    notebook printing another result, another threshold or other images fails whenever
    they differ."""
    import mrcnn.model as modellib
    from mrcnn.evaluate import COCO_IOU_THRESHOLDS, evaluate_map
    from mrcnn.shapes import ShapesConfig, ShapesDataset

    match = re.search(r"mAP@0\.5 = ([0-9.]+)   mAP@\[0\.5:0\.95\] = ([0-9.]+)   \((\d+) images\)",
                      text)
    assert match, "no mAP line"
    printed_50, printed_range, images = float(match.group(1)), float(match.group(2)), int(match.group(3))
    assert images == 6

    class InferenceConfig(ShapesConfig):      # as the notebook's
        IMAGES_PER_GPU = 4

    model = modellib.MaskRCNN(mode="inference", config=InferenceConfig(), model_dir=str(model_dir))
    model.load_weights(model.find_last(), by_name=True, verbose=0)
    held_out = ShapesDataset()
    held_out.load_shapes(images, 128, 128, seed=10_000)
    held_out.prepare()
    result = evaluate_map(model, held_out, iou_thresholds=COCO_IOU_THRESHOLDS)
    assert printed_50 == round(result["mAP"][0.5], 3)
    assert printed_range == round(result["mAP_range"], 3)


def _check_printed_keypoint_ap(text, model_dir):
    """The OKS keypoint AP the notebook prints is that of the checkpoint it wrote.

    Quick mode trains 4 steps, so the values are about 0 (what learning reaches is
    test_e2e_keypoints' business); recomputed here from the checkpoint on the same 8
    held-out images with 3 decimals, a notebook printing another metric, other sigmas
    or other images fails whenever they differ. The first image's ground-truth
    keypoints are printed as KeypointShapesDataset draws them."""
    import mrcnn.model as modellib
    from mrcnn.keypoint_eval import evaluate_keypoint_metrics
    from mrcnn.keypoint_shapes import SIGMAS, KeypointShapesConfig, KeypointShapesDataset

    match = re.search(r"keypoint AP@OKS0\.5 = ([0-9.]+)   AP@OKS\[0\.5:0\.95\] = ([0-9.]+)   "
                      r"\((\d+) images\)", text)
    assert match, "no keypoint AP line"
    printed_50, printed_ap, images = float(match.group(1)), float(match.group(2)), int(match.group(3))
    assert images == 8

    class InferenceConfig(KeypointShapesConfig):      # as the notebook's
        IMAGES_PER_GPU = 4
        DETECTION_MIN_CONFIDENCE = 0.5

    model = modellib.MaskRCNN(mode="inference", config=InferenceConfig(), model_dir=str(model_dir))
    model.load_weights(model.find_last(), by_name=True, verbose=0)
    held_out = KeypointShapesDataset()
    held_out.load_triangles(images, 64, 64, seed=10_000)
    held_out.prepare()
    metrics = evaluate_keypoint_metrics(model, held_out, sigmas=SIGMAS)
    assert printed_50 == round(metrics["AP50"], 3)
    assert printed_ap == round(metrics["AP"], 3)

    train = KeypointShapesDataset()
    train.load_triangles(1, 64, 64, seed=0)
    first = train.load_keypoints(0)[0]
    for name, (x, y, v) in zip(("apex", "left_corner", "right_corner"), first):
        assert f"{name:>12}: x={x:4.0f} y={y:4.0f} v={v:.0f}" in text


def _check_values(name, text):
    """Numbers the notebooks print that are known exactly."""
    if name == "inspect_data.ipynb":
        # Every level's centre cell (rows // 2, cols // 2) times its stride is pixel 64.
        assert text.count("centred at (y, x) = [64. 64.]") == 5
        # Anchor deltas of the targets move each positive anchor exactly onto its GT box.
        ious = _values_after(text, "IoU of each refined anchor with its ground truth box:")
        assert ious and all(v == 1.0 for v in ious), ious
        round_trip = _values_after(text, "IoU of each mask with its mini-mask round trip:")
        # measured: [0.991 1. 1. 1.]
        assert round_trip and all(0.9 <= v <= 1.0 for v in round_trip), round_trip
    if name == "inspect_model.ipynb":
        ious = _values_after(text, "IoU of each refined positive anchor with its ground truth box:")
        assert ious and all(v == 1.0 for v in ious), ious

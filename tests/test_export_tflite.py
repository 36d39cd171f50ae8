"""TFLite export: builtin ops only, run by the LiteRT interpreter without TensorFlow.

float32 equals detect() (same count and class ids, boxes within 1 px, scores within
1e-4, mask IoU >= 0.99); float16 and dynamic-range (int8 weights) variants are measured
against float32: the share of float32 detections they find again (same class, box IoU
>= 0.5) and their score differences, over four images; and their anchors are not
quantized (no GATHER reads a dequantized constant). One SavedModel trace and three
conversions per module (~20 s each here).
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mrcnn import export, inference, utils
from mrcnn.export import tflite

from test_export import (ExportConfig, assert_equal_to_detect, random_model,
                         shapes_image as _shapes_image)

pytest.importorskip("ai_edge_litert", reason="running TFLite models needs ai-edge-litert "
                                             "(extra [tflite])")

pytestmark = pytest.mark.slow   # three conversions: ~1-2 min on 2 cores


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return random_model(tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def images():
    return {"landscape": _shapes_image(96, 128, 1), "portrait": _shapes_image(128, 72, 3),
            "small": _shapes_image(64, 48, 2), "wide": _shapes_image(32, 64, 4)}


@pytest.fixture(scope="module")
def tflite_files(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite")
    saved = tflite.save_builtin_saved_model(model, folder / "saved_model")
    return {str(q): tflite.convert_saved_model(saved, folder / f"{q}.tflite", q)
            for q in tflite.QUANTIZATIONS}


_LITERT_SCRIPT = textwrap.dedent("""
    import json, sys
    for name in ("tensorflow", "keras", "mrcnn"):
        sys.modules[name] = None   # `import tensorflow` (or keras, mrcnn) now fails
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    inputs, outputs = sys.argv[1], sys.argv[2]
    data = np.load(inputs)
    results, status = {}, {}
    for path in sys.argv[3:]:
        interpreter = Interpreter(model_path=path)
        runner = interpreter.get_signature_runner()
        status[path] = {"signatures": interpreter.get_signature_list()}
        for key in data.files:
            for name, value in runner(images=data[key]).items():
                results[path + "|" + key + "|" + name] = value
    np.savez(outputs, **results)
    print(json.dumps(status))
""")


@pytest.fixture(scope="module")
def served(tflite_files, images, tmp_path_factory):
    """Outputs of every variant on every image, from a process without TensorFlow."""
    folder = tmp_path_factory.mktemp("litert")
    np.savez(folder / "inputs.npz", **{name: image[None] for name, image in images.items()})
    paths = [str(p) for p in tflite_files.values()]
    process = subprocess.run(
        [sys.executable, "-I", "-c", _LITERT_SCRIPT, str(folder / "inputs.npz"),
         str(folder / "outputs.npz")] + paths,
        cwd=str(folder), capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    status = json.loads(process.stdout.strip().splitlines()[-1])
    data = np.load(folder / "outputs.npz")
    outputs = {}
    for key in data.files:
        path, image, name = key.split("|")
        variant = next(q for q, p in tflite_files.items() if str(p) == path)
        outputs.setdefault(variant, {}).setdefault(image, {})[name] = data[key]
    return status, outputs


def test_signature_and_outputs(served):
    status, outputs = served
    for entry in status.values():
        assert entry["signatures"]["serving_default"]["inputs"] == ["images"]
        assert sorted(entry["signatures"]["serving_default"]["outputs"]) == sorted(
            export.SERVING_OUTPUTS)
    small = outputs["None"]["small"]
    D = ExportConfig.DETECTION_MAX_INSTANCES
    assert small["masks"].shape == (1, D, 28, 28) and small["masks"].dtype == np.float32
    assert small["boxes"].dtype == np.int32 and small["num_detections"].shape == (1,)


@pytest.mark.parametrize("name", ["landscape", "portrait", "small", "wide"])
def test_float32_equals_detect(model, images, served, name):
    _, outputs = served
    expected = model.detect([images[name]])[0]
    assert_equal_to_detect(expected, outputs["None"][name], 0, images[name].shape)


def matched_pairs(reference, other):
    """[(i, j)]: each `reference` detection paired with an unused `other` detection of its
    class and the highest box IoU >= 0.5 (greedy, in reference order)."""
    count, other_count = int(reference["num_detections"][0]), int(other["num_detections"][0])
    if count == 0 or other_count == 0:
        return []
    overlaps = utils.compute_overlaps(reference["boxes"][0, :count].astype(float),
                                      other["boxes"][0, :other_count].astype(float))
    pairs, taken = [], set()
    for i in range(count):
        for j in np.argsort(-overlaps[i]):
            if overlaps[i, j] < 0.5:
                break
            if j not in taken and other["class_ids"][0, j] == reference["class_ids"][0, i]:
                taken.add(j)
                pairs.append((i, j))
                break
    return pairs


def test_matching_by_hand():
    reference = {"num_detections": np.array([3]), "class_ids": np.array([[1, 2, 1]]),
                 "boxes": np.array([[[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]]])}
    other = {"num_detections": np.array([3]), "class_ids": np.array([[2, 1, 1]]),
             # IoU with [0, 0, 10, 10]: 1.0, 0.81 (9x9 inside), 0 -> (0, 1), (1, 0) match;
             # [20, 20, 30, 30] against [25, 25, 35, 35]: 25 / 175 < 0.5, no match.
             "boxes": np.array([[[0, 0, 10, 10], [1, 1, 10, 10], [25, 25, 35, 35]]])}
    assert matched_pairs(reference, other) == [(0, 1), (1, 0)]


# Share of float32 detections the variant finds again, over the four images. Measured
# here on this random model: float16 1.0 (all 48); dynamic_range 0.90 (43 of 48: int8
# weights move the crowded random-weight scores, 0.4-0.6 for every ROI, enough to reorder
# the top 12 and flip argmax classes). A trained model separates its scores: on the
# shapes model of tests/test_e2e_shapes.py both find all float32 detections (box IoU
# >= 0.9 even); bench/bench_export.py --weights --eval-images measures one.
MIN_MATCHED = {"float16": 0.95, "dynamic_range": 0.7}


@pytest.mark.parametrize("quantization", ["float16", "dynamic_range"])
def test_quantized_variants_find_the_float32_detections(served, tflite_files, images,
                                                        quantization):
    _, outputs = served
    found, total, score_differences, mask_ious = 0, 0, [], []
    for name, reference in outputs["None"].items():
        other = outputs[quantization][name]
        pairs = matched_pairs(reference, other)
        found += len(pairs)
        total += int(reference["num_detections"][0])
        shape = images[name].shape
        for i, j in pairs:
            score_differences.append(abs(reference["scores"][0, i] - other["scores"][0, j]))
            a = inference.paste_masks(reference["masks"][0, i:i + 1],
                                      reference["boxes"][0, i:i + 1], shape)
            b = inference.paste_masks(other["masks"][0, j:j + 1], other["boxes"][0, j:j + 1],
                                      shape)
            union = np.logical_or(a, b).sum()
            mask_ious.append(np.logical_and(a, b).sum() / union if union else 1.0)
    assert total == 48
    assert found / total >= MIN_MATCHED[quantization], (found, total)
    # Matched detections, measured here: float16 scores differ by 5e-5 (median), 2.3e-4
    # (max), mask IoU median and min 1.0; dynamic_range scores by 0.003 (median), 0.008
    # (max), mask IoU median 1.0, min 0.86 (a small mask, a few pixels near 0.5).
    if quantization == "float16":
        assert max(score_differences) < 2e-3, max(score_differences)
        assert np.median(mask_ious) >= 0.95 and min(mask_ious) >= 0.6, mask_ious
    else:
        assert np.median(score_differences) < 0.03, np.median(score_differences)
        assert np.median(mask_ious) >= 0.7, np.median(mask_ious)
    sizes = {q: os.path.getsize(p) for q, p in tflite_files.items()}
    ratio = {"float16": 0.5, "dynamic_range": 0.25}[quantization]
    assert sizes[quantization] < (ratio + 0.05) * sizes["None"], sizes


@pytest.mark.parametrize("quantization", ["float16", "dynamic_range"])
def test_quantized_variants_gather_exact_anchors(tflite_files, quantization):
    """The proposal layer gathers its top anchors from a constant of the graph. Quantized
    conversions store such a gathered float constant as int8 (dynamic range: 1/255 of the
    anchors' range, ~1 px at 128^2; before the anchors went through the gather as int32
    bits, 8 of 118 detections of a trained shapes model moved to box IoU < 0.9) or float16
    and DEQUANTIZE it at run time; every GATHER must read undequantized data."""
    from ai_edge_litert.interpreter import Interpreter

    ops = Interpreter(model_path=str(tflite_files[quantization]))._get_ops_details()
    dequantized = {int(op["outputs"][0]) for op in ops if op["op_name"] == "DEQUANTIZE"}
    # The quantized weights are there: float16 ones dequantized, int8 ones read by the
    # hybrid convolutions themselves (no DEQUANTIZE left in that file) ...
    if quantization == "float16":
        assert dequantized
    else:
        assert not dequantized and any(
            np.int8 in op["operand_types"] for op in ops if op["op_name"] == "CONV_2D")
    gathers = [op for op in ops if op["op_name"] == "GATHER"]
    assert gathers and not [op for op in gathers if int(op["inputs"][0]) in dequantized]
    assert any(op["op_name"] == "BITCAST" for op in ops)   # ... and the anchors as bits


def test_arguments_are_checked(model, tmp_path):
    with pytest.raises(ValueError, match="quantization must be one of"):
        export.export_tflite(model, str(tmp_path / "x.tflite"), quantization="int4")
    pad64 = random_model(tmp_path / "logs", _pad64_config())
    with pytest.raises(ValueError, match="needs a fixed image_shape"):
        export.export_tflite(pad64, str(tmp_path / "x.tflite"))


def _pad64_config():
    config = ExportConfig()
    config.IMAGE_RESIZE_MODE = "pad64"
    return config

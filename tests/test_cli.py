"""The ``mrcnn`` command line end to end on tiny data.

Each subcommand runs in a subprocess (``python -m mrcnn``) on a COCO JSON of six 64x64
shapes images written here, with a config module on PYTHONPATH (the tiny settings of
conftest's TinyConfig, NUM_CLASSES left to the data set). One training run (1 epoch of 2
steps, from scratch) feeds detect, evaluate and export; one detect run over the image
folder and a video feeds the checks of evaluate and export. What a model trained for two
steps detects is not asserted: the checks compare the subcommands' outputs with each other
and with pycocotools / utils.compute_ap computed here from the files.
"""
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mrcnn.cli import main
from mrcnn.cli.weights import COCO_WEIGHTS_ENV

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Non-contiguous category ids, as annotation tools write them: classes 1..3 map to these.
CATEGORY_IDS = {1: 3, 2: 7, 3: 11}
CLASS_NAMES = ["BG", "square", "circle", "triangle"]
VIDEO_FRAMES = 5
EVERY_NTH = 2          # frames 0, 2, 4 are detected

CONFIG_MODULE = '''
from mrcnn.config import Config


class TinyConfig(Config):
    """conftest's TinyConfig without NUM_CLASSES (the data set gives it)."""
    NAME = "tiny"
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
    LOG_EVERY_N_STEPS = 1
    SEED = 0
'''


# --- The tiny data ---------------------------------------------------------------------

def _write_workspace(root):
    """images/shape_<i>.png, ann.json (COCO, RLE masks, category ids 3/7/11), clip.avi
    (5 frames) and tinycfg.py under ``root``."""
    import cv2
    from PIL import Image

    from mrcnn.datasets import dataset_to_coco
    from mrcnn.shapes import ShapesDataset

    (root / "images").mkdir()
    shapes = ShapesDataset()
    shapes.load_shapes(6, 64, 64, seed=0)
    shapes.prepare()
    for image_id in shapes.image_ids:
        path = root / "images" / f"shape_{image_id}.png"
        Image.fromarray(shapes.load_image(image_id)).save(path)
        shapes.image_info[image_id]["path"] = str(path)
    coco = dataset_to_coco(shapes, image_dir=str(root / "images"))
    for category in coco["categories"]:
        category["id"] = CATEGORY_IDS[category["id"]]
    for annotation in coco["annotations"]:
        annotation["category_id"] = CATEGORY_IDS[annotation["category_id"]]
    (root / "ann.json").write_text(json.dumps(coco))

    frames = ShapesDataset()
    frames.load_shapes(VIDEO_FRAMES, 64, 64, seed=5)
    frames.prepare()
    writer = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                             (64, 64))
    for image_id in frames.image_ids:
        writer.write(cv2.cvtColor(frames.load_image(image_id), cv2.COLOR_RGB2BGR))
    writer.release()
    (root / "tinycfg.py").write_text(CONFIG_MODULE)
    return coco


def _env(root):
    env = dict(os.environ, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0")
    paths = [str(root), ROOT_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop(COCO_WEIGHTS_ENV, None)
    env.pop("MRCNN_DEBUG", None)
    return env


def run_cli(root, *args, timeout=600):
    """``python -m mrcnn ARGS`` in ``root``; the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, "-m", "mrcnn", *map(str, args)], cwd=root,
                          env=_env(root), capture_output=True, text=True, timeout=timeout)


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    coco = _write_workspace(root)
    return root, coco


@pytest.fixture(scope="module")
def trained(workspace):
    """One training run: (checkpoint path, CompletedProcess)."""
    root, _ = workspace
    result = _ok(run_cli(root, "train", "--coco", "ann.json", "--images", "images",
                         "--val-fraction", "0.34", "--config", "tinycfg:TinyConfig",
                         "--weights", "none", "--layers", "all", "--epochs", 1,
                         "--logs", "logs"))
    checkpoints = glob.glob(str(root / "logs" / "tiny*" / "mask_rcnn_tiny_0001.h5"))
    assert len(checkpoints) == 1, result.stdout[-2000:]
    return checkpoints[0], result


@pytest.fixture(scope="module")
def detected(workspace, trained):
    """One detect run over the image folder and the video: (output folder, process)."""
    root, _ = workspace
    checkpoint, _ = trained
    result = _ok(run_cli(root, "detect", "--config", "tinycfg:TinyConfig", "--weights",
                         checkpoint, "--output", "out", "--every-nth-frame", EVERY_NTH,
                         "--min-confidence", "0.0", "--save-masks", "images", "clip.avi"))
    return root / "out", result


# --- help and the entry point ----------------------------------------------------------

@pytest.mark.parametrize("command, options", [
    ("train", ["--coco", "--via", "--labelme", "--masks", "--val-coco", "--val-fraction",
               "--weights", "--layers", "--epochs", "--config", "--set", "--logs"]),
    ("detect", ["--weights", "--output", "--min-confidence", "--every-nth-frame",
                "--video-output", "--save-masks", "INPUT"]),
    ("evaluate", ["--coco", "--images", "--weights", "--json"]),
    ("export", ["--format", "saved_model", "onnx", "tflite", "OUT"]),
])
def test_help_of_each_subcommand(command, options, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: mrcnn {command}")
    for option in options:
        assert option in text, option


def test_python_dash_m_mrcnn_lists_the_subcommands(tmp_path):
    result = _ok(run_cli(tmp_path, "--help"))
    for command in ("train", "detect", "evaluate", "export"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command
    missing = run_cli(tmp_path)
    assert missing.returncode == 2 and "required: COMMAND" in missing.stderr


def test_console_script_entry_point():
    with open(os.path.join(ROOT_DIR, "setup.py"), encoding="utf-8") as f:
        setup_text = f.read()
    match = re.search(r'"mrcnn\s*=\s*([\w.]+):(\w+)"', setup_text)
    assert match, "no console script 'mrcnn' in setup.py"
    import importlib

    function = getattr(importlib.import_module(match.group(1)), match.group(2))
    assert callable(function)
    script = os.path.join(os.path.dirname(sys.executable), "mrcnn")
    if os.path.exists(script):   # installed (pip install -e . writes it)
        result = subprocess.run([script, "export", "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "--format" in result.stdout


# --- train -----------------------------------------------------------------------------

@pytest.mark.slow
def test_train_writes_checkpoints_and_class_names(workspace, trained):
    root, coco = workspace
    checkpoint, result = trained
    assert "Starting at epoch 0" in result.stdout
    # 6 images, --val-fraction 0.34: round(2.04) = 2 held out.
    assert "Validation: 2 of the images" in result.stdout
    assert "Training data: 4 images, 3 classes: square, circle, triangle" in result.stdout
    assert "Last checkpoint: " + os.path.relpath(checkpoint, root) in result.stdout
    classes = json.loads((root / "logs" / os.path.basename(os.path.dirname(checkpoint))
                          / "classes.json").read_text())
    assert classes == {"class_names": CLASS_NAMES, "category_ids": [None, 3, 7, 11]}
    import h5py

    with h5py.File(checkpoint, "r") as f:
        stored = json.loads(f.attrs["config"])
        assert int(f.attrs["epoch"]) == 1
    assert stored["NUM_CLASSES"] == 4          # from the data set: BG + 3 categories
    assert stored["STEPS_PER_EPOCH"] == 2 and stored["BACKBONE"] == "resnet18"


# --- detect ----------------------------------------------------------------------------

def _results_by_image(folder):
    results = json.loads((folder / "results.json").read_text())
    images = json.loads((folder / "images.json").read_text())
    return results, images


@pytest.mark.slow
def test_detect_writes_pictures_video_masks_and_coco_results(workspace, detected):
    from PIL import Image
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    root, _ = workspace
    folder, result = detected
    results, listing = _results_by_image(folder)
    images = listing["images"]
    # The 6 images in name order, then frames 0, 2, 4 of the video.
    assert [os.path.basename(i["file_name"]) for i in images] == \
        [f"shape_{i}.png" for i in range(6)] + ["clip.avi"] * 3
    assert [i.get("frame") for i in images] == [None] * 6 + [0, 2, 4]
    assert [i["id"] for i in images] == list(range(1, 10))
    assert listing["categories"] == [{"id": 3, "name": "square"}, {"id": 7, "name": "circle"},
                                     {"id": 11, "name": "triangle"}]
    for i in range(6):
        with Image.open(folder / f"shape_{i}.png") as picture:
            assert picture.size[0] >= 64 and picture.size[1] >= 64
    import cv2

    video = cv2.VideoCapture(str(folder / "clip.mp4"))
    frames = 0
    while True:
        ok, frame = video.read()
        if not ok:
            break
        assert frame.shape == (64, 64, 3)
        frames += 1
    assert frames == 3
    # Every detection: a known category, a score >= --min-confidence, an RLE of its
    # image's size whose pixels lie inside its [x, y, w, h] box.
    assert len(results) == len(os.listdir(folder / "masks"))
    assert f"{len(results)} detections in 9 images/frames" in result.stdout
    sizes = {i["id"]: (i["height"], i["width"]) for i in images}
    for detection in results:
        assert detection["category_id"] in (3, 7, 11)
        assert 0.0 <= detection["score"] <= 1.0
        mask = mask_utils.decode(detection["segmentation"])
        assert mask.shape == sizes[detection["image_id"]]
        x, y, w, h = detection["bbox"]
        rows, cols = np.nonzero(mask)
        if rows.size:
            assert rows.min() >= y and rows.max() < y + h
            assert cols.min() >= x and cols.max() < x + w
    # pycocotools reads the results against the listed images and categories.
    gt = COCO()
    gt.dataset = {"images": images, "categories": listing["categories"], "annotations": []}
    gt.createIndex()
    if results:
        loaded = gt.loadRes(results)
        assert len(loaded.getAnnIds()) == len(results)


@pytest.mark.slow
def test_detect_on_a_glob_with_video_frames_and_batches_of_one(workspace, trained, detected):
    root, _ = workspace
    checkpoint, _ = trained
    _ok(run_cli(root, "detect", "--config", "tinycfg:TinyConfig", "--weights", checkpoint,
                "--output", "frames_out", "--every-nth-frame", 3, "--video-output", "frames",
                "--no-pictures", "--batch-size", 1, "images/shape_[01].png", "clip.avi"))
    folder = root / "frames_out"
    # Frames 0 and 3 of 5; no pictures of the images, no video file.
    assert sorted(os.listdir(folder / "clip")) == ["frame_000000.png", "frame_000003.png"]
    assert sorted(os.listdir(folder)) == ["clip", "images.json", "results.json"]
    results, listing = _results_by_image(folder)
    assert [i.get("frame") for i in listing["images"]] == [None, None, 0, 3]
    # The images' detections are those of the run in batches of two.
    earlier, _ = _results_by_image(detected[0])
    for image_id in (1, 2):
        now = [r for r in results if r["image_id"] == image_id]
        before = [r for r in earlier if r["image_id"] == image_id]
        assert len(now) == len(before)
        np.testing.assert_allclose([r["score"] for r in now], [r["score"] for r in before],
                                   atol=1e-4)
        np.testing.assert_allclose([r["bbox"] for r in now], [r["bbox"] for r in before],
                                   atol=1)


@pytest.mark.slow
def test_train_resumes_the_last_checkpoint(workspace, trained):
    root, _ = workspace
    checkpoint, _ = trained
    result = _ok(run_cli(root, "train", "--coco", "ann.json", "--images", "images",
                         "--config", "tinycfg:TinyConfig", "--weights", "last", "--epochs", 1,
                         "--logs", "logs"))
    assert f"Loading weights {os.path.relpath(checkpoint, root)}" in result.stdout
    assert "Nothing to train: the checkpoint is at epoch 1 and --epochs is 1" in result.stdout


# --- evaluate --------------------------------------------------------------------------

def _reference_metrics(root, coco, detect_folder, ann_name="ann.json"):
    """COCO metrics and mAP@0.5 of detect's results.json on the ground truth ``coco``
    (written as root/ann_name), computed here with pycocotools and utils.compute_ap (not
    through mrcnn.coco_eval / mrcnn.evaluate)."""
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from mrcnn import utils
    from mrcnn.datasets import CocoDataset

    results, listing = _results_by_image(detect_folder)
    file_to_id = {image["file_name"]: image["id"] for image in coco["images"]}
    detect_to_coco = {image["id"]: file_to_id[os.path.basename(image["file_name"])]
                      for image in listing["images"] if image.get("frame") is None}
    mapped = [dict(r, image_id=detect_to_coco[r["image_id"]]) for r in results
              if r["image_id"] in detect_to_coco]
    gt = COCO()
    gt.dataset = json.loads(json.dumps(coco))
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    metrics = {}
    for iou_type in ("bbox", "segm"):
        drop = "bbox" if iou_type == "segm" else "segmentation"
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = COCOeval(gt, gt.loadRes([{k: v for k, v in r.items() if k != drop}
                                                 for r in mapped]), iou_type)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        metrics[iou_type] = [float(v) for v in evaluator.stats]

    dataset = CocoDataset(str(root / ann_name), str(root / "images"))
    to_class = {3: 1, 7: 2, 11: 3}
    aps = []
    for image_id in dataset.image_ids:
        gt_masks, gt_class_ids = dataset.load_mask(image_id)
        if not len(gt_class_ids):
            continue              # no AP without ground truth: left out of the mean
        coco_id = dataset.image_info[image_id]["id"]
        mine = sorted((r for r in mapped if r["image_id"] == coco_id),
                      key=lambda r: -r["score"])
        height, width = gt_masks.shape[:2]
        masks = (np.stack([mask_utils.decode(r["segmentation"]) for r in mine], axis=2)
                 .astype(bool) if mine else np.zeros([height, width, 0], bool))
        boxes = np.array([[r["bbox"][1], r["bbox"][0], r["bbox"][1] + r["bbox"][3],
                           r["bbox"][0] + r["bbox"][2]] for r in mine]).reshape(-1, 4)
        ap, _, _, _ = utils.compute_ap(
            utils.extract_bboxes(gt_masks), gt_class_ids, gt_masks, boxes,
            np.array([to_class[r["category_id"]] for r in mine], dtype=np.int32),
            np.array([r["score"] for r in mine]), masks, iou_threshold=0.5)
        aps.append(ap)
    return metrics, float(np.mean(aps))


@pytest.mark.slow
def test_evaluate_prints_and_writes_the_metrics_of_the_detections(workspace, trained,
                                                                   detected):
    from mrcnn.coco_eval import METRIC_NAMES

    root, coco = workspace
    checkpoint, _ = trained
    result = _ok(run_cli(root, "evaluate", "--config", "tinycfg:TinyConfig", "--weights",
                         checkpoint, "--coco", "ann.json", "--images", "images", "--json",
                         "metrics.json"))
    assert re.search(r"mAP@0\.5 = [0-9.]+   mAP@\[0\.5:0\.95\] = [0-9.]+   \(6 images\)",
                     result.stdout)
    assert "COCO metrics (segm):" in result.stdout
    report = json.loads((root / "metrics.json").read_text())
    assert report["images"] == 6
    # Instances per class counted from the file.
    counts = {}
    for annotation in coco["annotations"]:
        name = CLASS_NAMES[{3: 1, 7: 2, 11: 3}[annotation["category_id"]]]
        counts[name] = counts.get(name, 0) + 1
    assert report["instances"] == counts
    # The same weights, images and threshold as the detect run: the metrics computed here
    # from its results.json are evaluate's.
    reference, reference_map = _reference_metrics(root, coco, detected[0])
    results, _ = _results_by_image(detected[0])
    image_results = [r for r in results if r["image_id"] <= 6]
    assert sum(report["detections"].values()) == len(image_results)
    for iou_type in ("bbox", "segm"):
        got = [report["coco"][iou_type][name] for name in METRIC_NAMES]
        np.testing.assert_allclose(got, reference[iou_type], atol=1e-9)
    assert report["mAP@0.5"] == pytest.approx(reference_map, abs=1e-9)


def _detections_as_ground_truth(coco, detect_folder):
    """A COCO file whose instances are detect's detections on the six images (those with a
    non-empty mask), boxes and areas of the masks as COCO files have them."""
    from pycocotools import mask as mask_utils

    results, listing = _results_by_image(detect_folder)
    file_to_id = {image["file_name"]: image["id"] for image in coco["images"]}
    detect_to_coco = {image["id"]: file_to_id[os.path.basename(image["file_name"])]
                      for image in listing["images"] if image.get("frame") is None}
    annotations = []
    for r in results:
        if r["image_id"] in detect_to_coco and mask_utils.area(r["segmentation"]) > 0:
            annotations.append({
                "id": len(annotations) + 1, "image_id": detect_to_coco[r["image_id"]],
                "category_id": r["category_id"], "iscrowd": 0,
                "segmentation": r["segmentation"],
                "bbox": [float(v) for v in mask_utils.toBbox(r["segmentation"])],
                "area": float(mask_utils.area(r["segmentation"]))})
    return dict(coco, annotations=annotations), len(annotations)


@pytest.mark.slow
def test_evaluate_scores_detections_against_themselves(workspace, trained, detected):
    """Ground truth = the detections: every detection with a mask finds its own instance
    (mask IoU 1), so the mask APs are high, and the metrics are those computed here."""
    from mrcnn.coco_eval import METRIC_NAMES

    root, coco = workspace
    checkpoint, _ = trained
    truth, count = _detections_as_ground_truth(coco, detected[0])
    assert count > 0          # up to 8 per image with min confidence 0; 48 measured here
    (root / "self.json").write_text(json.dumps(truth))
    _ok(run_cli(root, "evaluate", "--config", "tinycfg:TinyConfig", "--weights", checkpoint,
                "--coco", "self.json", "--images", "images", "--json", "self_metrics.json"))
    report = json.loads((root / "self_metrics.json").read_text())
    reference, reference_map = _reference_metrics(root, truth, detected[0], "self.json")
    for iou_type in ("bbox", "segm"):
        got = [report["coco"][iou_type][name] for name in METRIC_NAMES]
        np.testing.assert_allclose(got, reference[iou_type], atol=1e-9)
    assert report["mAP@0.5"] == pytest.approx(reference_map, abs=1e-9)
    # Each instance is found by its own detection at mask IoU 1 (>= every threshold), and
    # there are at most 8 detections per image: the mask recall is 1 at 10 and 100
    # detections per image. Detections with empty masks are false positives and lower the
    # precision (mAP@0.5 measured 0.61), which this test leaves alone.
    assert report["coco"]["segm"]["AR10"] == report["coco"]["segm"]["AR100"] == 1.0


# --- export ----------------------------------------------------------------------------

@pytest.mark.slow
def test_export_saved_model_serves_the_detections_of_detect(workspace, trained, detected):
    import tensorflow as tf
    from PIL import Image

    root, _ = workspace
    checkpoint, _ = trained
    _ok(run_cli(root, "export", "--config", "tinycfg:TinyConfig", "--weights", checkpoint,
                "--format", "saved_model", "exported"))
    loaded = tf.saved_model.load(str(root / "exported"))
    serve = loaded.signatures["serving_default"]
    (input_name,) = serve.structured_input_signature[1]
    image = np.asarray(Image.open(root / "images" / "shape_0.png"))[None]
    outputs = serve(**{input_name: tf.constant(image, tf.uint8)})
    count = int(outputs["num_detections"][0])
    results, _ = _results_by_image(detected[0])
    mine = [r for r in results if r["image_id"] == 1]
    # A 64x64 image in a 64x64 square config is not resized: both mold it identically.
    assert count == len(mine)
    boxes = outputs["boxes"][0, :count].numpy()
    scores = outputs["scores"][0, :count].numpy()
    expected = np.array([[r["bbox"][1], r["bbox"][0], r["bbox"][1] + r["bbox"][3],
                          r["bbox"][0] + r["bbox"][2]] for r in mine]).reshape(-1, 4)
    order = np.argsort(-scores, kind="stable")
    np.testing.assert_allclose(boxes[order], expected, atol=1)
    np.testing.assert_allclose(scores[order], [r["score"] for r in mine], atol=1e-4)


# --- bad arguments ---------------------------------------------------------------------

@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    """tmp_path as the current directory, with tinycfg.py importable, images/a.png (8x8)
    and an empty folder."""
    from PIL import Image

    (tmp_path / "tinycfg.py").write_text(CONFIG_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MRCNN_DEBUG", raising=False)
    (tmp_path / "images").mkdir()
    (tmp_path / "empty").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    return tmp_path


def _fails(argv, capsys, *expected):
    """main(argv) exits with status 2 and one error line holding each of ``expected``."""
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, (text, err)
    return err


CFG = ["--config", "tinycfg:TinyConfig"]
VAL = ["--val-coco", "ann.json", "--val-images", "images"]
TRAIN = ["train", "--coco", "ann.json", "--images", "images", "--weights", "none",
         "--epochs", "1"]


def _write_coco(path, segmentation):
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "segmentation": segmentation}]}))


@pytest.mark.parametrize("argv, expected", [
    (TRAIN + ["--config", "no_such_module:X"], ["no_such_module", "cannot import"]),
    (TRAIN + ["--config", "tinycfg:Nope"], ["'Nope'", "TinyConfig"]),
    (TRAIN + CFG + ["--set", "STEPS_PER_EPOC=3"], ["STEPS_PER_EPOC", "STEPS_PER_EPOCH"]),
    (TRAIN + CFG + ["--set", "BATCH_SIZE=3"], ["BATCH_SIZE", "derived"]),
    (TRAIN + CFG + ["--set", "IMAGE_MAX_DIM=65"], ["IMAGE_MAX_DIM=65", "64"]),
    (TRAIN + CFG + ["--set", "NOEQUALS"], ["NAME=VALUE"]),
    (["train", "--coco", "missing.json", "--weights", "none", "--epochs", "1"] + CFG,
     ["missing.json", "does not exist"]),
    (["train", "--labelme", "no_dir", "--weights", "none", "--epochs", "1"] + CFG,
     ["no_dir", "does not exist"]),
    (["train", "--weights", "none", "--epochs", "1"] + CFG, ["no training data"]),
    (["detect", "--weights", "nothing.h5", "--output", "out", "images"] + CFG,
     ["nothing.h5", "does not exist"]),
    (["detect", "--weights", "none", "--output", "out", "images"] + CFG,
     ["--weights none", "trained weights"]),
    (["detect", "--weights", "w.h5", "--output", "out", "no_such.png"] + CFG,
     ["no_such.png", "no such file"]),
    (["detect", "--weights", "w.h5", "--output", "out", "empty"] + CFG,
     ["empty", "no image or video"]),
    (["evaluate", "--weights", "w.h5"] + CFG, ["no data to evaluate"]),
    (["evaluate", "--weights", "w.h5", "--limit", "0"] + CFG, ["--limit 0"]),
    (["detect", "--weights", "w.h5", "--output", "out", "--every-nth-frame", "0",
      "images"] + CFG, ["--every-nth-frame 0"]),
    (["detect", "--weights", "w.h5", "--output", "out", "--min-confidence", "1.5",
      "images"] + CFG, ["--min-confidence 1.5"]),
    (["export", "--weights", "w.h5", "--format", "saved_model", "--quantization", "int8",
      "out"] + CFG, ["--quantization", "tflite"]),
])
def test_bad_arguments_name_what_is_wrong(argv, expected, config_dir, capsys):
    _fails(argv, capsys, *expected)


def test_config_from_a_module_a_file_or_the_only_class_with_settings(config_dir):
    import mrcnn.cli.settings as settings
    from mrcnn.cli import build_parser

    def load(*options):
        args = build_parser().parse_args(["export", "--weights", "w.h5", "--format",
                                          "saved_model", "out"] + list(options))
        return settings.load_config(args)

    for spec in ("tinycfg:TinyConfig", "tinycfg",
                 str(config_dir / "tinycfg.py") + ":TinyConfig", "./tinycfg.py"):
        config, fixed = load("--config", spec)
        assert type(config).__name__ == "TinyConfig" and config.BACKBONE == "resnet18", spec
        assert not fixed                       # TinyConfig leaves NUM_CLASSES to the data
    config, fixed = load("--config", "tinycfg", "--set", "NAME=my_run", "--set",
                         "RPN_ANCHOR_SCALES=(4, 8, 16, 32, 64)", "--set",
                         "MEAN_PIXEL=[1, 2, 3]", "--set", "NUM_CLASSES=5")
    assert config.NAME == "my_run" and config.RPN_ANCHOR_SCALES == (4, 8, 16, 32, 64)
    assert isinstance(config.MEAN_PIXEL, np.ndarray) and config.MEAN_PIXEL.tolist() == [1, 2, 3]
    assert fixed and config.NUM_CLASSES == 5
    import tinycfg

    assert tinycfg.TinyConfig.NAME == "tiny"    # the class itself is left unchanged


def test_bad_annotations_name_the_file_and_the_annotation(config_dir, capsys):
    _write_coco(config_dir / "ann.json", [[1, 1, 5, 1]])      # a polygon of 2 points
    _fails(TRAIN + CFG, capsys, "ann.json", "annotation 5", "polygon")


def test_train_checks_the_split_and_the_class_count(config_dir, capsys):
    _write_coco(config_dir / "ann.json", [[1, 1, 6, 1, 6, 6]])
    _fails(TRAIN + CFG + ["--val-fraction", "0.5"], capsys, "--val-fraction 0.5",
           "1 image")
    _fails(TRAIN + CFG + VAL + ["--val-fraction", "0.5"], capsys, "not both")
    _fails(TRAIN + CFG + ["--via", "ann.json"], capsys, "--coco and --via")
    _fails(TRAIN + CFG + VAL + ["--set", "NUM_CLASSES=3"], capsys, "NUM_CLASSES is 3",
           "2 classes", "'BG', 'thing'")


def test_missing_weights_name_the_checkpoint_folder_file_or_url(config_dir, capsys,
                                                                 monkeypatch):
    from mrcnn import utils

    _write_coco(config_dir / "ann.json", [[1, 1, 6, 1, 6, 6]])
    detect = ["detect", "--output", "out", "images/a.png"] + CFG
    _fails(detect + ["--weights", "last", "--logs", "no_logs"], capsys,
           "--weights last", "'tiny'", str(config_dir / "no_logs"))
    # Offline: the COCO weights cannot be downloaded (a port nobody listens on).
    url = "http://127.0.0.1:9/mask_rcnn_coco.h5"
    monkeypatch.setattr(utils, "COCO_MODEL_URL", url)
    monkeypatch.setenv(COCO_WEIGHTS_ENV, str(config_dir / "mask_rcnn_coco.h5"))
    _fails(detect + ["--weights", "coco"], capsys, url, str(config_dir / "mask_rcnn_coco.h5"))
    assert not os.path.exists(config_dir / "mask_rcnn_coco.h5")
    _fails(TRAIN + CFG + VAL + ["--weights", "imagenet"], capsys, "--weights imagenet",
           "resnet18")


def test_export_names_a_missing_exporter_or_package(config_dir, capsys, monkeypatch):
    import mrcnn.export
    from mrcnn.cli import common

    monkeypatch.setattr(common, "inference_model", lambda *args, **kwargs: object())
    (config_dir / "w.h5").write_bytes(b"")
    export = ["export", "--weights", "w.h5", "out.tflite"] + CFG
    monkeypatch.delattr(mrcnn.export, "export_tflite", raising=False)
    _fails(export + ["--format", "tflite"], capsys, "--format tflite", "export_tflite()")

    def needs_tf2onnx(model, path):
        raise ModuleNotFoundError("No module named 'tf2onnx'", name="tf2onnx")

    monkeypatch.setattr(mrcnn.export, "export_onnx", needs_tf2onnx, raising=False)
    _fails(export + ["--format", "onnx"], capsys, "--format onnx", "'tf2onnx'",
           "pip install")


def test_errors_exit_non_zero_in_a_subprocess(tmp_path):
    result = run_cli(tmp_path, "train", "--coco", "missing.json", "--weights", "none",
                     "--epochs", "1")
    assert result.returncode == 2
    assert "mrcnn train: error: --coco missing.json: the file does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    usage = run_cli(tmp_path, "detect", "--output", "out", "x.png")
    assert usage.returncode == 2 and "--weights" in usage.stderr


# --- the four annotation formats -----------------------------------------------------------

# Two 24x32 images, each with a "cat" and a "dog" rectangle (x1, y1, x2, y2): with COCO's
# pixel convention a rectangle covers rows y1..y2-1 and columns x1..x2-1.
RECTANGLES = {"a.png": [("cat", (2, 3, 10, 9)), ("dog", (14, 5, 30, 20))],
              "b.png": [("dog", (0, 0, 8, 24)), ("cat", (20, 10, 31, 13))]}


def _rectangle_mask(box, height=24, width=32):
    x1, y1, x2, y2 = box
    mask = np.zeros((height, width), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


def _write_formats(root):
    """The rectangles as COCO, VIA 2.x, LabelMe and mask-folder annotations."""
    from PIL import Image

    images = root / "imgs"
    images.mkdir()
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cat"},
                                                             {"id": 2, "name": "dog"}]}
    via, labelme = {}, root / "labelme"
    labelme.mkdir()
    for index, (name, rectangles) in enumerate(RECTANGLES.items()):
        Image.fromarray(np.full((24, 32, 3), 40 * index, np.uint8)).save(images / name)
        Image.fromarray(np.full((24, 32, 3), 40 * index, np.uint8)).save(labelme / name)
        coco["images"].append({"id": index + 1, "file_name": name, "height": 24, "width": 32})
        regions, shapes = [], []
        for k, (label, (x1, y1, x2, y2)) in enumerate(rectangles):
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": index + 1, "iscrowd": 0,
                "category_id": 1 if label == "cat" else 2,
                "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]]})
            regions.append({"shape_attributes": {"name": "rect", "x": x1, "y": y1,
                                                 "width": x2 - x1, "height": y2 - y1},
                            "region_attributes": {"kind": label}})
            shapes.append({"label": label, "points": [[x1, y1], [x2, y2]], "group_id": None,
                           "description": "", "shape_type": "rectangle", "flags": {},
                           "mask": None})
            folder = root / "masks" / os.path.splitext(name)[0]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_rectangle_mask((x1, y1, x2, y2)).astype(np.uint8) * 255).save(
                folder / f"{label}_{k}.png")
        via[f"{name}1"] = {"filename": name, "size": 1, "regions": regions,
                           "file_attributes": {}}
        (labelme / f"{os.path.splitext(name)[0]}.json").write_text(json.dumps({
            "version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": name,
            "imageData": None, "imageHeight": 24, "imageWidth": 32}))
    (root / "coco.json").write_text(json.dumps(coco))
    (root / "via.json").write_text(json.dumps(via))


@pytest.mark.parametrize("options", [
    ["--coco", "coco.json", "--images", "imgs"],
    ["--via", "via.json", "--images", "imgs", "--class-attribute", "kind"],
    ["--labelme", "labelme"],
    ["--masks", "imgs", "masks"],
])
def test_each_annotation_format_loads_through_the_data_options(options, tmp_path,
                                                               monkeypatch):
    from mrcnn.cli import build_parser, data

    _write_formats(tmp_path)
    monkeypatch.chdir(tmp_path)
    for names in (None, "dog,cat"):
        argv = ["train"] + options + ["--weights", "none", "--epochs", "1"]
        args = build_parser().parse_args(argv + (["--class-names", names] if names else []))
        dataset = data.load_dataset(args)
        if names:
            assert dataset.class_names == ["BG", "dog", "cat"]
        assert sorted(dataset.class_names) == ["BG", "cat", "dog"]
        assert data.load_dataset(args, prefix="val-") is None
        for image_id in dataset.image_ids:
            name = os.path.basename(dataset.image_info[image_id]["path"])
            masks, class_ids = dataset.load_mask(image_id)
            got = sorted((dataset.class_names[c], masks[..., i].tobytes())
                         for i, c in enumerate(class_ids))
            expected = sorted((label, _rectangle_mask(box).tobytes())
                              for label, box in RECTANGLES[name])
            assert got == expected, name


# --- keypoints of a COCO file ----------------------------------------------------------------

KEYPOINT_NAMES = ["left_tip", "right_tip", "top"]


def _write_keypoint_coco(path, names=KEYPOINT_NAMES):
    """ann.json-like file: one 8x8 image, one "thing" with 3 keypoints (2 labelled)."""
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
        "categories": [{"id": 1, "name": "thing", "keypoints": list(names),
                        "skeleton": [[1, 3], [2, 3]]}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "segmentation": [[1, 1, 6, 1, 6, 6]],
                         "keypoints": [2, 2, 2, 5, 2, 2, 0, 0, 0], "num_keypoints": 2}]}))


def _configured(argv):
    from mrcnn.cli import build_parser, settings, train

    args = build_parser().parse_args(argv)
    config, fixed = settings.load_config(args)
    dataset, _ = train._datasets(args)
    return train._configure(args, config, fixed, dataset)


def test_train_takes_the_keypoints_of_a_coco_file_unless_the_config_sets_them(config_dir,
                                                                             capsys):
    _write_keypoint_coco(config_dir / "ann.json")
    config, from_data = _configured(TRAIN + CFG + VAL)
    assert config.NUM_KEYPOINTS == 3 and list(config.KEYPOINT_NAMES) == KEYPOINT_NAMES
    assert [tuple(p) for p in config.KEYPOINT_FLIP_MAP] == [("left_tip", "right_tip")]
    assert from_data == ["NUM_KEYPOINTS=3", "KEYPOINT_NAMES=('left_tip', 'right_tip', 'top')"]
    out = capsys.readouterr().out
    assert "NUM_KEYPOINTS = 3 from the data set (left_tip, right_tip, top)" in out, out
    assert "--set NUM_KEYPOINTS=0" in out
    # The config's own flip map stays; NUM_KEYPOINTS=0 trains without keypoints.
    config, _ = _configured(TRAIN + CFG + VAL + ["--set", "KEYPOINT_FLIP_MAP=()",
                                                 "--set", "KEYPOINT_NAMES=None"])
    assert config.NUM_KEYPOINTS == 3
    config, from_data = _configured(TRAIN + CFG + VAL + ["--set", "NUM_KEYPOINTS=0"])
    assert config.NUM_KEYPOINTS == 0 and from_data == []
    assert "training without them" in capsys.readouterr().out
    config, from_data = _configured(TRAIN + CFG + VAL + ["--set", "NUM_KEYPOINTS=3"])
    assert config.NUM_KEYPOINTS == 3 and config.KEYPOINT_NAMES is None and from_data == []


def test_train_names_keypoints_that_do_not_fit_the_config(config_dir, capsys):
    _write_keypoint_coco(config_dir / "ann.json")
    _fails(TRAIN + CFG + VAL + ["--set", "NUM_KEYPOINTS=2"], capsys, "NUM_KEYPOINTS is 2",
           "3 keypoints", "left_tip")
    _fails(TRAIN + CFG + VAL + ["--set", "NUM_KEYPOINTS=3", "--set",
                                "KEYPOINT_NAMES=('top', 'left_tip', 'right_tip')"], capsys,
           "KEYPOINT_NAMES", "same order")
    _write_keypoint_coco(config_dir / "val.json", names=["a", "b", "c"])
    _fails(TRAIN + CFG + ["--val-coco", "val.json", "--val-images", "images"], capsys,
           "validation keypoints ['a', 'b', 'c']", "left_tip")
    _write_coco(config_dir / "ann.json", [[1, 1, 6, 1, 6, 6]])      # no keypoints
    _fails(TRAIN + CFG + VAL + ["--set", "NUM_KEYPOINTS=3"], capsys, "NUM_KEYPOINTS is 3",
           "no keypoints")


@pytest.mark.slow
def test_train_on_a_keypoint_coco_file_trains_the_keypoint_head(tmp_path):
    """One epoch of 2 steps on KeypointShapes images written as COCO keypoints: NUM_KEYPOINTS
    comes from the file, the keypoint loss is logged and the checkpoint's config has it."""
    import h5py
    from PIL import Image

    from mrcnn.datasets import dataset_to_coco
    from mrcnn.keypoint_shapes import KeypointShapesDataset

    (tmp_path / "images").mkdir()
    shapes = KeypointShapesDataset()
    shapes.load_triangles(4, 64, 64, seed=0)
    shapes.prepare()
    for image_id in shapes.image_ids:
        path = tmp_path / "images" / f"t_{image_id}.png"
        Image.fromarray(shapes.load_image(image_id)).save(path)
        shapes.image_info[image_id]["path"] = str(path)
    coco = dataset_to_coco(shapes, image_dir=str(tmp_path / "images"),
                           keypoint_names=["top", "left_base", "right_base"])
    (tmp_path / "kp.json").write_text(json.dumps(coco))
    (tmp_path / "tinycfg.py").write_text(CONFIG_MODULE)
    result = _ok(run_cli(tmp_path, "train", "--coco", "kp.json", "--images", "images",
                         "--val-fraction", "0.25", "--config", "tinycfg:TinyConfig",
                         "--set", "KEYPOINT_HEAD_CONV_SIZE=16", "--set",
                         "KEYPOINT_HEAD_CONV_COUNT=2", "--weights", "none", "--layers",
                         "all", "--epochs", 1, "--logs", "logs"))
    assert "NUM_KEYPOINTS = 3 from the data set (top, left_base, right_base); " \
           "KEYPOINT_FLIP_MAP from the left_/right_ names: [('left_base', 'right_base')]" \
           in result.stdout, result.stdout[-3000:]
    losses = [float(v) for v in re.findall(r"(?<!val_)mrcnn_keypoint_loss: ([-+.e\w]+)",
                                            result.stdout)]
    assert losses and all(np.isfinite(v) and v > 0 for v in losses), result.stdout[-3000:]
    hint = [line for line in result.stdout.splitlines() if line.startswith("Detect with:")]
    assert len(hint) == 1 and "KEYPOINT" not in hint[0], hint    # read from the checkpoint
    assert "are stored in the checkpoint" in result.stdout
    checkpoints = glob.glob(str(tmp_path / "logs" / "tiny*" / "mask_rcnn_tiny_0001.h5"))
    assert len(checkpoints) == 1, result.stdout[-2000:]
    with h5py.File(checkpoints[0], "r") as f:
        stored = json.loads(f.attrs["config"])
    assert stored["NUM_KEYPOINTS"] == 3
    assert stored["KEYPOINT_NAMES"] == ["top", "left_base", "right_base"]
    with open(os.path.join(os.path.dirname(checkpoints[0]), "classes.json")) as f:
        listed = json.load(f)
    assert listed["keypoint_names"] == ["top", "left_base", "right_base"]
    # detect without any keypoint --set (nor the head's sizes): all from the checkpoint.
    detected = _ok(run_cli(tmp_path, "detect", "--config", "tinycfg:TinyConfig",
                           "--weights", checkpoints[0], "--output", "det", "images"))
    assert "NUM_KEYPOINTS = 3 (top, left_base, right_base)" in detected.stdout
    with open(tmp_path / "det" / "results.json") as f:
        results = json.load(f)
    assert results and all(len(r["keypoints"]) == 9 for r in results)

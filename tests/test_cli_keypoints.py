"""The ``mrcnn`` command line with keypoint models, in process (``mrcnn.cli.main``).

A tiny untrained keypoint model (3 keypoints, a head of two 8-channel convs on 4x4
pooled ROIs) is saved with its config; the CLI's config module does not name keypoints,
so detect and evaluate must rebuild the head from the checkpoint's stored config. The
data: three KeypointShapes images (triangles with apex / left / right corner keypoints)
written as a COCO keypoint file. Its class logits make every ROI class 1, so that it
detects something; what else it detects is not asserted: detect
is compared with the saved model's own detect(), and evaluate's OKS AP with pycocotools
run here on the COCO file and hand-made detections. A keypoint-only model
(KEYPOINT_WITH_MASKS False, no mask head) goes through detect and evaluate too: boxes and
keypoints without "segmentation", box AP and keypoint AP without the mask figures.
"""
import json
import os

import h5py
import numpy as np
import pytest

from mrcnn.cli import build_parser, common, main, media
from mrcnn.keypoint_shapes import FLIP_MAP, KEYPOINT_NAMES, SKELETON, KeypointShapesDataset

from test_cli import CONFIG_MODULE

IMAGES = 3
SIZE = 64


def _keypoint_config(config_class):
    class KeypointConfig(config_class):
        NAME = "tiny_kp"
        NUM_CLASSES = 2
        NUM_KEYPOINTS = 3
        KEYPOINT_NAMES = KEYPOINT_NAMES
        KEYPOINT_FLIP_MAP = FLIP_MAP
        KEYPOINT_POOL_SIZE = 4
        KEYPOINT_MASK_SHAPE = [16, 16]
        KEYPOINT_HEAD_CONV_SIZE = 8
        KEYPOINT_HEAD_CONV_COUNT = 2
    return KeypointConfig()


def _plain_config(config_class):
    class PlainConfig(config_class):
        NAME = "tiny_plain"
        NUM_CLASSES = 2
    return PlainConfig()


def _always_foreground(model):
    """Make every ROI of an untrained model class 1 (zero kernel, bias (-10, 10) in the
    class logits), so that it detects something in every image."""
    layer = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.array([-10.0, 10.0], bias.dtype)])
    return model


def _strip_keypoint_settings(path):
    """Make ``path`` look like a checkpoint written before the keypoint head existed."""
    with h5py.File(path, "r+") as f:
        stored = json.loads(f.attrs["config"])
        f.attrs["config"] = json.dumps({k: v for k, v in stored.items()
                                        if "KEYPOINT" not in k})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """images/t_<i>.png, kp.json (COCO keypoints), kpcfg.py, kp/kp.h5 (keypoint model, its
    classes.json beside it), old/old.h5 (no keypoints, no keypoint settings stored) and
    the keypoint model itself."""
    import keras
    from PIL import Image

    import mrcnn.model as modellib
    from mrcnn.cli import classes, settings
    from mrcnn.datasets import CocoDataset, dataset_to_coco

    root = tmp_path_factory.mktemp("cli_kp")
    (root / "images").mkdir()
    shapes = KeypointShapesDataset()
    shapes.load_triangles(IMAGES, SIZE, SIZE, seed=0)
    shapes.prepare()
    for image_id in shapes.image_ids:
        path = root / "images" / f"t_{image_id}.png"
        Image.fromarray(shapes.load_image(image_id)).save(path)
        shapes.image_info[image_id]["path"] = str(path)
    coco = dataset_to_coco(shapes, image_dir=str(root / "images"),
                           keypoint_names=KEYPOINT_NAMES, keypoint_skeleton=SKELETON)
    for image in coco["images"]:      # COCO ids other than the internal 0, 1, 2
        image["id"] += 100
    for annotation in coco["annotations"]:
        annotation["image_id"] += 100
    (root / "kp.json").write_text(json.dumps(coco))
    (root / "kpcfg.py").write_text(CONFIG_MODULE)
    config_class = settings.config_class(f"{root / 'kpcfg.py'}:TinyConfig")

    keras.utils.set_random_seed(0)
    (root / "kp").mkdir()
    model = _always_foreground(
        modellib.MaskRCNN("inference", _keypoint_config(config_class), str(root / "logs")))
    model.save_weights(str(root / "kp" / "kp.h5"))
    classes.write_classes(str(root / "kp"), CocoDataset(str(root / "kp.json"),
                                                        str(root / "images")))
    (root / "old").mkdir()
    plain = _always_foreground(
        modellib.MaskRCNN("inference", _plain_config(config_class), str(root / "logs")))
    plain.save_weights(str(root / "old" / "old.h5"))
    _strip_keypoint_settings(str(root / "old" / "old.h5"))
    return {"root": root, "coco": coco, "model": model, "shapes": shapes,
            "config": [f"--config", f"{root / 'kpcfg.py'}:TinyConfig", "--logs",
                       str(root / "logs")]}


def _run(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 0, out[-3000:] + err[-3000:]
    return out


def _detect(workspace, capsys, weights, output, *extra):
    root = workspace["root"]
    out = _run(["detect", *workspace["config"], "--weights", root / weights, "--output",
                root / output, *extra, root / "images"], capsys)
    with open(root / output / "results.json") as f:
        results = json.load(f)
    with open(root / output / "images.json") as f:
        images = json.load(f)["images"]
    return out, results, images


# --- the stored keypoint settings ----------------------------------------------------------

def _stored_h5(path, stored):
    with h5py.File(path, "w") as f:
        f.attrs["config"] = json.dumps(stored)
    return str(path)


STORED = {"NUM_CLASSES": 2, "NUM_KEYPOINTS": 3, "KEYPOINT_NAMES": ["a", "b", "c"],
          "KEYPOINT_FLIP_MAP": [["a", "b"]], "KEYPOINT_POOL_SIZE": 4,
          "KEYPOINT_MASK_SHAPE": [16, 16], "KEYPOINT_HEAD_CONV_SIZE": 8,
          "KEYPOINT_HEAD_CONV_COUNT": 2, "KEYPOINT_WITH_MASKS": True}


def _config_after(tmp_path, stored, *extra, module=CONFIG_MODULE):
    from mrcnn.cli import settings

    (tmp_path / "cfg_a.py").write_text(module)
    args = build_parser().parse_args(["export", "--format", "saved_model", "out",
                                      "--weights", "w.h5", "--config",
                                      f"{tmp_path / 'cfg_a.py'}:TinyConfig", *extra])
    config, _ = settings.load_config(args)
    taken = common.stored_keypoint_settings(args, config,
                                            _stored_h5(tmp_path / "w.h5", stored))
    return config, taken


def test_keypoint_settings_come_from_the_checkpoint_unless_the_config_gives_them(tmp_path,
                                                                               capsys):
    config, taken = _config_after(tmp_path, STORED)
    assert set(taken) == set(common.KEYPOINT_SETTINGS)
    assert config.NUM_KEYPOINTS == 3 and config.KEYPOINT_NAMES == ("a", "b", "c")
    assert config.KEYPOINT_FLIP_MAP == (("a", "b"),)
    assert (config.KEYPOINT_POOL_SIZE, config.KEYPOINT_MASK_SHAPE,
            config.KEYPOINT_HEAD_CONV_SIZE, config.KEYPOINT_HEAD_CONV_COUNT) == (4, [16, 16],
                                                                                8, 2)
    config.validate("inference")
    assert "NUM_KEYPOINTS = 3 (a, b, c) and the keypoint head's settings from" in \
        capsys.readouterr().out
    # --set wins; names of another keypoint count are not taken.
    config, taken = _config_after(tmp_path, STORED, "--set", "NUM_KEYPOINTS=4", "--set",
                                  "KEYPOINT_HEAD_CONV_SIZE=16")
    assert config.NUM_KEYPOINTS == 4 and config.KEYPOINT_NAMES is None
    assert config.KEYPOINT_HEAD_CONV_SIZE == 16 and "KEYPOINT_NAMES" not in taken
    # The old hint's --set options give the same config as the checkpoint alone.
    config, _ = _config_after(tmp_path, STORED, "--set", "NUM_KEYPOINTS=3", "--set",
                              "KEYPOINT_NAMES=('a', 'b', 'c')")
    assert config.KEYPOINT_NAMES == ("a", "b", "c") and config.KEYPOINT_HEAD_CONV_COUNT == 2
    # The config class's own attributes stay.
    module = CONFIG_MODULE + "    KEYPOINT_HEAD_CONV_COUNT = 3\n"
    config, taken = _config_after(tmp_path, STORED, module=module)
    assert config.KEYPOINT_HEAD_CONV_COUNT == 3 and config.NUM_KEYPOINTS == 3
    # A checkpoint without keypoint settings (or without a config) changes nothing.
    config, taken = _config_after(tmp_path, {"NUM_CLASSES": 2})
    assert taken == {} and config.NUM_KEYPOINTS == 0
    capsys.readouterr()


def test_draw_detections_puts_keypoints_and_skeleton_in_the_class_colour():
    image = np.zeros((20, 20, 3), np.uint8)
    masks = np.zeros((20, 20, 1), bool)
    result = {"rois": np.array([[0, 0, 3, 3]]), "class_ids": np.array([1]),
              "scores": np.array([0.9], np.float32), "masks": masks,
              "keypoints": np.array([[[15, 10, 0.5], [15, 17, 0.2]]], np.float32)}
    colors = [(0, 0, 0), (0.0, 1.0, 0.0)]
    drawn = media.draw_detections(image, result, ["BG", "x"], colors, skeleton=[(0, 1)])
    assert tuple(drawn[10, 15]) == (0, 255, 0) and tuple(drawn[17, 15]) == (0, 255, 0)
    # On the (antialiased) line between them: green 232 measured.
    assert drawn[13, 15, 1] > 200 and not drawn[13, 15, [0, 2]].any()
    assert not drawn[10, 5].any()
    without = dict(result)
    without.pop("keypoints")
    assert not media.draw_detections(image, without, ["BG", "x"], colors)[10, 15].any()


# --- detect -------------------------------------------------------------------------------

def test_detect_writes_and_draws_the_keypoints_of_a_keypoint_checkpoint(workspace, capsys,
                                                                       monkeypatch):
    from mrcnn import visualize

    drawn = []
    original = visualize.display_instances

    def spy(*args, **kwargs):
        drawn.append((kwargs.get("keypoints"), kwargs.get("skeleton")))
        return original(*args, **kwargs)

    monkeypatch.setattr(visualize, "display_instances", spy)
    out, results, images = _detect(workspace, capsys, "kp/kp.h5", "det")
    assert "NUM_KEYPOINTS = 3 (apex, left_corner, right_corner)" in out, out[-2000:]
    assert all(len(r["keypoints"]) == 3 * 3 for r in results)
    # The same detections as the saved model's own detect(), keypoints included.
    model, root = workspace["model"], workspace["root"]
    for record in images:
        expected = model.detect([media.read_image(record["file_name"])])[0]
        mine = [r for r in results if r["image_id"] == record["id"]]
        assert len(mine) == len(expected["class_ids"])
        assert mine, "every ROI is class 1 (_always_foreground)"
        np.testing.assert_allclose([r["keypoints"] for r in mine],
                                   expected["keypoints"].reshape(len(mine), -1), atol=1e-3)
        np.testing.assert_allclose([r["score"] for r in mine], expected["scores"], atol=1e-5)
    assert sorted(os.listdir(root / "det")) == ["images.json", "results.json"] + [
        f"t_{i}.png" for i in range(IMAGES)]
    pictures = [(k, s) for k, s in drawn if k is not None]
    assert len(pictures) == len({r["image_id"] for r in results})
    assert all(np.shape(k)[1:] == (3, 3) for k, _ in pictures)
    assert all(s == [tuple(p) for p in SKELETON] for _, s in pictures)   # classes.json's
    with open(root / "kp" / "classes.json") as f:
        stored = json.load(f)
    assert stored["keypoint_names"] == list(KEYPOINT_NAMES)


def test_detect_with_a_checkpoint_without_keypoint_settings_works_as_before(workspace,
                                                                          capsys):
    out, results, _ = _detect(workspace, capsys, "old/old.h5", "det_old", "--no-pictures")
    assert "NUM_KEYPOINTS" not in out
    assert results and all("keypoints" not in r for r in results)
    assert all(set(r) == {"image_id", "category_id", "bbox", "score", "segmentation"}
               for r in results)


# --- evaluate -----------------------------------------------------------------------------

# (image, instance, keypoint, dx px): ground-truth keypoints moved in the fake detections.
MOVES = ((0, 0, 0, 3.0), (1, 0, 2, 6.0))


def _fake_detections(shapes):
    """detect() results built from the ground truth, keyed by image bytes: scores 1 - 0.1 k
    by instance, a moved keypoint's instance scoring lowest."""
    from mrcnn import utils

    fakes = {}
    for image_id in shapes.image_ids:
        masks, class_ids = shapes.load_mask(image_id)
        points = shapes.load_keypoints(image_id).astype(np.float32).copy()
        scores = 1.0 - 0.1 * np.arange(len(class_ids), dtype=np.float32)
        for image, row, k, dx in MOVES:
            if image == image_id:
                points[row, k, 0] += dx
                scores[row] = 0.05
        points[..., 2] = 1.0
        fakes[shapes.load_image(image_id).tobytes()] = {
            "rois": utils.extract_bboxes(masks), "class_ids": class_ids.astype(np.int32),
            "scores": scores, "masks": masks.astype(bool), "keypoints": points}
    return fakes


def _reference_ap(workspace, fakes, sigma):
    """pycocotools' keypoint AP on the COCO file itself, the fake detections given with
    the file's image ids."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    root, shapes = workspace["root"], workspace["shapes"]
    results = []
    for image_id in shapes.image_ids:
        fake = fakes[shapes.load_image(image_id).tobytes()]
        for i in range(len(fake["class_ids"])):
            results.append({"image_id": int(image_id) + 100, "category_id": 1,
                            "keypoints": fake["keypoints"][i].reshape(-1).tolist(),
                            "score": float(fake["scores"][i])})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "kp.json"))
        evaluator = COCOeval(gt, gt.loadRes(results), "keypoints")
        evaluator.params.kpt_oks_sigmas = np.array([sigma] * 3)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def _evaluate_with(workspace, fakes, weights, metrics_path, capsys, monkeypatch):
    """`mrcnn evaluate` on kp.json with detect() replaced by `fakes` (keyed by image
    bytes); returns what it printed."""
    import mrcnn.model as modellib

    monkeypatch.setattr(modellib.MaskRCNN, "detect",
                        lambda self, images, verbose=0: [fakes[np.asarray(i).tobytes()]
                                                         for i in images])
    root = workspace["root"]
    return _run(["evaluate", "--coco", root / "kp.json", "--images", root / "images",
                 *workspace["config"], "--weights", weights, "--keypoint-sigmas", "0.1",
                 "--json", metrics_path], capsys)


def test_evaluate_reports_keypoint_ap_as_pycocotools_on_the_file(workspace, capsys,
                                                                 monkeypatch):
    fakes = _fake_detections(workspace["shapes"])
    metrics_path = workspace["root"] / "metrics.json"
    out = _evaluate_with(workspace, fakes, workspace["root"] / "kp" / "kp.h5", metrics_path,
                         capsys, monkeypatch)
    assert "COCO metrics (keypoints, OKS sigmas [0.1, 0.1, 0.1]):" in out, out[-3000:]
    with open(metrics_path) as f:
        report = json.load(f)
    from mrcnn.keypoint_eval import KEYPOINT_METRIC_NAMES

    assert set(report["coco"]) == {"bbox", "segm", "keypoints"}
    assert tuple(report["coco"]["keypoints"]) == KEYPOINT_METRIC_NAMES
    reference = _reference_ap(workspace, fakes, 0.1)
    got = [report["coco"]["keypoints"][n] for n in ("AP", "AP50", "AP75")]
    np.testing.assert_allclose(got, reference[:3], atol=1e-9)
    assert 0.5 < got[0] < 1.0, got    # 0.925 measured: two moved keypoints cost AP at high OKS
    assert f"Keypoint AP = {got[0]:.3f}   AP50 = {got[1]:.3f}   AP75 = {got[2]:.3f}" in out
    # The boxes and masks are the ground truth's: AP 1.
    assert report["coco"]["bbox"]["AP"] == pytest.approx(1.0)
    assert report["coco"]["segm"]["AP"] == pytest.approx(1.0)


def test_evaluate_needs_sigmas_for_keypoints_other_than_cocos_17(workspace, capsys,
                                                                 monkeypatch):
    import mrcnn.model as modellib

    fakes = _fake_detections(workspace["shapes"])
    monkeypatch.setattr(modellib.MaskRCNN, "detect",
                        lambda self, images, verbose=0: [fakes[np.asarray(i).tobytes()]
                                                         for i in images])
    root = workspace["root"]
    base = ["evaluate", "--coco", root / "kp.json", "--images", root / "images",
            *workspace["config"], "--weights", root / "kp" / "kp.h5", "--limit", "1"]
    out = _run(base + ["--json", root / "m2.json"], capsys)
    assert "Keypoint metrics left out: OKS needs one sigma per keypoint" in out
    assert "--keypoint-sigmas" in out
    with open(root / "m2.json") as f:
        assert set(json.load(f)["coco"]) == {"bbox", "segm"}
    status = main([str(a) for a in base + ["--keypoint-sigmas", "0.1,0.1"]])
    err = capsys.readouterr().err
    assert status == 2 and "--keypoint-sigmas 0.1,0.1" in err and "3" in err, err


# --- keypoint-only models (KEYPOINT_WITH_MASKS False) -------------------------------------

@pytest.fixture(scope="module")
def keypoint_only(workspace):
    """kponly/kponly.h5: a keypoint-only model (no mask head), its classes.json beside
    it, and the model itself."""
    import keras

    import mrcnn.model as modellib
    from mrcnn.cli import classes, settings
    from mrcnn.datasets import CocoDataset

    root = workspace["root"]
    config_class = settings.config_class(f"{root / 'kpcfg.py'}:TinyConfig")
    config = _keypoint_config(config_class)
    config.KEYPOINT_WITH_MASKS = False
    keras.utils.set_random_seed(0)
    model = _always_foreground(modellib.MaskRCNN("inference", config, str(root / "logs")))
    (root / "kponly").mkdir()
    model.save_weights(str(root / "kponly" / "kponly.h5"))
    classes.write_classes(str(root / "kponly"), CocoDataset(str(root / "kp.json"),
                                                            str(root / "images")))
    return model


def test_draw_detections_of_a_result_without_masks_draws_boxes_and_keypoints():
    image = np.zeros((40, 40, 3), np.uint8)
    result = {"rois": np.array([[20, 2, 36, 14]]), "class_ids": np.array([1]),
              "scores": np.array([0.9], np.float32),
              "keypoints": np.array([[[30, 5, 0.5], [30, 12, 0.2]]], np.float32)}
    drawn = media.draw_detections(image, result, ["BG", "x"], [(0, 0, 0), (0.0, 1.0, 0.0)],
                                  skeleton=[(0, 1)])
    assert tuple(drawn[5, 30]) == (0, 255, 0)                  # a keypoint
    assert tuple(drawn[28, 2]) == (0, 255, 0)                  # the box's left edge
    assert not drawn[28, 8].any()                              # inside the box: no mask


def test_detect_of_a_keypoint_only_model_writes_boxes_and_keypoints(workspace, keypoint_only,
                                                                   capsys, monkeypatch):
    from mrcnn import visualize

    drawn = []
    original = visualize.display_instances

    def spy(image, boxes, masks, *args, **kwargs):
        drawn.append((masks, kwargs.get("keypoints")))
        return original(image, boxes, masks, *args, **kwargs)

    monkeypatch.setattr(visualize, "display_instances", spy)
    out, results, images = _detect(workspace, capsys, "kponly/kponly.h5", "det_only")
    assert "NUM_KEYPOINTS = 3 (apex, left_corner, right_corner)" in out, out[-2000:]
    assert results
    assert all(set(r) == {"image_id", "category_id", "bbox", "score", "keypoints"}
               for r in results)
    assert all(len(r["keypoints"]) == 3 * 3 for r in results)
    # The saved model's own detect(): no masks, the same boxes, scores and keypoints.
    for record in images:
        expected = keypoint_only.detect([media.read_image(record["file_name"])])[0]
        assert "masks" not in expected
        mine = [r for r in results if r["image_id"] == record["id"]]
        assert mine and len(mine) == len(expected["class_ids"])
        rois = expected["rois"].astype(np.float64)
        np.testing.assert_allclose([r["bbox"] for r in mine], np.stack(
            [rois[:, 1], rois[:, 0], rois[:, 3] - rois[:, 1], rois[:, 2] - rois[:, 0]], 1))
        np.testing.assert_allclose([r["keypoints"] for r in mine],
                                   expected["keypoints"].reshape(len(mine), -1), atol=1e-3)
        np.testing.assert_allclose([r["score"] for r in mine], expected["scores"], atol=1e-5)
    # Every picture drawn with boxes and keypoints and no masks.
    assert len(drawn) == len(images)
    assert all(m is None and np.shape(k)[1:] == (3, 3) for m, k in drawn)
    # --save-masks has nothing to save: an error that says why.
    status = main([str(a) for a in ["detect", *workspace["config"], "--weights",
                                    workspace["root"] / "kponly" / "kponly.h5", "--output",
                                    workspace["root"] / "det_only2", "--save-masks",
                                    workspace["root"] / "images"]])
    err = capsys.readouterr().err
    assert status == 2 and "--save-masks: the model has no masks" in err, err


def _moved_box_fakes(shapes):
    """_fake_detections without masks (a keypoint-only model's results), the first
    instance of image 2 with its box moved 4 px right, so box AP is not 1."""
    fakes = _fake_detections(shapes)
    for image_id in shapes.image_ids:
        fake = fakes[shapes.load_image(image_id).tobytes()]
        fake.pop("masks")
        if image_id == 2:
            fake["rois"] = fake["rois"].copy()
            fake["rois"][0, [1, 3]] += 4
    return fakes


def _reference_box_stats(workspace, fakes):
    """pycocotools' bbox stats on the COCO file itself, the fake detections' boxes given
    with the file's image ids."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    root, shapes = workspace["root"], workspace["shapes"]
    results = []
    for image_id in shapes.image_ids:
        fake = fakes[shapes.load_image(image_id).tobytes()]
        for (y1, x1, y2, x2), score in zip(fake["rois"].tolist(), fake["scores"]):
            results.append({"image_id": int(image_id) + 100, "category_id": 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "kp.json"))
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_evaluate_of_a_keypoint_only_model_reports_box_and_keypoint_ap(workspace,
                                                                      keypoint_only,
                                                                      capsys, monkeypatch):
    from mrcnn.coco_eval import METRIC_NAMES
    from mrcnn.keypoint_eval import KEYPOINT_METRIC_NAMES

    fakes = _moved_box_fakes(workspace["shapes"])
    metrics_path = workspace["root"] / "metrics_only.json"
    out = _evaluate_with(workspace, fakes, workspace["root"] / "kponly" / "kponly.h5",
                         metrics_path, capsys, monkeypatch)
    assert "Mask metrics left out: the model has no masks" in out, out[-3000:]
    assert "COCO metrics (bbox):" in out and "COCO metrics (segm):" not in out
    assert "mAP@0.5" not in out
    with open(metrics_path) as f:
        report = json.load(f)
    assert set(report["coco"]) == {"bbox", "keypoints"}
    assert tuple(report["coco"]["bbox"]) == METRIC_NAMES
    assert tuple(report["coco"]["keypoints"]) == KEYPOINT_METRIC_NAMES
    assert "mAP@0.5" not in report and "mask_metrics_left_out" in report
    shapes = workspace["shapes"]
    instances = sum(len(shapes.load_mask(i)[1]) for i in shapes.image_ids)
    assert report["instances"] == {"triangle": instances}
    assert report["detections"] == {"triangle": instances}
    # Box AP as pycocotools on the file; keypoint AP as the test with masks above.
    box = [report["coco"]["bbox"][n] for n in METRIC_NAMES]
    np.testing.assert_allclose(box, _reference_box_stats(workspace, fakes), atol=1e-9)
    assert 0.5 < box[0] < 1.0, box     # 0.905 measured: the moved box misses at high IoU
    assert f"Box AP = {box[0]:.3f}   AP50 = {box[1]:.3f}   AP75 = {box[2]:.3f}" in out
    got = [report["coco"]["keypoints"][n] for n in ("AP", "AP50", "AP75")]
    np.testing.assert_allclose(got, _reference_ap(workspace, fakes, 0.1)[:3], atol=1e-9)
    assert 0.5 < got[0] < 1.0, got     # 0.925 measured, as with masks

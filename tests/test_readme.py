"""README.md's code runs as written.

The blocks of "Using it" are executed in order, in one namespace, in a temporary working
directory, offline (as CI is: the COCO download fails, so the README's own fallback trains
from scratch). The one change: epochs of 2 steps instead of the README's 100. The Dataset
subclass of "Your own data" is run on a folder of shapes pictures written by the test.
Every other Python block of the README must at least compile.
"""
import glob
import math
import os
import re

import cv2
import numpy as np
import pytest

from mrcnn import utils
from mrcnn.shapes import SHAPE_NAMES, ShapesDataset

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


def _section(text, heading):
    """The text from `heading` (a whole line) to the next heading of the same or a higher
    level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.split("\n")
    start = lines.index(heading) + 1
    in_code = False
    for end in range(start, len(lines)):
        if lines[end].startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#{1,%d} " % level, lines[end]):
            break
    else:
        end = len(lines)
    return "\n".join(lines[start:end]) + "\n"


def _python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```$", text, re.S | re.M)


def _run_blocks(blocks, namespace, after_each=None):
    for index, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
        if after_each:
            after_each(namespace)


def test_every_python_block_compiles():
    blocks = _python_blocks(_readme())
    assert len(blocks) >= 6
    for index, block in enumerate(blocks):
        compile(block, f"README.md python block {index}", "exec")


def _write_folder(folder, shapes):
    """The layout FolderDataset reads: images/<name>.png, masks/<name>/<class>_<k>.png."""
    for image_id in shapes.image_ids:
        name = f"shape{image_id:03d}"
        os.makedirs(os.path.join(folder, "images"), exist_ok=True)
        os.makedirs(os.path.join(folder, "masks", name))
        cv2.imwrite(os.path.join(folder, "images", name + ".png"),
                    shapes.load_image(image_id)[..., ::-1])
        masks, class_ids = shapes.load_mask(image_id)
        for k, class_id in enumerate(class_ids):
            cv2.imwrite(os.path.join(folder, "masks", name, f"{SHAPE_NAMES[class_id - 1]}_{k}.png"),
                        masks[..., k].astype(np.uint8) * 255)


def test_your_own_data_example_loads_a_folder_of_pictures(tmp_path):
    blocks = _python_blocks(_section(_readme(), "### Your own data"))
    assert len(blocks) == 1
    namespace = {}
    _run_blocks(blocks, namespace)
    shapes = ShapesDataset()
    shapes.load_shapes(4, 64, 96, seed=5)
    shapes.prepare()
    _write_folder(str(tmp_path), shapes)

    dataset = namespace["FolderDataset"]()
    dataset.load_folder(str(tmp_path))
    dataset.prepare()
    assert dataset.class_names == ["BG", "square", "circle", "triangle"]
    assert dataset.num_images == 4
    for image_id in shapes.image_ids:
        np.testing.assert_array_equal(dataset.load_image(image_id), shapes.load_image(image_id))
        masks, class_ids = dataset.load_mask(image_id)
        expected_masks, expected_ids = shapes.load_mask(image_id)
        assert masks.dtype == bool and class_ids.dtype == np.int32
        # Files are read in name order: compare instances as (class, mask bytes) pairs.
        ours = sorted((int(c), masks[..., k].tobytes()) for k, c in enumerate(class_ids))
        theirs = sorted((int(c), expected_masks[..., k].tobytes())
                        for k, c in enumerate(expected_ids))
        assert ours == theirs


@pytest.mark.slow
def test_using_it_runs_as_written_offline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # No network, as in CI: the download fails with the error the README catches.
    monkeypatch.setattr(utils, "COCO_MODEL_URL", "http://127.0.0.1:9/mask_rcnn_coco.h5")
    using_it = _section(_readme(), "## Using it")
    blocks = _python_blocks(using_it[:using_it.index("\n### Your own data\n")])
    assert len(blocks) == 3

    def short_epochs(namespace):
        config = namespace.get("ShapesTrainingConfig")
        if config is not None:
            config.STEPS_PER_EPOCH, config.VALIDATION_STEPS = 2, 1

    namespace = {"__name__": "readme"}
    _run_blocks(blocks, namespace, after_each=short_epochs)

    # Offline, so trained from scratch: every layer, BatchNorm trained, up to epoch 4.
    assert namespace["pretrained"] is False
    model = namespace["model"]
    assert model.config.TRAIN_BN is None and model.epoch == 4
    checkpoints = sorted(os.path.basename(p) for p in
                         glob.glob(str(tmp_path / "logs" / "shapes*" / "mask_rcnn_shapes_*.h5")))
    assert checkpoints == [f"mask_rcnn_shapes_{e:04d}.h5" for e in (1, 2, 3, 4)]
    losses = namespace["history"].history["loss"]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    # The mAP callback evaluated after epochs 2 and 4.
    evaluations = namespace["map_callback"].history
    assert [epoch for epoch, _ in evaluations] == [2, 4]
    assert all(0.0 <= value <= 1.0 for _, value in evaluations)

    # Detections of the 128x128 image, in its own pixels.
    r, image = namespace["r"], namespace["image"]
    assert image.shape == (128, 128, 3)
    assert set(r) == {"rois", "class_ids", "scores", "masks"}
    count = len(r["class_ids"])
    assert r["rois"].shape == (count, 4) and r["scores"].shape == (count,)
    assert r["masks"].shape == (128, 128, count) and r["masks"].dtype == bool
    assert np.all(np.isin(r["class_ids"], [1, 2, 3]))
    assert np.all(r["scores"] >= namespace["InferenceConfig"].DETECTION_MIN_CONFIDENCE)
    assert np.all((r["rois"][:, :2] >= 0) & (r["rois"][:, 2:] <= 128))

    # The picture was written without a display, and shows the image.
    picture = cv2.imread(str(tmp_path / "detections.png"))
    assert picture is not None and min(picture.shape[:2]) > 100
    assert picture.std() > 5

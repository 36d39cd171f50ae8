"""Write the tutorial notebooks of this folder from the cell sources below.

The notebooks are stored without outputs. Edit the cells here, then run

    python notebooks/build_notebooks.py

to rewrite every ``.ipynb`` (cell ids are fixed, so an unchanged notebook is rewritten
byte for byte). ``python notebooks/build_notebooks.py --check`` exits with status 1 when a
stored notebook differs from what this script writes.
"""
import argparse
import os
import sys
import textwrap

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))

# Shared first code cell: imports, the quick switch and the log folder.
SETUP = '''
import os
import sys

try:
    import mrcnn  # noqa: F401
except ImportError:  # a source checkout without `pip install -e .`: the repository root
    sys.path.append(os.path.abspath(".."))

from mrcnn.console import quiet_tensorflow

quiet_tensorflow()  # before TensorFlow loads: its start-up lines (not its errors) stay out

import keras
import matplotlib.pyplot as plt
import numpy as np

import mrcnn.model as modellib
from mrcnn import utils, visualize
from mrcnn.shapes import DEMO_EPOCHS, ShapesConfig, ShapesDataset

%matplotlib inline

# MRCNN_NOTEBOOK_QUICK=1 shrinks image counts, steps and epochs to a smoke run of a few
# minutes; without it the notebook does the real thing.
QUICK = os.environ.get("MRCNN_NOTEBOOK_QUICK", "0") == "1"
# Run directories and checkpoints: logs/shapes<YYYYmmddTHHMM>/mask_rcnn_shapes_<epoch>.h5 in
# the repository (the folder above this one), where `make demo` writes them too.
# MRCNN_MODEL_DIR in the environment overrides it.
MODEL_DIR = os.environ.get("MRCNN_MODEL_DIR") or os.path.abspath(os.path.join("..", "logs"))
print("quick settings" if QUICK else "full settings", "- logs in", MODEL_DIR)
'''

# Shared by the notebooks that need trained weights: train the shapes recipe here.
TRAIN_HELPER = '''
def train_shapes(epochs, steps_per_epoch, images_per_gpu, train_images, verbose=1):
    """Train ShapesConfig from scratch (layers "all") and return the last checkpoint's path."""
    keras.utils.set_random_seed(0)
    config = ShapesConfig()
    config.STEPS_PER_EPOCH = steps_per_epoch
    config.IMAGES_PER_GPU = images_per_gpu
    config.VALIDATION_STEPS = 1
    train_set = ShapesDataset()
    train_set.load_shapes(train_images, 128, 128, seed=0)
    train_set.prepare()
    val_set = ShapesDataset()
    val_set.load_shapes(8, 128, 128, seed=10_000)
    val_set.prepare()
    trainer = modellib.MaskRCNN(mode="training", config=config, model_dir=MODEL_DIR)
    trainer.train(train_set, val_set, learning_rate=config.LEARNING_RATE, epochs=epochs,
                  layers="all", verbose=verbose)
    return trainer.find_last()


def newest_checkpoint(model):
    """The newest checkpoint of the model's config NAME under MODEL_DIR, or None."""
    try:
        return model.find_last()
    except FileNotFoundError:
        return None
'''


def md(text):
    return ("markdown", text)


def code(text):
    return ("code", text)


############################################################
#  train_shapes.ipynb
############################################################

TRAIN_SHAPES = [
    md("""
# Training on shapes

Mask R-CNN trained from scratch on a synthetic data set of squares, circles and triangles
(`mrcnn.shapes`). Everything runs offline on a CPU: with the full settings the training
takes about ten minutes on two cores and reaches a high mAP@0.5 on held-out images.

There are no pretrained weights here, so the recipe in `ShapesConfig` trains every layer
(`layers="all"`), trains BatchNorm (`TRAIN_BN = None`), warms the learning rate up, decays
it on a cosine and clips gradients. A light ResNet-18 backbone and narrow heads keep it fast.
"""),
    code(SETUP),
    md("""
## Configuration

`ShapesConfig` is a `Config` subclass for 128×128 images and 1 + 3 classes. A setting can be
changed on the instance after construction: it is checked again when the model is built.
"""),
    code('''
config = ShapesConfig()
EPOCHS = DEMO_EPOCHS        # cumulative: train() trains up to this epoch
TRAIN_IMAGES, VAL_IMAGES = 2000, 100
if QUICK:
    config.IMAGES_PER_GPU = 2
    config.STEPS_PER_EPOCH = 15
    config.VALIDATION_STEPS = 1
    EPOCHS, TRAIN_IMAGES, VAL_IMAGES = 1, 40, 6
config.display()
'''),
    md("""
## Data sets

Each image is drawn from a seed and its index, so the training images (seed 0) and the
held-out images (seed 10 000) never change and never overlap.
"""),
    code('''
dataset_train = ShapesDataset()
dataset_train.load_shapes(TRAIN_IMAGES, config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1], seed=0)
dataset_train.prepare()

dataset_val = ShapesDataset()
dataset_val.load_shapes(VAL_IMAGES, config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1], seed=10_000)
dataset_val.prepare()

print("training images:", len(dataset_train.image_ids), " held-out images:", len(dataset_val.image_ids))
print("classes:", dataset_train.class_names)
'''),
    code('''
# A few training images and the masks of each class.
rng = np.random.default_rng(0)
for image_id in rng.choice(dataset_train.image_ids, 3, replace=False):
    image = dataset_train.load_image(image_id)
    mask, class_ids = dataset_train.load_mask(image_id)
    visualize.display_top_masks(image, mask, class_ids, dataset_train.class_names)
'''),
    md("""
## Training

`train()` writes one checkpoint per epoch under `MODEL_DIR` and TensorBoard logs
(`tensorboard --logdir ../logs`). The five losses are shown per step.
"""),
    code('''
keras.utils.set_random_seed(0)
model = modellib.MaskRCNN(mode="training", config=config, model_dir=MODEL_DIR)
history = model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE,
                      epochs=EPOCHS, layers="all")
'''),
    code('''
# Loss per epoch (training and validation).
epochs = np.arange(1, len(history.history["loss"]) + 1)
fig, ax = plt.subplots(figsize=(7, 4))
for name in ("loss", "val_loss"):
    ax.plot(epochs, history.history[name], marker="o", label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("loss")
ax.legend()
plt.show()
'''),
    md("""
## Detection

An inference model of the same configuration loads the newest checkpoint. Weights are
matched by layer name, so the training checkpoint loads into the inference graph.
"""),
    code('''
class InferenceConfig(ShapesConfig):
    IMAGES_PER_GPU = 4   # detect() batches any number of images by this size

inference_config = InferenceConfig()
model = modellib.MaskRCNN(mode="inference", config=inference_config, model_dir=MODEL_DIR)
model_path = model.find_last()
model.load_weights(model_path, by_name=True);
'''),
    code('''
# Ground truth (left) and detections (right) on held-out images.
image_ids = dataset_val.image_ids[:3]
images = [dataset_val.load_image(i) for i in image_ids]
results = model.detect(images)
fig, axes = plt.subplots(len(image_ids), 2, figsize=(10, 5 * len(image_ids)), squeeze=False)
for row, (image_id, image, r) in enumerate(zip(image_ids, images, results)):
    mask, class_ids = dataset_val.load_mask(image_id)
    visualize.display_instances(image, utils.extract_bboxes(mask), mask, class_ids,
                                dataset_val.class_names, ax=axes[row, 0],
                                title=f"image {image_id}: ground truth")
    visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"],
                                dataset_val.class_names, r["scores"], ax=axes[row, 1],
                                title=f"image {image_id}: {len(r['class_ids'])} detections")
plt.show()
'''),
    md("""
## Evaluation

`evaluate_map` averages upstream's per-image AP (`utils.compute_ap`, mask IoU, VOC all-point
interpolation) over the held-out images at each IoU threshold; `per_class_table` pools each
class's detections over the data set.
"""),
    code('''
from mrcnn.evaluate import COCO_IOU_THRESHOLDS, evaluate_map, per_class_table

result = evaluate_map(model, dataset_val, iou_thresholds=COCO_IOU_THRESHOLDS, verbose=1)
print(f"mAP@0.5 = {result['mAP'][0.5]:.3f}   mAP@[0.5:0.95] = {result['mAP_range']:.3f}   "
      f"({len(result['image_ids'])} images)")
visualize.display_table(per_class_table(result, dataset_val.class_names))
'''),
    md("""
Where the errors are: the confusion matrix (row "false positive": detections without ground
truth; column "missed": ground truths nothing found), each class's precision-recall curve
with its AP (the per-class table's), and F1 against the score threshold, whose best value
suggests a `DETECTION_MIN_CONFIDENCE`. One detect pass feeds all three.
"""),
    code('''
from mrcnn import evaluation_curves, visualize_evaluation

records = evaluation_curves.collect_records(model, dataset_val)
visualize_evaluation.plot_confusion_matrix(
    evaluation_curves.confusion_matrix(records, dataset_val.num_classes, iou_threshold=0.5,
                                       score_threshold=0.5), dataset_val.class_names)
plt.show()
visualize_evaluation.plot_precision_recall_curves(
    evaluation_curves.precision_recall_curves(records, iou_threshold=0.5),
    dataset_val.class_names)
plt.show()
f1 = evaluation_curves.f1_by_score_threshold(records, iou_threshold=0.5)
visualize_evaluation.plot_f1_by_threshold(f1)
plt.show()
print(f"best F1 {f1['best_f1']:.3f} at score threshold {f1['best_threshold']:.2f}")
'''),
    md("""
## Training from a COCO JSON file

Your own annotations most likely come out of a tool (CVAT, Labelbox, Roboflow, makesense, ...)
as a COCO instances JSON: the images by file name, the categories, and one annotation per
instance with its polygons (or RLE). No Dataset subclass is needed for it:
`mrcnn.datasets.CocoDataset(json_file, image_dir)` reads it, with category ids in any order
mapped to classes 1..K (`category_to_class`). Here the shapes images are written as such a
file on the fly, the PNG files and one polygon per shape (the whole shape, as an annotator
draws it, also where a later shape hides part of it), then read back and trained on.
"""),
    code('''
import json
import tempfile

from PIL import Image

from mrcnn.datasets import CocoDataset
from mrcnn.shapes import SHAPE_NAMES


def shape_polygon(name, x, y, s, height, width):
    """A shape of the ShapesDataset spec as one COCO polygon [x1, y1, x2, y2, ...] (pixels)."""
    if name == "square":
        points = [(x - s, y - s), (x + s, y - s), (x + s, y + s), (x - s, y + s)]
    elif name == "triangle":
        half_base = s / np.sin(np.pi / 3)
        points = [(x, y - s), (x + half_base, y + s), (x - half_base, y + s)]
    else:  # a circle as a 24-gon
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        points = list(zip(x + s * np.cos(angles), y + s * np.sin(angles)))
    return [round(float(v), 1) for px, py in points
            for v in (np.clip(px, 0, width), np.clip(py, 0, height))]


def write_coco(dataset, folder):
    """folder/images/*.png and folder/annotations.json for the images of a ShapesDataset."""
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    categories = [{"id": 10 * k, "name": name, "supercategory": "shape"}   # ids need not be 1..K
                  for k, name in enumerate(SHAPE_NAMES, start=1)]
    category_id = {c["name"]: c["id"] for c in categories}
    images, annotations = [], []
    for image_id in map(int, dataset.image_ids):
        info = dataset.image_info[image_id]
        file_name = f"shape_{image_id:04d}.png"
        Image.fromarray(dataset.load_image(image_id)).save(os.path.join(folder, "images", file_name))
        images.append({"id": image_id + 1, "file_name": file_name,
                       "height": int(info["height"]), "width": int(info["width"])})
        for name, _, (x, y, s) in info["shapes"]:
            polygon = shape_polygon(name, x, y, s, info["height"], info["width"])
            xs, ys = polygon[0::2], polygon[1::2]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id + 1,
                                "category_id": category_id[name], "iscrowd": 0,
                                "segmentation": [polygon],
                                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]})
    path = os.path.join(folder, "annotations.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return path


coco_folder = tempfile.mkdtemp(prefix="shapes_coco_")
train_json = write_coco(dataset_train, os.path.join(coco_folder, "train"))
val_json = write_coco(dataset_val, os.path.join(coco_folder, "val"))
with open(train_json) as f:
    print(json.dumps(json.load(f)["annotations"][0]))

coco_train = CocoDataset(train_json, os.path.join(coco_folder, "train", "images"))
coco_val = CocoDataset(val_json, os.path.join(coco_folder, "val", "images"))
print("classes:", coco_train.class_names, " category id -> class id:", coco_train.category_to_class)
image_id = coco_train.image_ids[0]
mask, class_ids = coco_train.load_mask(image_id)
visualize.display_top_masks(coco_train.load_image(image_id), mask, class_ids,
                            coco_train.class_names)
'''),
    md("""
A config of its own `NAME` keeps these checkpoints apart from the shapes run above;
`NUM_CLASSES` is the file's categories plus the background. The command line does the same
from the files alone (`mrcnn train --help`):

```
mrcnn train --coco train/annotations.json --images train/images \\
    --val-coco val/annotations.json --val-images val/images \\
    --config mrcnn.shapes:ShapesConfig --set NAME=coco_shapes \\
    --weights none --layers all --epochs 2
```
"""),
    code('''
class CocoShapesConfig(ShapesConfig):
    NAME = "coco_shapes"

coco_config = CocoShapesConfig()
coco_config.NUM_CLASSES = coco_train.num_classes
COCO_EPOCHS = 2
if QUICK:
    coco_config.IMAGES_PER_GPU = 2
    coco_config.STEPS_PER_EPOCH = 2
    coco_config.VALIDATION_STEPS = 1
    COCO_EPOCHS = 1

keras.utils.set_random_seed(0)
coco_model = modellib.MaskRCNN(mode="training", config=coco_config, model_dir=MODEL_DIR)
coco_model.train(coco_train, coco_val, learning_rate=coco_config.LEARNING_RATE,
                 epochs=COCO_EPOCHS, layers="all")
print("COCO-trained checkpoint:", os.path.relpath(coco_model.find_last(), MODEL_DIR))
'''),
]


############################################################
#  inspect_data.ipynb
############################################################

INSPECT_DATA = [
    md("""
# Inspecting the training data

What the model is fed, step by step: the data set, masks and boxes, resizing, mini masks,
anchors and the batches of the training input pipeline (`mrcnn.data.DataGenerator`).
The shapes data set stands in for yours: any prepared `utils.Dataset` works the same way.
"""),
    code(SETUP),
    code('''
from mrcnn.data import DataGenerator, load_image_gt

config = ShapesConfig()
IMAGES = 40 if QUICK else 500

dataset = ShapesDataset()
dataset.load_shapes(IMAGES, config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1], seed=0)
dataset.prepare()
'''),
    md("## Data set statistics"),
    code('''
print("images:", len(dataset.image_ids))
print("classes:", dataset.num_classes, dataset.class_names)

instances_per_class = np.zeros(dataset.num_classes, dtype=int)
instances_per_image = []
for image_id in dataset.image_ids:
    _, class_ids = dataset.load_mask(image_id)
    np.add.at(instances_per_class, class_ids, 1)
    instances_per_image.append(len(class_ids))

visualize.display_table([["class", "id", "instances"]] + [
    [name, i, int(instances_per_class[i])] for i, name in enumerate(dataset.class_names) if i])

fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(instances_per_image, bins=np.arange(0.5, max(instances_per_image) + 1.5))
ax.set_xlabel("instances per image")
ax.set_ylabel("images")
plt.show()
'''),
    md("""
## Images and masks

`load_image` returns uint8 [H, W, 3]; `load_mask` returns bool masks [H, W, N] and int32
class ids [N]. `display_top_masks` shows the image and the masks of its largest classes.
"""),
    code('''
rng = np.random.default_rng(1)
for image_id in rng.choice(dataset.image_ids, 4, replace=False):
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    visualize.display_top_masks(image, mask, class_ids, dataset.class_names)
'''),
    md("""
## Bounding boxes

Boxes are computed from the masks rather than taken from the annotations, so they stay
right after resizing, cropping and augmentation: (y1, x1, y2, x2) pixels, y2/x2 exclusive.
"""),
    code('''
image_id = int(rng.choice(dataset.image_ids))
image = dataset.load_image(image_id)
mask, class_ids = dataset.load_mask(image_id)
bbox = utils.extract_bboxes(mask)

print("image_id", image_id, dataset.image_reference(image_id))
modellib.log("image", image)
modellib.log("mask", mask)
modellib.log("class_ids", class_ids)
modellib.log("bbox", bbox)
visualize.display_instances(image, bbox, mask, class_ids, dataset.class_names, figsize=(6, 6));
'''),
    md("""
## Resizing

`utils.resize_image` scales an image keeping its aspect ratio and returns the `window` where
the image lies in the result (the rest is padding), the `scale`, the `padding` and, in
"crop" mode, the `crop`. Masks follow with `utils.resize_mask`. A 96×160 image shows the
modes (min_dim 128, max_dim 192):

* "none": unchanged;
* "square": scale so the short side reaches min_dim unless the long side would pass
  max_dim, then pad to max_dim × max_dim (the default; one batch shape);
* "pad64": scale by min_dim, pad each side to a multiple of 64;
* "crop": scale by min_dim, take a random min_dim × min_dim crop (for training).
"""),
    code('''
wide = ShapesDataset()
wide.load_shapes(1, 96, 160, seed=3)
wide.prepare()
original = wide.load_image(0)
original_mask, original_class_ids = wide.load_mask(0)

np.random.seed(0)  # "crop" draws its position with np.random
resized, rows = [], [["mode", "shape", "window", "scale", "padding", "crop"]]
for mode in ("none", "square", "pad64", "crop"):
    image, window, scale, padding, crop = utils.resize_image(
        original, min_dim=128, max_dim=192, mode=mode)
    framed = visualize.draw_box(image.copy(), window, (255, 0, 0))  # the window in red
    resized.append(framed)
    rows.append([mode, image.shape, window, round(scale, 3), padding[:2], crop])
    if mode == "square":
        square_image = image
        square_mask = utils.resize_mask(original_mask, scale, padding, crop)
visualize.display_table(rows)
visualize.display_images(resized, titles=[f"{r[0]} {r[1][:2]}" for r in rows[1:]], cols=4);
'''),
    code('''
# The masks, resized like their image, still cover the shapes exactly.
visualize.display_instances(square_image, utils.extract_bboxes(square_mask), square_mask,
                            original_class_ids, wide.class_names, figsize=(6, 6),
                            title="square mode, resized masks");
'''),
    md("""
## Mini masks

Full-image masks of many instances take a lot of memory. With `USE_MINI_MASK` each mask is
cropped to its box and resized to `MINI_MASK_SHAPE` (`utils.minimize_mask`);
`utils.expand_mask` pastes it back. Some detail is lost: the IoU of the round trip shows how
much.
"""),
    code('''
image, image_meta, class_ids, bbox, mask = load_image_gt(dataset, config, image_id,
                                                         use_mini_mask=False)
modellib.log("full masks", mask)
mini = utils.minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
modellib.log("mini masks", mini)
expanded = utils.expand_mask(bbox, mini, image.shape)
modellib.log("expanded masks", expanded)

round_trip_iou = np.diag(utils.compute_overlaps_masks(mask, expanded))
print("IoU of each mask with its mini-mask round trip:", np.round(round_trip_iou, 3))

count = min(3, mask.shape[-1])
visualize.display_images(
    [mask[..., i] for i in range(count)] + [mini[..., i] for i in range(count)]
    + [expanded[..., i] for i in range(count)],
    titles=[f"full {i}" for i in range(count)] + [f"mini {i}" for i in range(count)]
    + [f"expanded {i}" for i in range(count)],
    cols=count, cmap="Blues_r");
'''),
    md("""
## Anchors

One anchor scale per pyramid level (P2..P6) and every ratio at each cell of the level's
feature map, centred on the cell's corner. The order (level, then row, then column, then
ratio) is the order of the RPN's outputs.
"""),
    code('''
backbone_shapes = utils.compute_backbone_shapes(config, config.IMAGE_SHAPE)
anchors = utils.generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                         backbone_shapes, config.BACKBONE_STRIDES,
                                         config.RPN_ANCHOR_STRIDE)
ratios = len(config.RPN_ANCHOR_RATIOS)
grid = [(-(-int(h) // config.RPN_ANCHOR_STRIDE), -(-int(w) // config.RPN_ANCHOR_STRIDE))
        for h, w in backbone_shapes]
per_level = [rows * cols * ratios for rows, cols in grid]

table = [["level", "feature map", "stride", "scale", "anchors"]]
for level, (shape, count) in enumerate(zip(backbone_shapes, per_level)):
    table.append([f"P{level + 2}", tuple(int(s) for s in shape), config.BACKBONE_STRIDES[level],
                  config.RPN_ANCHOR_SCALES[level], count])
visualize.display_table(table)
print("anchors in all:", len(anchors), "=", " + ".join(map(str, per_level)))
'''),
    code('''
# The anchors of the cell at the centre of the image, on every level.
start, boxes, captions = 0, [], []
for level, ((rows, cols), count) in enumerate(zip(grid, per_level)):
    y, x = rows // 2, cols // 2
    first = start + (y * cols + x) * ratios
    cell = anchors[first:first + ratios]
    centre = (cell[0, :2] + cell[0, 2:]) / 2
    print(f"P{level + 2}: cell ({y}, {x}) centred at (y, x) = {centre}")
    boxes.extend(cell)
    captions.extend([f"P{level + 2}"] + [""] * (ratios - 1))
    start += count
image = dataset.load_image(image_id)
visualize.draw_boxes(image, boxes=np.array(boxes), captions=captions, figsize=(8, 8),
                     title="anchors of the centre cell, all levels")
plt.show()
'''),
    md("""
## The data generator

`DataGenerator` (a `keras.utils.PyDataset`) yields batches as a dict keyed by the training
graph's input names. With `random_rois` and `detection_targets` it also returns random ROIs
and the detection heads' targets for them, in numpy, for inspection.
"""),
    code('''
generator = DataGenerator(dataset, config, shuffle=True, batch_size=4, seed=0,
                          random_rois=200, detection_targets=True)
inputs, targets = generator[0]
for name, value in inputs.items():
    modellib.log(name, value)
for name, value in targets.items():
    modellib.log("target " + name, value)
'''),
    code('''
b = 0
image = modellib.unmold_image(inputs["input_image"][b], config)
meta = modellib.parse_image_meta(inputs["input_image_meta"][b:b + 1])
print("image_id", int(meta["image_id"][0]), " window", meta["window"][0])

rpn_match = inputs["input_rpn_match"][b, :, 0]
positive = np.flatnonzero(rpn_match == 1)
negative = np.flatnonzero(rpn_match == -1)
print(f"anchors: {len(positive)} positive, {len(negative)} negative, "
      f"{len(rpn_match) - len(positive) - len(negative)} neutral")

# rpn_bbox holds the deltas of the positive anchors, in anchor order, divided by the std dev.
deltas = inputs["input_rpn_bbox"][b, :len(positive)] * config.RPN_BBOX_STD_DEV
refined = utils.apply_box_deltas(generator.anchors[positive], deltas)
gt_boxes = inputs["input_gt_boxes"][b][inputs["input_gt_class_ids"][b] > 0]
print("IoU of each refined anchor with its ground truth box:",
      np.round(utils.compute_overlaps(refined, gt_boxes).max(axis=1), 3))
visualize.draw_boxes(image, boxes=generator.anchors[positive], refined_boxes=refined,
                     figsize=(8, 8), title="positive anchors (dotted) and their refinement")
plt.show()
'''),
    code('''
# Detection targets: sampled ROIs (dashed), refined by their target deltas (solid).
rois = targets["rois"][b]
roi_class_ids = targets["mrcnn_class_ids"][b, :, 0]
roi_deltas = targets["mrcnn_bbox"][b, np.arange(len(rois)), roi_class_ids] * config.BBOX_STD_DEV
refined_rois = utils.apply_box_deltas(rois.astype(np.float32), roi_deltas)
roi_masks = targets["mrcnn_mask"][b, np.arange(len(rois)), :, :, roi_class_ids]
np.random.seed(0)  # draw_rois picks ROIs and colours with np.random
visualize.draw_rois(image, rois, refined_rois, roi_masks, roi_class_ids, dataset.class_names,
                    limit=10, figsize=(8, 8))
plt.show()
'''),
]


############################################################
#  inspect_model.ipynb
############################################################

INSPECT_MODEL = [
    md("""
# Inspecting the model

The stages of Mask R-CNN one by one on a held-out shapes image: the RPN's targets and
predictions, the proposals, the classifier's refinement, the detections and the masks.
`model.run_graph(images, [(name, tensor), ...])` runs the inference graph and returns any
named intermediate tensors.

Weights: the newest shapes checkpoint under `MODEL_DIR`, the repository's `logs/` (from
`make demo` or `train_shapes.ipynb`); when there is none, the next cells train the demo
recipe first (about ten minutes on two CPU cores). In quick mode they train 20 steps.
"""),
    code(SETUP),
    code(TRAIN_HELPER),
    code('''
class InferenceConfig(ShapesConfig):
    IMAGES_PER_GPU = 1

config = InferenceConfig()
model = modellib.MaskRCNN(mode="inference", config=config, model_dir=MODEL_DIR)

if QUICK:
    weights_path = train_shapes(epochs=1, steps_per_epoch=20, images_per_gpu=2,
                                train_images=40, verbose=2)
else:
    weights_path = newest_checkpoint(model) or train_shapes(
        epochs=DEMO_EPOCHS, steps_per_epoch=ShapesConfig.STEPS_PER_EPOCH,
        images_per_gpu=ShapesConfig.IMAGES_PER_GPU, train_images=2000)
model.load_weights(weights_path, by_name=True);
'''),
    code('''
dataset = ShapesDataset()
dataset.load_shapes(4 if QUICK else 50, config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1], seed=10_000)
dataset.prepare()

image_id = dataset.image_ids[0]
image, image_meta, gt_class_id, gt_bbox, gt_mask = modellib.load_image_gt(
    dataset, config, image_id, use_mini_mask=False)
modellib.log("image", image)
modellib.log("gt_class_id", gt_class_id)
modellib.log("gt_bbox", gt_bbox)
modellib.log("gt_mask", gt_mask)
'''),
    md("## Detection"),
    code('''
r = model.detect([image], verbose=1)[0]
fig, axes = plt.subplots(1, 2, figsize=(12, 6))
visualize.display_instances(image, gt_bbox, gt_mask, gt_class_id, dataset.class_names,
                            ax=axes[0], title="ground truth")
visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"], dataset.class_names,
                            r["scores"], ax=axes[1], title="detections")
plt.show()
visualize.display_differences(image, gt_bbox, gt_class_id, gt_mask, r["rois"], r["class_ids"],
                              r["scores"], r["masks"], dataset.class_names);
'''),
    md("""
## Precision and recall

`utils.compute_ap` matches detections to ground truth by mask IoU (≥ 0.5), best score first;
the grid shows the IoU of every detection with every ground-truth instance.
"""),
    code('''
AP, precisions, recalls, overlaps = utils.compute_ap(
    gt_bbox, gt_class_id, gt_mask, r["rois"], r["class_ids"], r["scores"], r["masks"])
print(f"AP@0.5 = {AP:.3f}")
visualize.plot_precision_recall(AP, precisions, recalls)
plt.show()
order = np.argsort(-r["scores"], kind="stable")  # overlaps' rows are in score order
visualize.plot_overlaps(gt_class_id, r["class_ids"][order], r["scores"][order], overlaps,
                        dataset.class_names)
plt.show()
'''),
    md("""
## Stage 1: Region Proposal Network

### RPN targets

Anchors are positive when their IoU with a ground-truth box is ≥ 0.7 (or they are a box's
best anchor) and negative below 0.3; `build_rpn_targets` also returns the deltas that move
each positive anchor onto its box.
"""),
    code('''
from mrcnn.data import build_rpn_targets

anchors = utils.denorm_boxes(model.get_anchors(image.shape), image.shape[:2])  # pixels
target_rpn_match, target_rpn_bbox = build_rpn_targets(
    image.shape, anchors, gt_class_id, gt_bbox, config, rng=np.random.default_rng(0))
modellib.log("target_rpn_match", target_rpn_match)
modellib.log("target_rpn_bbox", target_rpn_bbox)

positive = np.flatnonzero(target_rpn_match == 1)
print(f"{len(positive)} positive and {np.sum(target_rpn_match == -1)} negative anchors "
      f"of {len(anchors)}")
refined = utils.apply_box_deltas(anchors[positive],
                                 target_rpn_bbox[:len(positive)] * config.RPN_BBOX_STD_DEV)
print("IoU of each refined positive anchor with its ground truth box:",
      np.round(utils.compute_overlaps(refined, gt_bbox).max(axis=1), 3))
visualize.draw_boxes(image, boxes=anchors[positive], refined_boxes=refined, figsize=(7, 7),
                     title="positive anchors and their targets")
plt.show()
'''),
    md("""
### RPN predictions and proposals

`rpn_class` holds each anchor's (background, foreground) probabilities and `rpn_bbox` its
predicted deltas. The layer named "ROI" applies the deltas to the best anchors, clips them
to the image and keeps `POST_NMS_ROIS_INFERENCE` after non-maximum suppression.
"""),
    code('''
rpn = model.run_graph([image], [
    ("rpn_class", model.keras_model.get_layer("rpn_class").output),
    ("rpn_bbox", model.keras_model.get_layer("rpn_bbox").output),
    ("proposals", model.keras_model.get_layer("ROI").output),
])
'''),
    code('''
# The 50 anchors the RPN rates most likely foreground, and where its deltas move them.
top = np.argsort(-rpn["rpn_class"][0, :, 1], kind="stable")[:50]
moved = utils.apply_box_deltas(anchors[top], rpn["rpn_bbox"][0, top] * config.RPN_BBOX_STD_DEV)
moved = np.clip(moved, 0, image.shape[0])
print("foreground scores of the top anchors:", np.round(rpn["rpn_class"][0, top[:10], 1], 3))
fig, axes = plt.subplots(1, 2, figsize=(14, 7))
visualize.draw_boxes(image, boxes=anchors[top], refined_boxes=moved, ax=axes[0],
                     title="top anchors and their predicted refinement")
proposals = utils.denorm_boxes(rpn["proposals"][0], image.shape[:2])
proposals = proposals[np.any(proposals, axis=1)]
visualize.draw_boxes(image, refined_boxes=proposals[:50], ax=axes[1],
                     title=f"first 50 of {len(proposals)} proposals")
plt.show()

for iou in (0.5, 0.7):
    recall, _ = utils.compute_recall(proposals, gt_bbox, iou)
    print(f"recall of the ground-truth boxes by the proposals at IoU {iou}: {recall:.3f}")
'''),
    md("""
## Stage 2: classification and box refinement

The classifier gives each proposal class probabilities (`mrcnn_class`) and per-class box
deltas (`mrcnn_bbox`). The layer "mrcnn_detection" keeps each proposal's best class, refines
the box with that class's deltas, drops background and low scores and runs per-class NMS:
its rows are (y1, x1, y2, x2, class_id, score), normalised, zero rows at the end.
"""),
    code('''
stage2 = model.run_graph([image], [
    ("proposals", model.keras_model.get_layer("ROI").output),
    ("probs", model.keras_model.get_layer("mrcnn_class").output),
    ("deltas", model.keras_model.get_layer("mrcnn_bbox").output),
    ("detections", model.keras_model.get_layer("mrcnn_detection").output),
    ("masks", model.keras_model.get_layer("mrcnn_mask_unfold").output),
    ("masks_folded", model.keras_model.get_layer("mrcnn_mask").output),
])
'''),
    code('''
proposals = utils.denorm_boxes(stage2["proposals"][0], image.shape[:2])
roi_class_ids = np.argmax(stage2["probs"][0], axis=1)
roi_scores = stage2["probs"][0, np.arange(len(roi_class_ids)), roi_class_ids]
foreground = np.flatnonzero(roi_class_ids > 0)
print(f"{len(foreground)} of {len(roi_class_ids)} proposals are classified as foreground:",
      {dataset.class_names[c]: int(np.sum(roi_class_ids == c)) for c in np.unique(roi_class_ids)})

# Refine the best foreground proposals with the deltas of their class.
shown = foreground[np.argsort(-roi_scores[foreground], kind="stable")][:20]
class_deltas = stage2["deltas"][0, shown, roi_class_ids[shown]] * config.BBOX_STD_DEV
refined_rois = np.clip(utils.apply_box_deltas(proposals[shown].astype(np.float32), class_deltas),
                       0, image.shape[0])
captions = [f"{dataset.class_names[c]} {s:.2f}"
            for c, s in zip(roi_class_ids[shown], roi_scores[shown])]
visualize.draw_boxes(image, boxes=proposals[shown], refined_boxes=refined_rois,
                     captions=captions, figsize=(7, 7),
                     title="foreground proposals and their refinement")
plt.show()
'''),
    code('''
detections = stage2["detections"][0]
detections = detections[detections[:, 4] > 0]  # zero rows pad the fixed-size output
det_boxes = utils.denorm_boxes(detections[:, :4], image.shape[:2])
det_class_ids = detections[:, 4].astype(np.int32)
det_scores = detections[:, 5]
modellib.log("detections", detections)
visualize.display_table([["class", "score", "box (y1, x1, y2, x2)"]] + [
    [dataset.class_names[c], f"{s:.3f}", tuple(int(v) for v in box)]
    for c, s, box in zip(det_class_ids, det_scores, det_boxes)])
visualize.draw_boxes(image, refined_boxes=det_boxes, figsize=(7, 7),
                     captions=[f"{dataset.class_names[c]} {s:.2f}"
                               for c, s in zip(det_class_ids, det_scores)],
                     title=f"{len(detections)} detections")
plt.show()

# detect() maps the same rows to pixels of the original image and drops empty boxes.
nonempty = (det_boxes[:, 2] > det_boxes[:, 0]) & (det_boxes[:, 3] > det_boxes[:, 1])
print("detect() returned the same boxes:", np.array_equal(det_boxes[nonempty], r["rois"]))
'''),
    md("""
## Masks

The mask head predicts a 28×28 mask per detection and class: "mrcnn_mask_unfold" holds
[batch, detections, 28, 28, classes] ("mrcnn_mask" is the same tensor folded to
[batch × detections, 28, 28, classes]). Each detection uses the mask of its class, resized
to its box and thresholded at 0.5 (`utils.unmold_mask`).
"""),
    code('''
modellib.log("masks_folded", stage2["masks_folded"])
modellib.log("masks", stage2["masks"])
print("mrcnn_mask is mrcnn_mask_unfold folded:",
      np.array_equal(stage2["masks_folded"].reshape(stage2["masks"].shape), stage2["masks"]))
det_masks = np.array([stage2["masks"][0, i, :, :, c] for i, c in enumerate(det_class_ids)])
full_masks = [utils.unmold_mask(m, box, image.shape) for m, box in zip(det_masks, det_boxes)]
count = min(4, len(det_masks))
if count:
    visualize.display_images(list(det_masks[:count]) + [m.astype(np.uint8) for m in full_masks[:count]],
                             titles=[f"28x28 {dataset.class_names[c]}" for c in det_class_ids[:count]]
                             + ["pasted"] * count, cols=count, cmap="Blues")
else:
    print("no detections to show masks for")
'''),
    md("""
## Feature maps

A few channels of the pyramid level P2 (stride 4) the heads pool from.
"""),
    code('''
features = model.run_graph([image], [("fpn_p2", model.keras_model.get_layer("fpn_p2").output)])
p2 = features["fpn_p2"][0]
visualize.display_images([image] + [p2[..., c] for c in range(7)],
                         titles=["image"] + [f"P2 channel {c}" for c in range(7)], cols=4);
'''),
]


############################################################
#  inspect_weights.ipynb
############################################################

INSPECT_WEIGHTS = [
    md("""
# Inspecting the weights

Statistics of every weight of a model and histograms of a few layers. Weights that are
NaN, that all share one value or that grow very large are flagged: the first place to look
when training goes wrong.

The model loads the newest shapes checkpoint under `MODEL_DIR`, the repository's `logs/`,
when there is one (from `make demo` or `train_shapes.ipynb`), and shows its initial
weights otherwise.
"""),
    code(SETUP),
    code('''
from mrcnn.training import iter_layers

class InferenceConfig(ShapesConfig):
    IMAGES_PER_GPU = 1

config = InferenceConfig()
model = modellib.MaskRCNN(mode="inference", config=config, model_dir=MODEL_DIR)
try:
    weights_path = model.find_last()
    model.load_weights(weights_path, by_name=True)
except FileNotFoundError:
    print("No shapes checkpoint under", MODEL_DIR, "- showing the initial weights.")
'''),
    md("## Statistics of every weight"),
    code('''
visualize.display_weight_stats(model)
'''),
    md("""
## Histograms

Layers are found by their upstream names, nested models included (`rpn_conv_shared` lives
in `rpn_model`).
"""),
    code('''
layers = {layer.name: layer for layer in iter_layers(model.keras_model)}
names = ["conv1", "res2a_branch2a", "res5b_branch2b", "fpn_c5p5", "fpn_p2",
         "rpn_conv_shared", "mrcnn_class_conv1", "mrcnn_class_logits", "mrcnn_mask"]
names = [name for name in names if name in layers]
weights = [(f"{name}/{w.name}", np.asarray(w.numpy()).ravel())
           for name in names for w in layers[name].weights]

cols = 4
rows = -(-len(weights) // cols)
fig, axes = plt.subplots(rows, cols, figsize=(16, 3 * rows), squeeze=False)
for ax, (title, values) in zip(axes.ravel(), weights):
    ax.hist(values, bins=50)
    ax.set_title(f"{title} {values.size}", fontsize=9)
for ax in axes.ravel()[len(weights):]:
    ax.axis("off")
fig.tight_layout()
plt.show()
'''),
]


############################################################
#  demo.ipynb
############################################################

DEMO = [
    md("""
# Demo: detect shapes

Load a trained shapes model and detect instances on new images. The weights are the newest
shapes checkpoint under `MODEL_DIR`, the repository's `logs/` (from `make demo` or
`train_shapes.ipynb`); when there is none, the next cell trains the demo recipe first (about ten minutes on two CPU cores; a few steps in
quick mode, which detect little).
"""),
    code(SETUP),
    code(TRAIN_HELPER),
    code('''
class InferenceConfig(ShapesConfig):
    IMAGES_PER_GPU = 4   # detect() takes any number of images and batches them

config = InferenceConfig()
model = modellib.MaskRCNN(mode="inference", config=config, model_dir=MODEL_DIR)
weights_path = newest_checkpoint(model)
if weights_path is None and QUICK:
    weights_path = train_shapes(epochs=1, steps_per_epoch=10, images_per_gpu=2,
                                train_images=20, verbose=2)
elif weights_path is None:
    weights_path = train_shapes(epochs=DEMO_EPOCHS, steps_per_epoch=ShapesConfig.STEPS_PER_EPOCH,
                                images_per_gpu=ShapesConfig.IMAGES_PER_GPU, train_images=2000)
model.load_weights(weights_path, by_name=True);
'''),
    md("""
## Detect

New images the model has never seen (another seed), plus one larger image: `detect()`
resizes every image as in training and returns boxes and masks in the image's own pixels.
"""),
    code('''
import time

new_images = ShapesDataset()
new_images.load_shapes(4, 128, 128, seed=20_000)
new_images.prepare()
large = ShapesDataset()
large.load_shapes(1, 192, 256, seed=20_001)
large.prepare()
images = [new_images.load_image(i) for i in new_images.image_ids] + [large.load_image(0)]
class_names = new_images.class_names

start = time.perf_counter()
results = model.detect(images)
print(f"first call (builds the graph): {len(images)} images in {time.perf_counter() - start:.2f} s")
start = time.perf_counter()
results = model.detect(images)
print(f"second call: {len(images)} images in {time.perf_counter() - start:.2f} s")
'''),
    code('''
for image, r in zip(images, results):
    visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"], class_names,
                                r["scores"], figsize=(6, 6),
                                title=f"{image.shape[0]}x{image.shape[1]}: "
                                      f"{len(r['class_ids'])} instances")
'''),
]


############################################################
#  train_keypoints.ipynb
############################################################

# The shared first cell with the keypoint data set's imports and run name.
KEYPOINT_SETUP = SETUP.replace(
    "from mrcnn.shapes import DEMO_EPOCHS, ShapesConfig, ShapesDataset\n",
    "from mrcnn.keypoint_shapes import (KEYPOINT_NAMES, SIGMAS, SKELETON, KeypointShapesConfig,\n"
    "                                   KeypointShapesDataset)\n"
).replace("logs/shapes<YYYYmmddTHHMM>/mask_rcnn_shapes_<epoch>.h5 in",
          "logs/kpshapes<YYYYmmddTHHMM>/mask_rcnn_kpshapes_<epoch>.h5 in")

TRAIN_KEYPOINTS = [
    md("""
# Training keypoints

Mask R-CNN with its keypoint head (Keypoint R-CNN, section 5 of the paper) trained from
scratch on a synthetic data set: upright triangles whose three corners are the keypoints
(`mrcnn.keypoint_shapes`). Each detection then comes with a box, a mask and K keypoints.
Everything runs offline on a CPU: with the full settings (those of
`bench/bench_keypoint_shapes.py`, 500 steps) training takes five to ten minutes on two
cores and reaches a keypoint AP@OKS0.5 of about 0.95 on 100 held-out images.
"""),
    code(KEYPOINT_SETUP),
    md("""
## Configuration

Three settings make a keypoint model; the rest of `KeypointShapesConfig` is a small
from-scratch recipe (ResNet-18, narrow heads, a head of four 64-wide convolutions
instead of the paper's eight of 512, trained BatchNorm, warm-up and cosine decay):

* `NUM_KEYPOINTS = K`: adds the keypoint head (0, the default, builds no head);
* `KEYPOINT_NAMES`: the K names, in the order of the data set's keypoints;
* `KEYPOINT_FLIP_MAP`: pairs of names that a horizontal flip swaps (left and right).
"""),
    code('''
config = KeypointShapesConfig()
EPOCHS = 10                 # 10 x 50 steps of 8 images, as bench/bench_keypoint_shapes.py
TRAIN_IMAGES, VAL_IMAGES = 1000, 100
if QUICK:
    config.IMAGES_PER_GPU = 2
    config.STEPS_PER_EPOCH = 4
    config.VALIDATION_STEPS = 1
    EPOCHS, TRAIN_IMAGES, VAL_IMAGES = 1, 40, 8
print("NUM_KEYPOINTS:", config.NUM_KEYPOINTS, " KEYPOINT_NAMES:", config.KEYPOINT_NAMES,
      " KEYPOINT_FLIP_MAP:", config.KEYPOINT_FLIP_MAP)
print("steps:", EPOCHS * config.STEPS_PER_EPOCH, " images per step:", config.BATCH_SIZE)
'''),
    md("""
## Data sets

A keypoint data set is a `Dataset` with one more method, `load_keypoints(image_id)`:
float32 [N, K, 3] rows (x, y, v), aligned with the N instances of `load_mask`. (x, y) are
(column, row) pixel indices, COCO's frame; v is COCO's visibility: 0 not labelled,
1 labelled but occluded, 2 visible (1 and 2 both train). Here a disc drawn over a
corner makes it occluded and a tenth of the corners are left unlabelled, as an
annotator skips points.

Image k is drawn from its seed and k: the training images (seed 0) and the held-out
images (seed 10 000) never change and never overlap.
"""),
    code('''
dataset_train = KeypointShapesDataset()
dataset_train.load_triangles(TRAIN_IMAGES, config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1], seed=0)
dataset_train.prepare()

dataset_val = KeypointShapesDataset()
dataset_val.load_triangles(VAL_IMAGES, config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1],
                           seed=10_000)
dataset_val.prepare()
print("training images:", len(dataset_train.image_ids),
      " held-out images:", len(dataset_val.image_ids))

keypoints = dataset_train.load_keypoints(0)
masks, class_ids = dataset_train.load_mask(0)
print("image 0:", masks.shape[-1], "instance(s), keypoints", keypoints.shape)
for name, (x, y, v) in zip(KEYPOINT_NAMES, keypoints[0]):
    print(f"  {name:>12}: x={x:4.0f} y={y:4.0f} v={v:.0f}")
'''),
    code('''
# Ground truth of a few training images: masks, boxes and the labelled keypoints joined
# by the skeleton (left), the keypoints with their names (right).
image_ids = [0, 1, 2]
fig, axes = plt.subplots(len(image_ids), 2, figsize=(8, 4 * len(image_ids)), squeeze=False)
for row, image_id in enumerate(image_ids):
    image = dataset_train.load_image(image_id)
    masks, class_ids = dataset_train.load_mask(image_id)
    points = dataset_train.load_keypoints(image_id)
    visualize.display_instances(image, utils.extract_bboxes(masks), masks, class_ids,
                                dataset_train.class_names, ax=axes[row, 0],
                                keypoints=points, skeleton=SKELETON,
                                title=f"image {image_id}: {len(class_ids)} triangle(s)")
    visualize.display_keypoints(image, points, skeleton=SKELETON, names=KEYPOINT_NAMES,
                                ax=axes[row, 1], title="labelled keypoints (v > 0)")
plt.show()
'''),
    md("""
## Your own keypoints

The same steps as for masks, plus `load_keypoints` and the keypoint settings:

```python
class MyDataset(utils.Dataset):
    def load_mask(self, image_id):        # bool [H, W, N], int32 [N] as always
        ...
    def load_keypoints(self, image_id):   # float32 [N, K, 3] (x, y, v), rows as load_mask's
        ...

class MyConfig(Config):
    NAME = "mine"
    NUM_CLASSES = 1 + 1
    NUM_KEYPOINTS = 4
    KEYPOINT_NAMES = ["head", "tail", "left_fin", "right_fin"]
    KEYPOINT_FLIP_MAP = [("left_fin", "right_fin")]   # () when nothing is mirrored
```

Training checks the keypoints as it checks masks (shape, N, v, points outside the image)
and names the image of a bad one. Resizing, cropping, imgaug/albumentations augmentation
and flips move the keypoints with the image; a flip swaps the pairs of
`KEYPOINT_FLIP_MAP`, so "left" stays the image's left. For COCO person keypoints see
`samples/coco/coco.py --keypoints`.
"""),
    md("""
## Training

Horizontal flips (`iaa.Fliplr(0.5)`) double the data; thanks to the flip map the left
and right corners keep their names. `mrcnn_keypoint_loss`, the softmax cross-entropy
over each keypoint's heatmap cells, joins the five Mask R-CNN losses in the progress bar.
"""),
    code('''
from mrcnn.imgaug_compat import iaa

keras.utils.set_random_seed(0)
model = modellib.MaskRCNN(mode="training", config=config, model_dir=MODEL_DIR)
history = model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE,
                      epochs=EPOCHS, layers="all", augmentation=iaa.Fliplr(0.5))
'''),
    code('''
# The total loss and the keypoint loss per epoch (training and validation).
epochs = np.arange(1, len(history.history["loss"]) + 1)
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, name in zip(axes, ("loss", "mrcnn_keypoint_loss")):
    ax.plot(epochs, history.history[name], marker="o", label=name)
    ax.plot(epochs, history.history["val_" + name], marker="o", label="val_" + name)
    ax.set_xlabel("epoch")
    ax.legend()
plt.show()
'''),
    md("""
## Detection

An inference model of the same configuration loads the newest checkpoint. `detect()`
results gain `"keypoints"`: float32 [N, K, 3] rows (x, y, score) aligned with `"rois"`,
in the original image's pixels; the score is the softmax probability of the heatmap
cell the keypoint was read from. `model.detect_tiled`, for images larger than the model,
returns them too, merged across the tiles.
"""),
    code('''
class InferenceConfig(KeypointShapesConfig):
    IMAGES_PER_GPU = 4              # detect() batches any number of images by this size
    DETECTION_MIN_CONFIDENCE = 0.5

inference_config = InferenceConfig()
model = modellib.MaskRCNN(mode="inference", config=inference_config, model_dir=MODEL_DIR)
model.load_weights(model.find_last(), by_name=True);
'''),
    code('''
# Ground truth (left) and detections with their keypoints (right) on held-out images.
image_ids = dataset_val.image_ids[:3]
images = [dataset_val.load_image(i) for i in image_ids]
results = model.detect(images)
fig, axes = plt.subplots(len(image_ids), 2, figsize=(8, 4 * len(image_ids)), squeeze=False)
for row, (image_id, image, r) in enumerate(zip(image_ids, images, results)):
    masks, class_ids = dataset_val.load_mask(image_id)
    visualize.display_instances(image, utils.extract_bboxes(masks), masks, class_ids,
                                dataset_val.class_names, ax=axes[row, 0],
                                keypoints=dataset_val.load_keypoints(image_id),
                                skeleton=SKELETON, title=f"image {image_id}: ground truth")
    visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"],
                                dataset_val.class_names, r["scores"], ax=axes[row, 1],
                                keypoints=r["keypoints"], skeleton=SKELETON,
                                title=f"image {image_id}: {len(r['class_ids'])} detections")
plt.show()

r = results[0]
print(f"image {image_ids[0]}: keypoints {r['keypoints'].shape}")
for i, points in enumerate(r["keypoints"]):
    print(f"detection {i} (score {r['scores'][i]:.3f}):",
          ", ".join(f"{name} ({x:.1f}, {y:.1f}) {s:.2f}"
                    for name, (x, y, s) in zip(KEYPOINT_NAMES, points)))
'''),
    md("""
## Evaluation: OKS keypoint AP

COCO scores keypoints by the object keypoint similarity of a detection and a ground
truth, OKS = mean over the labelled keypoints of exp(-d² / (2 a (2σ)²)), with d the
distance in pixels, a the ground truth's area (its mask's pixels) and σ one constant per
keypoint (COCO's 17 person sigmas for K = 17; here `SIGMAS`, 0.1 each). OKS takes the
place of the IoU: AP@OKS0.5 counts a detection as right when OKS ≥ 0.5, AP averages the
thresholds 0.5:0.95. `mrcnn.keypoint_eval.evaluate_keypoint_metrics` detects every image
and runs pycocotools' `COCOeval(iouType="keypoints")`.
"""),
    code('''
from mrcnn.keypoint_eval import evaluate_keypoint_metrics

metrics = evaluate_keypoint_metrics(model, dataset_val, sigmas=SIGMAS, verbose=1)
print(f"keypoint AP@OKS0.5 = {metrics['AP50']:.3f}   AP@OKS[0.5:0.95] = {metrics['AP']:.3f}   "
      f"({len(dataset_val.image_ids)} images)")
'''),
]


NOTEBOOKS = {
    "train_shapes.ipynb": TRAIN_SHAPES,
    "inspect_data.ipynb": INSPECT_DATA,
    "inspect_model.ipynb": INSPECT_MODEL,
    "inspect_weights.ipynb": INSPECT_WEIGHTS,
    "demo.ipynb": DEMO,
    "train_keypoints.ipynb": TRAIN_KEYPOINTS,
}


def build(name, cells):
    """The notebook `name` as an nbformat node, without outputs, with fixed cell ids."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"},
    }
    stem = name.rsplit(".", 1)[0].replace("_", "-")
    for index, (kind, text) in enumerate(cells):
        source = textwrap.dedent(text).strip("\n")
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source)
        cell.id = f"{stem}-{index:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(name):
    """The text of notebook `name` as this script writes it."""
    return nbformat.writes(build(name, NOTEBOOKS[name])) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="only compare the stored notebooks with the cells here")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = os.path.join(HERE, name)
        text = render(name)
        if args.check:
            with open(path, encoding="utf-8") as f:
                if f.read() != text:
                    stale.append(name)
            continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print("wrote", path)
    if stale:
        print("out of date (run notebooks/build_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

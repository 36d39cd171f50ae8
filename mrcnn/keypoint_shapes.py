"""Keypoint shapes: a synthetic keypoint data set of upright triangles with three vertex keypoints.

It needs no download and renders any number of images of any size, with exact masks and
keypoints; the keypoint demo, its notebook section and the tests train on it::

    dataset = KeypointShapesDataset()
    dataset.load_triangles(200, 64, 64, seed=0)
    dataset.prepare()
    image = dataset.load_image(0)               # uint8 [64, 64, 3]
    masks, class_ids = dataset.load_mask(0)     # bool [64, 64, N], int32 [N] (all 1)
    keypoints = dataset.load_keypoints(0)       # float32 [N, 3, 3] (x, y, v)

Each triangle has its base on one row and its apex above it, anywhere between the base's
ends, so the three keypoints are KEYPOINT_NAMES = ("apex", "left_corner", "right_corner"):
the apex and the base's left and right ends. Left and right are the image's, so a
horizontal flip swaps them (FLIP_MAP) and a model must tell them apart.

Visibility, as COCO's: 2 visible; 1 occluded, when a vertex pixel is covered by a
triangle drawn later or by an occluder (a disc drawn on top, not an instance); 0 not
labelled, for a share UNLABELLED_RATE of the keypoints chosen at random (as an
annotator skipping points).

Frame: (x, y) = (column, row) pixel indices; a vertex keypoint is the centre of the
vertex pixel that ``cv2.fillPoly`` fills. The spec of image k depends only on ``seed``
and k, so image k is the same whatever ``count`` is.
"""
import cv2
import numpy as np

from mrcnn.config import Config
from mrcnn.dataset import Dataset
from mrcnn.shapes import _box_overlap

__all__ = ["KeypointShapesDataset", "KeypointShapesConfig", "KEYPOINT_NAMES", "FLIP_MAP",
           "SKELETON", "SIGMAS", "UNLABELLED_RATE"]

KEYPOINT_NAMES = ("apex", "left_corner", "right_corner")
FLIP_MAP = (("left_corner", "right_corner"),)
SKELETON = ((0, 1), (1, 2), (2, 0))
# OKS constants of the three vertices (COCO's person sigmas lie in 0.025..0.107): 0.1
# makes OKS 0.5 a mean error of about 1/6 of the square root of the triangle's area.
SIGMAS = (0.1, 0.1, 0.1)
UNLABELLED_RATE = 0.1

MAX_TRIANGLES = 3
OCCLUDER_RATE = 0.5        # chance that an image gets an occluding disc over one vertex
MAX_BOX_IOU = 0.2
MAX_BOX_COVER = 0.4
PLACEMENT_TRIES = 10
MIN_COLOR_DISTANCE = 80


def triangle_vertices(triangle):
    """int32 [3, 2] (x, y) vertices: apex, left corner, right corner."""
    apex_x, apex_y, base_y, left_x, right_x = triangle
    return np.array([[apex_x, apex_y], [left_x, base_y], [right_x, base_y]], dtype=np.int32)


def triangle_box(triangle):
    """(y1, x1, y2, x2) of a triangle, y2/x2 exclusive."""
    apex_x, apex_y, base_y, left_x, right_x = triangle
    return (apex_y, left_x, base_y + 1, right_x + 1)


def _fill_triangle(canvas, triangle, color):
    cv2.fillPoly(canvas, [triangle_vertices(triangle)], color)
    return canvas


def _fill_disc(canvas, disc, color):
    x, y, r = disc
    cv2.circle(canvas, (int(x), int(y)), int(r), color, -1)
    return canvas


class KeypointShapesDataset(Dataset):
    """Synthetic upright triangles with apex / left / right keypoints (module docstring)."""

    def load_triangles(self, count, height, width, seed=0):
        """Adds the class "triangle" and ``count`` images of ``height`` x ``width`` pixels.

        Image k is drawn by ``np.random.RandomState([seed, k])``; images are rendered on
        demand by :meth:`load_image`.
        """
        self.add_class("kpshapes", 1, "triangle")
        for i in range(count):
            rng = np.random.RandomState([int(seed), i])
            spec = self.random_image(height, width, rng)
            self.add_image("kpshapes", image_id=i, path=None, width=width, height=height,
                           **spec)

    # ------------------------------------------------------------------ generation
    @staticmethod
    def _color(rng, other):
        while True:
            color = tuple(int(c) for c in rng.randint(0, 256, 3))
            if max(abs(a - b) for a, b in zip(color, other)) >= MIN_COLOR_DISTANCE:
                return color

    @staticmethod
    def random_triangle(height, width, rng):
        """(apex_x, apex_y, base_y, left_x, right_x) of a triangle inside the image.

        Base width and height lie in [side / 4, side / 2] (side = min(height, width)); the
        apex lies above the base, at least a fifth of the base from either end.
        """
        side = min(height, width)
        w = int(rng.randint(side // 4, side // 2 + 1))
        h = int(rng.randint(side // 4, side // 2 + 1))
        left_x = int(rng.randint(0, width - w))
        apex_y = int(rng.randint(0, height - h))
        margin = max(1, w // 5)
        apex_x = int(rng.randint(left_x + margin, left_x + w - margin + 1))
        return apex_x, apex_y, apex_y + h, left_x, left_x + w

    def random_image(self, height, width, rng):
        """The spec of one image: dict of bg_color, triangles, colors, discs, disc_colors,
        labelled (bool [T, 3] per triangle and keypoint)."""
        bg_color = tuple(int(c) for c in rng.randint(0, 256, 3))
        triangles, boxes = [], []
        for _ in range(int(rng.randint(1, MAX_TRIANGLES + 1))):
            for _ in range(PLACEMENT_TRIES):
                triangle = self.random_triangle(height, width, rng)
                box = triangle_box(triangle)
                if all(iou <= MAX_BOX_IOU and cover <= MAX_BOX_COVER
                       for iou, cover in (_box_overlap(box, b) for b in boxes)):
                    triangles.append(triangle)
                    boxes.append(box)
                    break
        colors = [self._color(rng, bg_color) for _ in triangles]
        discs, disc_colors = [], []
        if rng.rand() < OCCLUDER_RATE:
            target = triangle_vertices(triangles[int(rng.randint(len(triangles)))])
            x, y = target[int(rng.randint(3))]
            radius = max(2, min(height, width) // 16)
            discs.append((int(x + rng.randint(-1, 2)), int(y + rng.randint(-1, 2)), radius))
            disc_colors.append(self._color(rng, bg_color))
        labelled = rng.rand(len(triangles), 3) >= UNLABELLED_RATE
        return {"bg_color": bg_color, "triangles": triangles, "colors": colors,
                "discs": discs, "disc_colors": disc_colors, "labelled": labelled.tolist()}

    # ------------------------------------------------------------------ loading
    def load_image(self, image_id):
        """Renders image ``image_id``: uint8 [height, width, 3] RGB (triangles, then discs)."""
        info = self._info(image_id)
        if info["source"] != "kpshapes":
            return super().load_image(image_id)
        image = np.empty([info["height"], info["width"], 3], dtype=np.uint8)
        image[:] = np.array(info["bg_color"], dtype=np.uint8)
        for triangle, color in zip(info["triangles"], info["colors"]):
            _fill_triangle(image, triangle, color)
        for disc, color in zip(info["discs"], info["disc_colors"]):
            _fill_disc(image, disc, color)
        return image

    def _layers(self, info):
        """bool [T, H, W] visible pixels of each triangle (later triangles and discs on top)."""
        height, width = info["height"], info["width"]
        masks = np.zeros([len(info["triangles"]), height, width], dtype=bool)
        canvas = np.zeros([height, width], dtype=np.uint8)
        for i, triangle in enumerate(info["triangles"]):
            canvas[:] = 0
            masks[i] = _fill_triangle(canvas, triangle, 1).astype(bool)
        covered = np.zeros([height, width], dtype=bool)
        for disc in info["discs"]:
            canvas[:] = 0
            covered |= _fill_disc(canvas, disc, 1).astype(bool)
        for i in range(len(masks) - 1, -1, -1):
            masks[i] &= ~covered
            covered |= masks[i]
        return masks

    def load_mask(self, image_id):
        """Exact masks: bool [H, W, N], class ids int32 [N] (1 = triangle when it is the only
        source). A triangle hidden entirely is left out (with its keypoints)."""
        info = self._info(image_id)
        if info["source"] != "kpshapes":
            return super().load_mask(image_id)
        layers = self._layers(info)
        keep = layers.any(axis=(1, 2))
        class_id = self.map_source_class_id("kpshapes.1")
        return (np.ascontiguousarray(np.moveaxis(layers[keep], 0, -1)),
                np.full([int(keep.sum())], class_id, dtype=np.int32))

    def load_keypoints(self, image_id):
        """float32 [N, 3, 3] (x, y, v) rows aligned with :meth:`load_mask`.

        v = 2 when the vertex pixel is part of its own triangle's visible mask, 1 when a
        later triangle or a disc covers it, 0 for unlabelled points (then x = y = 0).
        """
        info = self._info(image_id)
        if info["source"] != "kpshapes":
            return super().load_keypoints(image_id)
        layers = self._layers(info)
        rows = []
        for i, triangle in enumerate(info["triangles"]):
            if not layers[i].any():
                continue
            row = np.zeros([3, 3], dtype=np.float32)
            for k, (x, y) in enumerate(triangle_vertices(triangle)):
                if info["labelled"][i][k]:
                    row[k] = (x, y, 2 if layers[i][y, x] else 1)
            rows.append(row)
        return np.array(rows, dtype=np.float32).reshape(-1, 3, 3)

    def image_reference(self, image_id):
        """The image's triangles: list of (apex_x, apex_y, base_y, left_x, right_x)."""
        info = self._info(image_id)
        if info["source"] == "kpshapes":
            return info["triangles"]
        return super().image_reference(image_id)


class KeypointShapesConfig(Config):
    """Keypoints (and masks) of KeypointShapesDataset on 64x64 images, from scratch on a CPU.

    A ResNet-18 backbone, narrow pyramid and heads, and a keypoint head of four 64-wide
    convolutions instead of the paper's eight of 512.
    """
    NAME = "kpshapes"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 8
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 2
    LOG_EVERY_N_STEPS = 10

    BACKBONE = "resnet18"
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 128
    RPN_CONV_SIZE = 64
    MASK_HEAD_CONV_SIZE = 32
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 24, 32, 48)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    POST_NMS_ROIS_TRAINING = 128
    POST_NMS_ROIS_INFERENCE = 64
    TRAIN_ROIS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 4
    DETECTION_MAX_INSTANCES = 8
    MINI_MASK_SHAPE = (28, 28)

    ROI_INCLUDE_GT_BOXES = True
    ROI_FILL_NEGATIVES = True

    NUM_KEYPOINTS = len(KEYPOINT_NAMES)
    KEYPOINT_NAMES = KEYPOINT_NAMES
    KEYPOINT_FLIP_MAP = FLIP_MAP
    KEYPOINT_HEAD_CONV_SIZE = 64
    KEYPOINT_HEAD_CONV_COUNT = 4

    TRAIN_BN = None
    LEARNING_RATE = 0.01
    LEARNING_RATE_WARMUP_STEPS = 50
    LEARNING_RATE_SCHEDULE = "cosine"
    LEARNING_RATE_MIN_FACTOR = 0.02
    SEED = 0

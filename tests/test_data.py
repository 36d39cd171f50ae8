"""Training input path: load_image_gt, build_rpn_targets, detection targets, DataGenerator."""
import math

import numpy as np
import pytest

from mrcnn import data
from mrcnn.config import Config
from mrcnn.dataset import Dataset
from mrcnn.shapes import ShapesDataset

STD = np.array([0.1, 0.1, 0.2, 0.2])


class TinyConfig(Config):
    NAME = "tiny"
    NUM_CLASSES = 4
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    IMAGES_PER_GPU = 2
    MAX_GT_INSTANCES = 6
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    TRAIN_ROIS_PER_IMAGE = 16


def rpn_config(count):
    config = TinyConfig()
    config.RPN_TRAIN_ANCHORS_PER_IMAGE = count
    return config


def shapes(count=8, height=96, width=120, seed=1):
    dataset = ShapesDataset()
    dataset.load_shapes(count, height, width, seed=seed)
    dataset.prepare()
    return dataset


# ----------------------------------------------------------------------------- molding
def test_mold_and_unmold_image():
    config = TinyConfig()
    image = np.array([[[200, 117, 104], [124, 0, 255]]], dtype=np.uint8)
    molded = data.mold_image(image, config)
    assert molded.dtype == np.float32
    np.testing.assert_allclose(molded[0, 0], [76.3, 0.2, 0.1], atol=1e-4)
    np.testing.assert_allclose(molded[0, 1], [0.3, -116.8, 151.1], atol=1e-4)
    back = data.unmold_image(molded, config)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, image)


def test_image_meta_reexports():
    meta = data.compose_image_meta(7, (96, 120, 3), (128, 128, 3), (13, 0, 115, 128), 0.5,
                                   [1, 1, 0])
    parsed = data.parse_image_meta(meta[None])
    assert parsed["image_id"][0] == 7
    np.testing.assert_array_equal(parsed["window"][0], [13, 0, 115, 128])
    assert callable(data.parse_image_meta_graph)


# ----------------------------------------------------------------------------- RPN targets
# Hand-made anchors (pixels) and GT boxes. IoUs worked out by hand:
#   g0 = [0,0,10,10] (class 1):  a0 1.0; a1 100/200 = 0.5; a2 50/150 = 1/3
#   g1 = [20,20,30,34] (class 2): a3 100/140 = 0.714
#   g2 = [40,40,50,60] (class 1): a4 100/200 = 0.5 and a5 100/200 = 0.5 (tie, both best)
#   crowd [100,100,101,101]: a6 1/100 = 0.01 >= 0.001, so a6 can't be negative
#   a7, a8 overlap nothing.
HAND_ANCHORS = np.array([
    [0, 0, 10, 10],        # a0 positive (IoU 1)
    [0, 0, 10, 20],        # a1 neutral (0.5)
    [0, 5, 10, 15],        # a2 neutral (1/3)
    [20, 20, 30, 30],      # a3 positive (0.714 >= 0.7)
    [40, 40, 50, 50],      # a4 positive (best of g2, tied)
    [40, 50, 50, 60],      # a5 positive (best of g2, tied)
    [100, 100, 110, 110],  # a6 neutral (touches the crowd box)
    [200, 200, 210, 210],  # a7 negative
    [0, 20, 10, 30],       # a8 negative
], dtype=np.float64)
HAND_GT_BOXES = np.array([[0, 0, 10, 10], [20, 20, 30, 34], [40, 40, 50, 60],
                          [100, 100, 101, 101]], dtype=np.int32)
HAND_GT_CLASS_IDS = np.array([1, 2, 1, -1], dtype=np.int32)


def test_rpn_targets_hand_made():
    match, bbox = data.build_rpn_targets((256, 256, 3), HAND_ANCHORS, HAND_GT_CLASS_IDS,
                                         HAND_GT_BOXES, rpn_config(16),
                                         rng=np.random.RandomState(0))
    assert match.dtype == np.int32 and bbox.dtype == np.float32
    assert bbox.shape == (16, 4)
    np.testing.assert_array_equal(match, [1, 0, 0, 1, 1, 1, 0, -1, -1])
    # Deltas of a0, a3, a4, a5 in anchor order, divided by the std dev.
    expected = np.zeros((16, 4))
    expected[1] = [0, 0.2 / 0.1, 0, math.log(1.4) / 0.2]   # a3: centre x 25 -> 27, w 10 -> 14
    expected[2] = [0, 0.5 / 0.1, 0, math.log(2) / 0.2]     # a4: centre x 45 -> 50, w 10 -> 20
    expected[3] = [0, -0.5 / 0.1, 0, math.log(2) / 0.2]    # a5: centre x 55 -> 50
    np.testing.assert_allclose(bbox, expected, atol=1e-5)


def test_rpn_targets_without_crowd_box_anchor_becomes_negative():
    match, _ = data.build_rpn_targets((256, 256, 3), HAND_ANCHORS, HAND_GT_CLASS_IDS[:3],
                                      HAND_GT_BOXES[:3], rpn_config(16))
    np.testing.assert_array_equal(match, [1, 0, 0, 1, 1, 1, -1, -1, -1])


def test_rpn_targets_ignore_padding_rows():
    class_ids = np.concatenate([HAND_GT_CLASS_IDS[:3], [0, 0]])
    boxes = np.concatenate([HAND_GT_BOXES[:3], np.zeros((2, 4), np.int32)])
    match, bbox = data.build_rpn_targets((256, 256, 3), HAND_ANCHORS, class_ids, boxes,
                                         rpn_config(16))
    np.testing.assert_array_equal(match, [1, 0, 0, 1, 1, 1, -1, -1, -1])
    assert np.abs(bbox[:4]).sum() > 0


def test_rpn_targets_gt_overlapping_no_anchor_marks_nothing_positive():
    # A GT box far from every anchor has best IoU 0: it must not make IoU-0 anchors positive.
    match, bbox = data.build_rpn_targets((512, 512, 3), HAND_ANCHORS[:3], np.array([1]),
                                         np.array([[300, 300, 310, 310]]), rpn_config(16))
    np.testing.assert_array_equal(match, [-1, -1, -1])
    np.testing.assert_array_equal(bbox, 0)


def test_rpn_targets_only_crowd():
    match, _ = data.build_rpn_targets((256, 256, 3), HAND_ANCHORS, np.array([-1]),
                                      np.array([[100, 100, 101, 101]]), rpn_config(16))
    np.testing.assert_array_equal(match, [-1, -1, -1, -1, -1, -1, 0, -1, -1])


def grid_anchors(size=64, step=4, sides=(6, 12, 20)):
    """Square anchors centred every ``step`` pixels, for random test cases."""
    anchors = [[y - s / 2, x - s / 2, y + s / 2, x + s / 2]
               for y in range(0, size, step) for x in range(0, size, step) for s in sides]
    return np.array(anchors, dtype=np.float64)


def random_gt(rng, count, size=64):
    y1 = rng.randint(0, size - 12, count)
    x1 = rng.randint(0, size - 12, count)
    h = rng.randint(4, 12, count)
    w = rng.randint(4, 12, count)
    return np.stack([y1, x1, y1 + h, x1 + w], axis=1).astype(np.int32)


def test_rpn_subsampling_caps():
    rng = np.random.RandomState(5)
    anchors = grid_anchors(step=2)
    boxes = random_gt(rng, 6)
    class_ids = np.ones(6, np.int32)
    full, _ = data.build_rpn_targets((64, 64, 3), anchors, class_ids, boxes,
                                     rpn_config(10 ** 6))
    assert (full == 1).sum() > 16 and (full == -1).sum() > 32  # enough to subsample
    for seed in range(3):
        match, bbox = data.build_rpn_targets((64, 64, 3), anchors, class_ids, boxes,
                                             rpn_config(32), rng=np.random.default_rng(seed))
        positives = np.flatnonzero(match == 1)
        assert len(positives) == 16
        assert (match != 0).sum() == 32
        # Only relabelled to neutral, never flipped between positive and negative.
        np.testing.assert_array_equal(full[match != 0], match[match != 0])
        assert not bbox[16:].any()
    # Same seed, same targets.
    a = data.build_rpn_targets((64, 64, 3), anchors, class_ids, boxes, rpn_config(32),
                               rng=np.random.default_rng(9))
    b = data.build_rpn_targets((64, 64, 3), anchors, class_ids, boxes, rpn_config(32),
                               rng=np.random.default_rng(9))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def reference_rpn_targets(anchors, gt_class_ids, gt_boxes, count, std, rng):
    """Upstream's algorithm written out anchor by anchor (slow, plain Python)."""
    def iou(a, b):
        h = min(a[2], b[2]) - max(a[0], b[0])
        w = min(a[3], b[3]) - max(a[1], b[1])
        inter = max(h, 0) * max(w, 0)
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union

    crowd = [b for b, c in zip(gt_boxes, gt_class_ids) if c < 0]
    boxes = [b for b, c in zip(gt_boxes, gt_class_ids) if c > 0]
    match = np.zeros(len(anchors), np.int32)
    table = [[iou(a, b) for b in boxes] for a in anchors]
    best_of_gt = [max(table[i][j] for i in range(len(anchors))) for j in range(len(boxes))]
    argmax = []
    for i, a in enumerate(anchors):
        row = table[i]
        best = max(row)
        argmax.append(row.index(best))
        near_crowd = any(iou(a, c) >= 0.001 for c in crowd)
        if best < 0.3 and not near_crowd:
            match[i] = -1
        if any(row[j] == best_of_gt[j] for j in range(len(boxes))):
            match[i] = 1
        if best >= 0.7:
            match[i] = 1
    def subsample(value, keep):
        # A uniform subset of `keep` entries, drawn from its smaller side: the entries
        # to drop when they are fewer than those to keep, else the entries to keep.
        ids = np.where(match == value)[0]
        extra = len(ids) - keep
        if extra <= 0:
            return
        if extra <= keep:
            match[rng.choice(ids, extra, replace=False)] = 0
        else:
            kept = set(rng.choice(ids, keep, replace=False).tolist())
            for i in ids:
                if i not in kept:
                    match[i] = 0

    subsample(1, count // 2)
    subsample(-1, count - np.sum(match == 1))
    deltas = np.zeros((count, 4))
    for k, i in enumerate(np.where(match == 1)[0]):
        a, g = anchors[i], boxes[argmax[i]]
        ah, aw, gh, gw = a[2] - a[0], a[3] - a[1], g[2] - g[0], g[3] - g[1]
        deltas[k] = [(g[0] + gh / 2 - a[0] - ah / 2) / ah, (g[1] + gw / 2 - a[1] - aw / 2) / aw,
                     math.log(gh / ah), math.log(gw / aw)]
    return match, deltas / std


@pytest.mark.parametrize("count", [10 ** 6, 40])
def test_rpn_targets_match_slow_reference(count):
    rng = np.random.RandomState(3)
    anchors = grid_anchors()
    boxes = random_gt(rng, 5)
    boxes[4] = [30, 30, 34, 33]
    class_ids = np.array([1, 3, 2, 1, -1], np.int32)
    match, bbox = data.build_rpn_targets((64, 64, 3), anchors, class_ids, boxes,
                                         rpn_config(count), rng=np.random.RandomState(11))
    ref_match, ref_bbox = reference_rpn_targets(anchors, class_ids, boxes, count, STD,
                                                np.random.RandomState(11))
    assert (ref_match == 1).sum() > 0 and (ref_match == -1).sum() > 0 and (ref_match == 0).sum()
    np.testing.assert_array_equal(match, ref_match)
    np.testing.assert_allclose(bbox, ref_bbox[:count], atol=1e-4)


# ----------------------------------------------------------------------------- load_image_gt
def expand_nearest(box, mini):
    """Paste a mini mask back into its box (nearest neighbour), independent of utils."""
    y1, x1, y2, x2 = box
    rows = (np.arange(y2 - y1) + 0.5) * mini.shape[0] / (y2 - y1)
    cols = (np.arange(x2 - x1) + 0.5) * mini.shape[1] / (x2 - x1)
    return mini[rows.astype(int)][:, cols.astype(int)]


def mask_extent(mask):
    ys, xs = np.nonzero(mask)
    return [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]


def test_load_image_gt_full_masks():
    config = TinyConfig()
    dataset = shapes()
    for image_id in range(4):
        image, meta, class_ids, bbox, mask = data.load_image_gt(dataset, config, image_id,
                                                                use_mini_mask=False)
        n = len(class_ids)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert meta.shape == (config.IMAGE_META_SIZE,) and meta.dtype == np.float32
        assert class_ids.dtype == np.int32 and bbox.dtype == np.int32 and bbox.shape == (n, 4)
        assert mask.shape == (128, 128, n) and mask.dtype == bool
        _, original_ids = dataset.load_mask(image_id)
        np.testing.assert_array_equal(class_ids, original_ids)
        for i in range(n):
            assert list(bbox[i]) == mask_extent(mask[:, :, i])
        # 96 x 120 -> scale 128 / 120, 102 x 128, padded 13 rows above and below.
        np.testing.assert_allclose(meta[:12], [image_id, 96, 120, 3, 128, 128, 3,
                                               13, 0, 115, 128, 128 / 120], rtol=1e-6)
        np.testing.assert_array_equal(meta[12:], [1, 1, 1, 1])
        assert not image[:13].any() and not image[115:].any()
        assert not mask[:13].any() and not mask[115:].any()


def test_load_image_gt_mini_masks_expand_back():
    config = TinyConfig()
    dataset = shapes()
    for image_id in range(4):
        _, _, class_ids, bbox, full = data.load_image_gt(dataset, config, image_id,
                                                         use_mini_mask=False)
        _, _, class_ids_m, bbox_m, mini = data.load_image_gt(dataset, config, image_id,
                                                             use_mini_mask=True)
        np.testing.assert_array_equal(bbox, bbox_m)
        np.testing.assert_array_equal(class_ids, class_ids_m)
        assert mini.shape == (56, 56, len(class_ids)) and mini.dtype == bool
        for i, box in enumerate(bbox):
            y1, x1, y2, x2 = box
            back = expand_nearest(box, mini[:, :, i])
            truth = full[y1:y2, x1:x2, i]
            iou = (back & truth).sum() / (back | truth).sum()
            assert iou > 0.9, iou


class GappyDataset(Dataset):
    """Three 32 x 32 images; image 1 has no instance; image 2 has an empty instance mask."""

    def load(self):
        self.add_class("toy", 1, "thing")
        self.add_class("toy", 2, "other")
        self.add_class("extra", 1, "elsewhere")
        for i in range(3):
            self.add_image("toy", image_id=i, path=None)
        self.prepare()
        return self

    def load_image(self, image_id):
        return np.full((32, 32, 3), 40 * image_id, dtype=np.uint8)

    def load_mask(self, image_id):
        mask = np.zeros((32, 32, 2), dtype=bool)
        if image_id == 1:
            return mask[:, :, :0], np.zeros(0, np.int32)
        mask[4:12, 6:20, 0] = True  # image 2 keeps instance 1 empty
        if image_id == 0:
            mask[20:30, 2:9, 1] = True
        return mask, np.array([1, 2], np.int32)


class ToyConfig(Config):
    NAME = "toy"
    NUM_CLASSES = 4
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    IMAGES_PER_GPU = 2
    MAX_GT_INSTANCES = 3
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    USE_MINI_MASK = False


def test_load_image_gt_drops_empty_instances_and_sets_active_classes():
    dataset = GappyDataset().load()
    image, meta, class_ids, bbox, mask = data.load_image_gt(dataset, ToyConfig(), 2)
    # 32 -> 64: scale 2, no padding.
    np.testing.assert_array_equal(class_ids, [1])
    np.testing.assert_array_equal(bbox, [[8, 12, 24, 40]])
    assert mask.shape == (64, 64, 1)
    np.testing.assert_array_equal(meta[7:12], [0, 0, 64, 64, 2])
    # Classes: BG, toy.1, toy.2, extra.1 -> only the first three are active for "toy".
    np.testing.assert_array_equal(meta[12:], [1, 1, 1, 0])


def test_load_image_gt_augmentation():
    from mrcnn.imgaug_compat import iaa
    config = TinyConfig()
    dataset = shapes()
    plain = data.load_image_gt(dataset, config, 3, use_mini_mask=False)
    flipped = data.load_image_gt(dataset, config, 3, use_mini_mask=False,
                                 augmentation=iaa.Fliplr(1.0))
    np.testing.assert_array_equal(flipped[0], plain[0][:, ::-1])
    np.testing.assert_array_equal(flipped[4], plain[4][:, ::-1])
    expected = plain[3].copy()
    expected[:, [1, 3]] = 128 - plain[3][:, [3, 1]]
    np.testing.assert_array_equal(flipped[3], expected)
    # Colour augmenters change the image only, not the masks.
    brighter = data.load_image_gt(dataset, config, 3, use_mini_mask=False,
                                  augmentation=iaa.Sequential([iaa.Add(30)]))
    assert not np.array_equal(brighter[0], plain[0])
    np.testing.assert_array_equal(brighter[4], plain[4])
    # A seeded rng makes a random augmenter reproducible.
    random_aug = iaa.Sequential([iaa.Fliplr(0.5), iaa.Affine(rotate=(-30, 30))])
    runs = [data.load_image_gt(dataset, config, 3, augmentation=random_aug,
                               rng=np.random.default_rng(4)) for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_load_image_gt_has_upstreams_arguments_and_defaults():
    import inspect
    parameters = inspect.signature(data.load_image_gt).parameters
    upstream = [("dataset", None), ("config", None), ("image_id", None), ("augment", False),
                ("augmentation", None), ("use_mini_mask", False)]
    positional = [(p.name, None if p.default is p.empty else p.default)
                  for p in parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == upstream
    # Upstream's default gives full-image masks even when the config uses mini masks.
    config = TinyConfig()
    assert config.USE_MINI_MASK
    _, _, class_ids, _, mask = data.load_image_gt(shapes(), config, 0)
    assert mask.shape == (128, 128, len(class_ids))


def test_load_image_gt_positional_arguments_in_upstreams_order():
    from mrcnn.imgaug_compat import iaa
    config = TinyConfig()
    dataset = shapes()
    plain = data.load_image_gt(dataset, config, 3, False, None, False)
    flipped = data.load_image_gt(dataset, config, 3, False, iaa.Fliplr(1.0), True)
    np.testing.assert_array_equal(flipped[0], plain[0][:, ::-1])
    assert flipped[4].shape == (56, 56, len(plain[2]))
    # The flipped mini masks are the plain full masks, flipped, then minimised.
    expected = plain[4][:, ::-1]
    for i, (y1, x1, y2, x2) in enumerate(flipped[3]):
        back = expand_nearest((y1, x1, y2, x2), flipped[4][:, :, i])
        truth = expected[y1:y2, x1:x2, i]
        assert (back & truth).sum() / (back | truth).sum() > 0.9


def test_load_image_gt_deprecated_augment_flips_half_the_time(caplog):
    config = TinyConfig()
    dataset = shapes()
    plain = data.load_image_gt(dataset, config, 3)
    flips = 0
    with caplog.at_level("WARNING", logger="mrcnn.data"):
        for seed in range(40):
            image, _, _, _, mask = data.load_image_gt(dataset, config, 3, True,
                                                      rng=np.random.default_rng(seed))
            flipped = np.array_equal(image, plain[0][:, ::-1])
            assert flipped or np.array_equal(image, plain[0])
            if flipped:
                np.testing.assert_array_equal(mask, plain[4][:, ::-1])
            flips += flipped
    # Binomial(40, 0.5): 12..28 holds with probability > 0.99; measured 25 with these seeds.
    assert 12 <= flips <= 28, flips
    assert "'augment' is deprecated" in caplog.text
    # An augmenter given in augment's place is a clear error, not a random flip.
    from mrcnn.imgaug_compat import iaa
    with pytest.raises(TypeError, match="augmentation="):
        data.load_image_gt(dataset, config, 3, iaa.Fliplr(1.0))


# ----------------------------------------------------------------------------- random ROIs, heads
def test_generate_random_rois():
    boxes = np.array([[10, 10, 20, 30], [40, 40, 60, 50]], np.int32)
    rois = data.generate_random_rois((64, 64, 3), 50, np.array([1, 2]), boxes,
                                     rng=np.random.default_rng(0))
    assert rois.shape == (50, 4) and rois.dtype == np.int32
    assert np.all(rois[:, 2] > rois[:, 0]) and np.all(rois[:, 3] > rois[:, 1])
    assert rois.min() >= 0 and rois[:, [2, 3]].max() < 64
    per_box = int(0.9 * 50 / 2)  # 22 around each GT box
    around = rois[:per_box]
    # Box 0 grown by its size: y in [0, 30), x in [0, 50).
    assert around[:, [0, 2]].max() < 30 and around[:, [1, 3]].max() < 50


def test_build_detection_targets_hand_made():
    config = ToyConfig()
    config.TRAIN_ROIS_PER_IMAGE = 4
    config.ROI_POSITIVE_RATIO = 0.5
    gt_boxes = np.array([[10, 10, 30, 30]], np.int32)
    gt_masks = np.zeros((64, 64, 1), bool)
    gt_masks[10:30, 10:30, 0] = True
    rois = np.array([[10, 10, 30, 30],    # IoU 1: positive
                     [10, 20, 30, 40],    # IoU 200/600: negative
                     [11, 10, 31, 30]])   # IoU 380/420: positive
    out_rois, class_ids, bboxes, masks = data.build_detection_targets(
        rois, np.array([3], np.int32), gt_boxes, gt_masks, config,
        rng=np.random.default_rng(0))
    assert sorted(map(tuple, out_rois[:2])) == [(10, 10, 30, 30), (11, 10, 31, 30)]
    np.testing.assert_array_equal(class_ids, [3, 3, 0, 0])
    np.testing.assert_array_equal(out_rois[2:], [[10, 20, 30, 40]] * 2)
    for i in range(2):
        y1 = out_rois[i][0]
        # GT centre y 20, ROI centre y1 + 10: dy = (10 - y1) / 20.
        np.testing.assert_allclose(bboxes[i, 3], [(10 - y1) / 20 / 0.1, 0, 0, 0], atol=1e-6)
    assert np.abs(bboxes[:, :3]).sum() == 0 and np.abs(bboxes[2:]).sum() == 0
    exact = 0 if out_rois[0][0] == 10 else 1
    np.testing.assert_array_equal(masks[exact, :, :, 3], 1)
    assert masks[:, :, :, :3].sum() == 0 and masks[2:].sum() == 0
    # The shifted ROI's last row lies outside the mask.
    assert masks[1 - exact, -1, :, 3].max() < 1 and masks[1 - exact, 0, :, 3].min() == 1


# ----------------------------------------------------------------------------- DataGenerator
def test_data_generator_batch_layout():
    config = TinyConfig()
    dataset = shapes()
    generator = data.DataGenerator(dataset, config, seed=1)
    assert len(generator) == 4
    item = generator[0]
    assert isinstance(item, tuple) and len(item) == 1
    inputs = item[0]
    anchors = data.compute_anchors(config)
    expected = {
        "input_image": ((2, 128, 128, 3), np.float32),
        "input_image_meta": ((2, 16), np.float32),
        "input_rpn_match": ((2, len(anchors), 1), np.int32),
        "input_rpn_bbox": ((2, 64, 4), np.float32),
        "input_gt_class_ids": ((2, 6), np.int32),
        "input_gt_boxes": ((2, 6, 4), np.float32),
        "input_gt_masks": ((2, 56, 56, 6), bool),
    }
    assert set(inputs) == set(expected)
    for name, (shape, dtype) in expected.items():
        assert inputs[name].shape == shape, name
        assert inputs[name].dtype == dtype, name
    assert len(anchors) == 3 * (32 ** 2 + 16 ** 2 + 8 ** 2 + 4 ** 2 + 2 ** 2)
    for b in range(2):
        image_id = int(inputs["input_image_meta"][b, 0])
        image, _, class_ids, bbox, mask = data.load_image_gt(dataset, config, image_id,
                                                             use_mini_mask=True)
        np.testing.assert_allclose(inputs["input_image"][b] + config.MEAN_PIXEL, image,
                                   atol=1e-4)
        n = len(class_ids)
        np.testing.assert_array_equal(inputs["input_gt_class_ids"][b, :n], class_ids)
        assert not inputs["input_gt_class_ids"][b, n:].any()
        np.testing.assert_array_equal(inputs["input_gt_boxes"][b, :n], bbox)
        np.testing.assert_array_equal(inputs["input_gt_masks"][b, :, :, :n], mask)
        match = inputs["input_rpn_match"][b, :, 0]
        assert set(np.unique(match)) <= {-1, 0, 1} and (match == 1).sum() >= n
        assert (match != 0).sum() == 64


def test_data_generator_reproducible_and_epochs_differ():
    config = TinyConfig()
    dataset = shapes()
    first = data.DataGenerator(dataset, config, seed=7)
    second = data.DataGenerator(dataset, config, seed=7)
    batches = [first[i][0] for i in range(len(first))]
    for i in reversed(range(len(second))):   # another access order
        other = second[i][0]
        for name in other:
            np.testing.assert_array_equal(batches[i][name], other[name])

    def order(generator):
        return [int(i) for b in range(len(generator))
                for i in generator[b][0]["input_image_meta"][:, 0]]

    epoch0 = order(first)
    assert sorted(epoch0) == list(range(8))
    first.on_epoch_end()
    epoch1 = order(first)
    assert sorted(epoch1) == list(range(8)) and epoch1 != epoch0
    assert order(data.DataGenerator(dataset, config, seed=8)) != epoch0


class CropConfig(TinyConfig):
    """Random 64 x 64 crops of the (unscaled) 96 x 120 shapes images."""
    IMAGE_RESIZE_MODE = "crop"
    IMAGE_MIN_DIM = 64


def crop_offset(crop, image):
    """(y, x) such that crop == image[y:y + 64, x:x + 64] (found by search)."""
    found = [(y, x) for y in range(image.shape[0] - 63) for x in range(image.shape[1] - 63)
             if np.array_equal(image[y:y + 64, x:x + 64], crop)]
    assert found, "the crop is no window of the image"
    return found[0]


def test_resize_image_crop_offsets_from_rng():
    from mrcnn import utils
    image = np.random.default_rng(0).integers(0, 256, (96, 120, 3)).astype(np.uint8)
    state = np.random.get_state()[1].copy()
    crops = [utils.resize_image(image, min_dim=64, mode="crop",
                                rng=np.random.default_rng(seed))[4] for seed in (5, 5, 6, 7)]
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global state untouched
    assert crops[0] == crops[1] and len(set(crops)) > 1
    old_state = np.random.RandomState(9)
    out, window, _, _, crop = utils.resize_image(image, min_dim=64, mode="crop",
                                                 rng=np.random.RandomState(9))
    assert crop == (int(old_state.randint(0, 33)), int(old_state.randint(0, 57)), 64, 64)
    assert crop_offset(out, image) == crop[:2] and window == (0, 0, 64, 64)
    # Without rng the global state decides, as upstream.
    np.random.seed(3)
    first = utils.resize_image(image, min_dim=64, mode="crop")[4]
    np.random.seed(3)
    assert utils.resize_image(image, min_dim=64, mode="crop")[4] == first


def test_data_generator_crop_mode_reproducible_for_a_seed():
    config = CropConfig()
    dataset = shapes()

    def batches(seed, global_seed):
        np.random.seed(global_seed)  # the global state must play no part
        generator = data.DataGenerator(dataset, config, shuffle=False, seed=seed)
        return [generator[i][0] for i in range(len(generator))]

    first, again, other = batches(7, 0), batches(7, 1), batches(8, 0)
    for a, b in zip(first, again):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    # Same images in the same order (no shuffle): only the crops differ between seeds.
    offsets = {}
    for run, result in (("first", first), ("other", other)):
        for inputs in result:
            for b, image_id in enumerate(inputs["input_image_meta"][:, 0].astype(int)):
                image = (inputs["input_image"][b] + config.MEAN_PIXEL).round().astype(np.uint8)
                offsets.setdefault(image_id, {})[run] = crop_offset(image,
                                                                    dataset.load_image(image_id))
    # A crop without instances is skipped, so an image may be in one run only.
    both = [o for o in offsets.values() if len(o) == 2]
    moved = sum(o["first"] != o["other"] for o in both)
    assert len(both) >= 4 and moved >= len(both) - 1, (len(both), moved)  # measured: 7 of 7


def test_data_generator_refuses_per_image_sizes():
    from mrcnn.config import ConfigError
    config = TinyConfig()
    config.IMAGE_RESIZE_MODE = "pad64"
    config.IMAGE_MIN_DIM = None
    with pytest.raises(ConfigError, match="^IMAGE_RESIZE_MODE 'pad64' cannot be used for"):
        data.DataGenerator(shapes(), config, seed=0)


def test_data_generator_skips_images_without_instances_and_caps_instances():
    config = ToyConfig()
    config.MAX_GT_INSTANCES = 1
    dataset = GappyDataset().load()
    generator = data.DataGenerator(dataset, config, shuffle=False, seed=0)
    assert len(generator) == 2
    inputs = generator[0][0]
    np.testing.assert_array_equal(inputs["input_image_meta"][:, 0], [0, 2])
    # Image 0 has two instances; one of them is kept.
    boxes0 = {(8, 12, 24, 40), (40, 4, 60, 18)}
    assert tuple(inputs["input_gt_boxes"][0, 0].astype(int)) in boxes0
    assert inputs["input_gt_masks"].shape == (2, 64, 64, 1)
    # The last batch wraps: image 2, then image 0 (image 1 is skipped again).
    np.testing.assert_array_equal(generator[1][0]["input_image_meta"][:, 0], [2, 0])
    # A skip moves the rest of the batch along: no image is used twice in a row.
    three = data.DataGenerator(dataset, config, shuffle=False, seed=0, batch_size=3)
    np.testing.assert_array_equal(three[0][0]["input_image_meta"][:, 0], [0, 2, 0])


def test_data_generator_detection_targets_and_upstream_generator():
    config = TinyConfig()
    dataset = shapes()
    generator = data.DataGenerator(dataset, config, seed=2, random_rois=40,
                                   detection_targets=True)
    inputs, targets = generator[0]
    assert inputs["input_rois"].shape == (2, 40, 4)
    assert targets["rois"].shape == (2, 16, 4)
    assert targets["mrcnn_class_ids"].shape == (2, 16, 1)
    assert targets["mrcnn_bbox"].shape == (2, 16, 4, 4)
    assert targets["mrcnn_mask"].shape == (2, 16, 28, 28, 4)

    stream = data.data_generator(dataset, config, shuffle=False, batch_size=3)
    inputs, outputs = next(stream)
    assert outputs == [] and len(inputs) == 7
    np.testing.assert_array_equal(inputs[1][:, 0], [0, 1, 2])
    assert [a.shape[0] for a in inputs] == [3] * 7
    assert inputs[2].shape[1:] == (len(data.compute_anchors(config)), 1)
    for _ in range(2):
        inputs, _ = next(stream)
    np.testing.assert_array_equal(inputs[1][:, 0], [6, 7, 0])
    inputs, _ = next(stream)  # one continuous stream, as upstream's generator
    np.testing.assert_array_equal(inputs[1][:, 0], [1, 2, 3])


def test_data_generator_steps_per_epoch_runs_over_several_passes():
    config = TinyConfig()
    dataset = shapes()
    generator = data.DataGenerator(dataset, config, seed=4, steps_per_epoch=6)
    assert len(generator) == 6
    ids = [int(i) for b in range(6) for i in generator[b][0]["input_image_meta"][:, 0]]
    assert sorted(ids[:8]) == list(range(8))          # pass 0: every image once
    assert len(set(ids[8:])) == 4 and ids[8:] != ids[:4]  # pass 1: a new order
    # Resuming at epoch 1 gives the batches the first generator gives after an epoch.
    resumed = data.DataGenerator(dataset, config, seed=4, steps_per_epoch=6)
    resumed.epoch = 1
    generator.on_epoch_end()
    for b in (0, 5):
        for name, value in generator[b][0].items():
            np.testing.assert_array_equal(resumed[b][0][name], value)


# ----------------------------------------------------------------------------- anchor table
def random_boxes(rng, count, size, low=4, high=60):
    y1 = rng.randint(0, size - 8, count)
    x1 = rng.randint(0, size - 8, count)
    h = rng.randint(low, high, count)
    w = rng.randint(low, high, count)
    return np.stack([y1, x1, np.minimum(y1 + h, size), np.minimum(x1 + w, size)],
                    axis=1).astype(np.int32)


def dense_match(anchors, boxes):
    """Per-anchor best GT (index, IoU) and best-of-GT flags from the full IoU matrix."""
    from mrcnn import utils
    overlaps = utils.compute_overlaps(anchors, boxes)
    best = overlaps.max(axis=0)
    return (overlaps.argmax(axis=1), overlaps.max(axis=1),
            np.any((overlaps == best) & (best > 0), axis=1))


@pytest.mark.parametrize("kind", ["pyramid", "pyramid_subset", "many_sizes"])
def test_anchor_table_matches_the_full_iou_matrix(kind):
    rng = np.random.RandomState(2)
    anchors = data.compute_anchors(TinyConfig())   # 15 sizes, each a lattice of corners
    if kind == "pyramid_subset":                   # 15 sizes, no lattice: runs of rows
        anchors = anchors[rng.rand(len(anchors)) < 0.7]
    if kind == "many_sizes":                       # no groups: every anchor is tested
        anchors = random_boxes(rng, 3000, 128, 2, 90).astype(np.float64) + rng.rand(3000, 1)
    table = data.AnchorTable(anchors)
    assert (table.groups is None) == (kind == "many_sizes")
    if table.groups is not None:
        lattices = [group.grid is not None for group in table.groups]
        assert len(lattices) == 15 and all(lattices) == (kind == "pyramid")
    boxes = random_boxes(rng, 12, 128)
    boxes[0] = [0, 0, 128, 128]                                # overlaps every anchor
    boxes[1] = [60, 60, 61, 61]                                # a 1-pixel box
    anchor_gt, anchor_iou, best_of_gt = data._anchor_gt_match(table, boxes)
    ref_gt, ref_iou, ref_best = dense_match(anchors, boxes)
    np.testing.assert_array_equal(anchor_iou, ref_iou)         # same arithmetic: exact
    np.testing.assert_array_equal(anchor_gt[ref_iou > 0], ref_gt[ref_iou > 0])
    np.testing.assert_array_equal(best_of_gt, ref_best)
    for box in boxes[:4]:
        ids, iou = table.iou(box)
        full = np.zeros(len(anchors))
        full[ids] = iou
        np.testing.assert_array_equal(full, dense_match(anchors, box[None])[1])
        assert (iou > 0).all()


def test_rpn_targets_on_pyramid_anchors_match_slow_reference():
    config = rpn_config(64)
    anchors = data.compute_anchors(config)
    rng = np.random.RandomState(8)
    boxes = random_boxes(rng, 6, 128)
    class_ids = np.array([1, 2, 3, 1, 2, -1], np.int32)
    for source in (anchors, data.AnchorTable(anchors)):
        match, bbox = data.build_rpn_targets((128, 128, 3), source, class_ids, boxes, config,
                                             rng=np.random.RandomState(1))
        ref_match, ref_bbox = reference_rpn_targets(anchors, class_ids, boxes, 64, STD,
                                                    np.random.RandomState(1))
        np.testing.assert_array_equal(match, ref_match)
        np.testing.assert_allclose(bbox, ref_bbox, atol=1e-4)


def test_rpn_targets_of_an_image_without_instances_are_all_negative():
    config = rpn_config(64)
    anchors = data.compute_anchors(config)
    match, bbox = data.build_rpn_targets((128, 128, 3), anchors, np.zeros([0], np.int32),
                                         np.zeros([0, 4], np.int32), config,
                                         rng=np.random.default_rng(0))
    assert (match == -1).sum() == 64 and (match == 1).sum() == 0
    assert (match == 0).sum() == len(anchors) - 64
    np.testing.assert_array_equal(bbox, 0)


def test_negative_subsampling_keeps_a_uniform_subset():
    # Each of 10 negatives survives a cap of 3 with probability 3/10.
    counts = np.zeros(10)
    rng = np.random.default_rng(0)
    for _ in range(3000):
        match = -np.ones(10, np.int32)
        data._disable_extra(match, -1, 3, rng)
        assert (match == -1).sum() == 3 and set(np.unique(match)) == {-1, 0}
        counts += match == -1
    np.testing.assert_allclose(counts / 3000, 0.3, atol=0.04)


def test_detection_targets_without_instances_are_negatives():
    config = ToyConfig()
    config.TRAIN_ROIS_PER_IMAGE = 4
    rois = np.array([[0, 0, 10, 10], [5, 5, 20, 30]])
    out_rois, class_ids, bboxes, masks = data.build_detection_targets(
        rois, np.zeros([0], np.int32), np.zeros([0, 4], np.int32),
        np.zeros((64, 64, 0), bool), config, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(class_ids, 0)
    assert out_rois.shape == (4, 4) and {tuple(r) for r in out_rois} <= {tuple(r) for r in rois}
    assert not bboxes.any() and not masks.any()


# ----------------------------------------------------------------------------- generator options
def test_empty_images_as_negatives():
    config = ToyConfig()
    generator = data.DataGenerator(GappyDataset().load(), config, shuffle=False, seed=0,
                                   workers=1, train_on_empty_images=True)
    inputs = generator[0][0]
    np.testing.assert_array_equal(inputs["input_image_meta"][:, 0], [0, 1])
    assert not inputs["input_gt_class_ids"][1].any() and not inputs["input_gt_boxes"][1].any()
    match = inputs["input_rpn_match"][1, :, 0]
    assert (match == -1).sum() == config.RPN_TRAIN_ANCHORS_PER_IMAGE and (match == 1).sum() == 0
    assert not inputs["input_rpn_bbox"][1].any()
    # The config switch does the same; upstream's behaviour (skip) is the default.
    config.TRAIN_ON_EMPTY_IMAGES = True
    assert data.DataGenerator(GappyDataset().load(), config, workers=1).train_on_empty_images
    assert not data.DataGenerator(GappyDataset().load(), ToyConfig()).train_on_empty_images


class BadMaskDataset(GappyDataset):
    """GappyDataset where image 0 returns masks of the wrong size."""

    def load_mask(self, image_id):
        mask, class_ids = super().load_mask(image_id)
        return (mask[:16], class_ids) if image_id == 0 else (mask, class_ids)


def test_bad_image_policies_in_the_generator():
    from mrcnn.validate import BadImageWarning, DatasetError

    config = ToyConfig()
    raising = data.DataGenerator(BadMaskDataset().load(), config, shuffle=False, seed=0,
                                 workers=1)
    with pytest.raises(DatasetError, match=r"^image 0 \(source 'toy', id 0\): masks are "
                                           r"16x32x2 but the image is 32x32"):
        raising[0]

    config.BAD_IMAGE_POLICY = "skip"
    skipping = data.DataGenerator(BadMaskDataset().load(), config, shuffle=False, seed=0,
                                  workers=1)
    with pytest.warns(BadImageWarning, match="skipping image 0"):
        ids = skipping[0][0]["input_image_meta"][:, 0]
    np.testing.assert_array_equal(ids, [2, 2])        # 0 is bad, 1 is empty
    with pytest.warns(BadImageWarning, match=r"epoch 0: skipped 1 bad image\(s\) \[0\]"):
        skipping.on_epoch_end()
    skipping[0]                                       # known bad: skipped without a reload
    assert skipping.bad_images.skipped == {0: [0], 1: [0]}


def test_no_usable_image_is_a_clear_error():
    config = ToyConfig()
    config.BAD_IMAGE_POLICY = "skip"

    class AllBad(BadMaskDataset):
        def load_mask(self, image_id):
            mask, class_ids = GappyDataset.load_mask(self, image_id)
            return mask[:16], class_ids

    generator = data.DataGenerator(AllBad().load(), config, workers=1)
    with pytest.warns(Warning), pytest.raises(ValueError, match="no usable training image: 2 "
                                                                "of 3 images are bad"):
        generator[0]


def test_worker_settings():
    config = ToyConfig()
    generator = data.DataGenerator(GappyDataset().load(), config)
    assert generator.workers == data.default_workers() >= 1
    assert generator.max_queue_size == max(10, 2 * generator.workers)
    assert not generator.use_multiprocessing
    config.DATA_WORKERS = 6
    generator = data.DataGenerator(GappyDataset().load(), config)
    assert generator.workers == 6 and generator.max_queue_size == 12
    assert data.DataGenerator(GappyDataset().load(), config, workers=3).workers == 3


def test_batch_molding_matches_mold_image():
    config = TinyConfig()
    images = [np.random.RandomState(i).randint(0, 256, (8, 8, 3)).astype(np.uint8)
              for i in range(3)]
    batch = data._mold_batch(images, config)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, data.mold_image(np.stack(images), config))
    np.testing.assert_allclose(batch[1, 2, 3], images[1][2, 3] - np.array([123.7, 116.8, 103.9]),
                               rtol=1e-6)

"""Tiled detection: the grid, merging across seams, and the wiring through the graph.

The large-image test replaces the per-tile detector (`tiling.detect_tiles`) with an exact
detector that sees only each tile's pixels: the connected components of each colour
channel (one class per channel) in the tile, so objects are cut at tile borders as a
model would see them. What is tested is what tiling.py owns: the grid, shifting back,
suppressing duplicates and joining the parts of objects that seams cut. The keypoint
tests give that detector two keypoints per part, its box's corners, scored highest where
a tile border (not the image's) cuts the part, as a model sure of the corner a border cut
into an object: the merged instance must still take each corner from a tile that saw it.
"""
from types import SimpleNamespace

import cv2
import keras
import numpy as np
import pytest
from pycocotools import mask as mask_utils

import mrcnn.model as modellib
from mrcnn import tiling, utils

from conftest import TinyConfig
from keypoint_helpers import TinyKeypointConfig


# --- the grid ------------------------------------------------------------------------

def test_tile_starts_are_evenly_spaced_with_at_least_the_overlap():
    # 4000 px, tiles of 1024, overlap 0.2: stride int(819.2) = 819, ceil(2976 / 819) + 1
    # = 5 tiles, starts i * 2976 / 4.
    assert tiling.tile_starts(4000, 1024, 0.2) == [0, 744, 1488, 2232, 2976]
    # 3000 px: ceil(1976 / 819) + 1 = 4 tiles, starts i * 1976 / 3 rounded.
    assert tiling.tile_starts(3000, 1024, 0.2) == [0, 659, 1317, 1976]
    assert tiling.tile_starts(1024, 1024, 0.2) == [0]
    assert tiling.tile_starts(50, 64, 0.2) == [0]
    assert tiling.tile_starts(70, 64, 0.2) == [0, 6]
    assert tiling.tile_starts(128, 64, 0.0) == [0, 64]


def test_tile_boxes_cover_the_image_and_neighbours_overlap():
    tiles = tiling.tile_boxes((3000, 4000, 3), (1024, 1024), 0.2)
    assert tiles.shape == (20, 4)
    covered = np.zeros((3000, 4000), np.int32)
    for y1, x1, y2, x2 in tiles:
        assert (y2 - y1, x2 - x1) == (1024, 1024)
        covered[y1:y2, x1:x2] += 1
    assert covered.min() == 1
    # Horizontal neighbours share 1024 - 744 = 280 >= 0.2 * 1024 columns.
    assert tiles[0, 3] - tiles[1, 1] == 280
    np.testing.assert_array_equal(tiling.tile_boxes((50, 70), (64, 64), 0.2),
                                  [[0, 0, 50, 64], [0, 6, 50, 70]])


# --- merging by hand -----------------------------------------------------------------

def _detections(*items):
    """(class_id, score, box, mask) items -> a detect_tiles dict of one tile."""
    return {"rois": np.array([i[2] for i in items], np.int32).reshape(-1, 4),
            "class_ids": np.array([i[0] for i in items], np.int32),
            "scores": np.array([i[1] for i in items], np.float32),
            "masks": [np.asarray(i[3], bool) for i in items]}


def test_merge_joins_a_cut_object_and_suppresses_a_duplicate_by_hand():
    # Tiles A = columns 0..10, B = columns 6..16 of a 10x16 image; they share columns 6..10.
    tiles = [(0, 0, 10, 10), (0, 6, 10, 16)]
    # A 3x10 bar at rows 2..5, columns 3..13: A sees columns 3..10, B columns 6..13.
    # A 2x2 square at rows 7..9, columns 7..9, inside the shared columns: both see it.
    # A 2x2 square of the same class at rows 7..9, columns 12..14: only B sees it.
    a = _detections((1, 0.9, (2, 3, 5, 10), np.ones((3, 7))),
                    (2, 0.6, (7, 7, 9, 9), np.ones((2, 2))))
    b = _detections((1, 0.8, (2, 0, 5, 7), np.ones((3, 7))),        # tile pixels
                    (2, 0.7, (7, 1, 9, 3), np.ones((2, 2))),
                    (2, 0.5, (7, 6, 9, 8), np.ones((2, 2))))
    rois, class_ids, scores, masks = tiling.merge_tile_detections(tiles, [a, b])
    np.testing.assert_array_equal(rois, [[2, 3, 5, 13], [7, 7, 9, 9], [7, 12, 9, 14]])
    np.testing.assert_array_equal(class_ids, [1, 2, 2])
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.5])
    assert masks[0].shape == (3, 10) and masks[0].all()
    assert masks[1].all() and masks[2].all()


def test_merge_keeps_apart_what_disagrees_in_the_shared_region():
    tiles = [(0, 0, 10, 10), (0, 6, 10, 16)]
    # Same class, boxes overlapping in the shared columns, but A's object fills rows 0..4
    # there and B's rows 5..9: IoU 0 inside the shared region.
    a = _detections((1, 0.9, (0, 4, 10, 10), np.vstack([np.ones((5, 6)), np.zeros((5, 6))])))
    b = _detections((1, 0.8, (0, 0, 10, 6), np.vstack([np.zeros((5, 6)), np.ones((5, 6))])))
    assert len(tiling.merge_tile_detections(tiles, [a, b])[0]) == 2
    # The same masks with different classes: also kept apart.
    c = _detections((2, 0.8, (0, 0, 10, 6), np.vstack([np.ones((5, 6)), np.zeros((5, 6))])))
    assert len(tiling.merge_tile_detections(tiles, [a, c])[0]) == 2
    assert len(tiling.merge_tile_detections(tiles, [a, _detections(
        (1, 0.8, (0, 0, 10, 6), np.vstack([np.ones((5, 6)), np.zeros((5, 6))])))])[0]) == 1


def test_merge_joins_four_corner_parts_transitively():
    # Four 8x8 tiles overlapping by 4 px around the centre of a 12x12 image; a 6x6 square
    # at rows/columns 3..9 is cut by every tile's border.
    tiles = [(0, 0, 8, 8), (0, 4, 8, 12), (4, 0, 12, 8), (4, 4, 12, 12)]
    square = np.zeros((12, 12), bool)
    square[3:9, 3:9] = True
    results = []
    for y1, x1, y2, x2 in tiles:
        part = square[y1:y2, x1:x2]
        box = utils.extract_bboxes(part[..., None])[0]
        results.append(_detections((1, 0.5 + y1 / 100 + x1 / 1000, box,
                                    part[box[0]:box[2], box[1]:box[3]])))
    rois, _, scores, masks = tiling.merge_tile_detections(tiles, results)
    np.testing.assert_array_equal(rois, [[3, 3, 9, 9]])
    assert masks[0].all() and scores[0] == pytest.approx(0.544)


def _with_keypoints(detections, *keypoints):
    """A _detections dict with keypoints [N, K, 3] (x, y, score) in the tile's pixels."""
    detections["keypoints"] = np.array(keypoints, np.float32).reshape(
        len(detections["class_ids"]), -1, 3)
    return detections


def test_keypoints_on_cut_borders_by_hand():
    # A = columns 0..10, B = columns 6..16 of a 10x16 image: A's right side (column 9) and
    # B's left side (column 6) are cut; the top, bottom and outer sides are the image's.
    tiles = [(0, 0, 10, 10), (0, 6, 10, 16)]
    points = np.array([[[8.9, 5, 1], [8.0, 5, 1], [0, 0, 1], [5, 9, 1]],      # in A
                       [[6.99, 5, 1], [7.0, 5, 1], [15, 9, 1], [6.5, 0, 1]]],  # in B
                      np.float32)
    np.testing.assert_array_equal(tiling.keypoints_on_cut_borders(points, [0, 1], tiles),
                                  [[True, False, False, False], [True, False, False, True]])


def test_merge_keeps_keypoints_with_their_rows_and_takes_each_from_its_best_part():
    # The two tiles and three objects of the by-hand test above, with three keypoints
    # (x, y, score) per detection in tile pixels; B starts at column 6, so its x + 6.
    # On a cut border: x > 8 in A, x < 7 in B.
    tiles = [(0, 0, 10, 10), (0, 6, 10, 16)]
    a = _with_keypoints(
        _detections((1, 0.9, (2, 3, 5, 10), np.ones((3, 7))),
                    (2, 0.6, (7, 7, 9, 9), np.ones((2, 2)))),
        [[3, 3, 0.8], [9, 3, 0.95], [7, 2, 0.3]],     # bar: x 9 on A's border
        [[9, 7, 0.3], [8, 8, 0.35], [7, 8, 0.2]])     # square: x 9 on A's border
    b = _with_keypoints(
        _detections((1, 0.8, (2, 0, 5, 7), np.ones((3, 7))),
                    (2, 0.7, (7, 1, 9, 3), np.ones((2, 2))),
                    (2, 0.5, (7, 6, 9, 8), np.ones((2, 2)))),
        [[0, 3, 0.1], [6, 3, 0.7], [1, 2, 0.6]],      # image x 6 (border), 12, 7
        [[0, 7, 0.4], [2, 8, 0.3], [0.5, 8, 0.9]],    # image x 6 (border), 8, 6.5 (border)
        [[6, 7, 0.9], [7, 8, 0.8], [6, 8, 0.7]])      # image x 12, 13, 12
    merged = tiling.merge_tiles(tiles, [a, b])
    np.testing.assert_array_equal(merged["rois"], [[2, 3, 5, 13], [7, 7, 9, 9], [7, 12, 9, 14]])
    np.testing.assert_allclose(merged["keypoints"], [
        # bar (A scored 0.9, B 0.8): A's first; A's second is on its border, so B's,
        # though A scored it higher; A's third, though B scored it higher.
        [[3, 3, 0.8], [12, 3, 0.7], [7, 2, 0.3]],
        # shared square (B 0.7, A 0.6): the first on both borders, so the better part's,
        # B's; the second inside both, B's; the third on B's border only, A's.
        [[6, 7, 0.4], [8, 8, 0.3], [7, 8, 0.2]],
        # B's own square, shifted.
        [[12, 7, 0.9], [13, 8, 0.8], [12, 8, 0.7]]])
    assert merged["keypoints"].dtype == np.float32
    # Without merging every row keeps its own keypoints, shifted, in score order.
    unmerged = tiling.merge_tiles(tiles, [a, b], match_threshold=1.01)
    np.testing.assert_allclose(unmerged["scores"], [0.9, 0.8, 0.7, 0.6, 0.5])
    np.testing.assert_allclose(unmerged["keypoints"][:, 0], [
        [3, 3, 0.8], [6, 3, 0.1], [6, 7, 0.4], [9, 7, 0.3], [12, 7, 0.9]])


def test_merge_without_detections_gives_empty_keypoints():
    tiles = [(0, 0, 10, 10), (0, 6, 10, 16)]
    empty = dict(_detections(), keypoints=np.zeros((0, 3, 3), np.float32))
    merged = tiling.merge_tiles(tiles, [empty, empty])
    assert merged["rois"].shape == (0, 4) and merged["keypoints"].shape == (0, 3, 3)
    assert "keypoints" not in tiling.merge_tiles(tiles, [_detections(), _detections()])


# --- a large image through an exact per-tile detector ---------------------------------

HEIGHT, WIDTH, TILE = 3000, 4000, 1024


def components(crop):
    """An exact detector of one tile: connected components of each colour channel."""
    rois, class_ids, scores, masks = [], [], [], []
    for channel in range(3):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            (crop[..., channel] > 0).astype(np.uint8), connectivity=8)
        for label in range(1, count):
            x, y, w, h, area = stats[label]
            if area < 8:            # slivers at a border go unseen, as by a model
                continue
            rois.append((y, x, y + h, x + w))
            class_ids.append(channel + 1)
            scores.append(0.5 + 0.4 * area / (area + 2000))
            masks.append(labels[y:y + h, x:x + w] == label)
    return {"rois": np.array(rois, np.int32).reshape(-1, 4),
            "class_ids": np.array(class_ids, np.int32),
            "scores": np.array(scores, np.float32), "masks": masks}


def exact_detect_tiles(model, image, tiles, batch_size):
    return [components(image[y1:y2, x1:x2]) for y1, x1, y2, x2 in tiles]


def _shape_mask(rng, height, width):
    """A box-local ellipse or (rotated) rectangle filling most of a height x width box."""
    mask = np.zeros((height, width), np.uint8)
    if rng.uniform() < 0.5:
        cv2.ellipse(mask, (width // 2, height // 2), (max(width // 2 - 1, 1),
                    max(height // 2 - 1, 1)), 0, 0, 360, 1, -1)
    else:
        mask[:] = 1
    return mask.astype(bool)


# Objects placed on purpose (y1, x1, y2, x2, class): tiles start at rows 0, 659, 1317,
# 1976 and columns 0, 744, 1488, 2232, 2976 and are 1024 px long.
SEAM_OBJECTS = [
    (270, 994, 330, 1054, 1),     # across tile 0's right border, whole in tile 1
    (380, 860, 430, 910, 2),      # inside the shared columns 744..1024: seen whole twice
    (500, 600, 540, 1150, 3),     # wider than the overlap: cut by both tiles
    (120, 700, 160, 1700, 1),     # three tiles: cut at 1024, at 744 and at 1488
    (1250, 1400, 1750, 1850, 2),  # cut by all four tiles around the corner (1683, 1768)
    (1000, 1000, 1060, 1060, 3),  # across the corner (1024, 1024)
    (2300, 2400, 2360, 2460, 1),  # in the shared rows 1976..2341 and columns 2232..2512
    (1600, 3100, 1700, 3180, 2),  # across row 1683, in the shared columns 2976..3256
    (800, 3900, 860, 3999, 3),    # touching the image's right edge
    (2940, 10, 3000, 60, 1),      # touching the bottom edge
    # Two objects of one class a few pixels apart on a seam: never joined.
    (1200, 980, 1224, 1007, 2), (1200, 1015, 1224, 1045, 2),
]


def large_scene(seed=0, random_objects=48):
    """A 3000x4000 image of ~60 small objects: (image, [(box, class_id, mask)])."""
    rng = np.random.RandomState(seed)
    objects = [((y1, x1, y2, x2), c, np.ones((y2 - y1, x2 - x1), bool))
               for y1, x1, y2, x2, c in SEAM_OBJECTS]
    taken = np.zeros((HEIGHT, WIDTH), bool)
    for (y1, x1, y2, x2), _, _ in objects:
        taken[max(y1 - 4, 0):y2 + 4, max(x1 - 4, 0):x2 + 4] = True
    while len(objects) < len(SEAM_OBJECTS) + random_objects:
        h, w = rng.randint(16, 90, 2)
        y1, x1 = rng.randint(0, HEIGHT - h), rng.randint(0, WIDTH - w)
        if taken[max(y1 - 4, 0):y1 + h + 4, max(x1 - 4, 0):x1 + w + 4].any():
            continue
        taken[max(y1 - 4, 0):y1 + h + 4, max(x1 - 4, 0):x1 + w + 4] = True
        objects.append(((y1, x1, y1 + h, x1 + w), rng.randint(1, 4), _shape_mask(rng, h, w)))
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for (y1, x1, y2, x2), class_id, mask in objects:
        image[y1:y2, x1:x2, class_id - 1][mask] = 255
    return image, objects


def _iou(mask_a, box_a, mask_b, box_b):
    return tiling.restricted_mask_iou(mask_a, box_a, mask_b, box_b, (0, 0, HEIGHT, WIDTH))


def _best_match(box, mask, class_id, result):
    """(index, IoU) of the result's detection of that class that overlaps the mask most."""
    best, best_iou = None, 0.0
    for i, roi in enumerate(result["rois"]):
        if result["class_ids"][i] == class_id:
            iou = _iou(mask, box, result["masks"][i], tuple(roi))
            if iou > best_iou:
                best, best_iou = i, iou
    return best, best_iou


def _single_crop_detection(image, box, class_id, mask):
    """The object detected inside one tile-sized crop around it: (mask, box) or None."""
    cy = min(max((box[0] + box[2]) // 2 - TILE // 2, 0), HEIGHT - TILE)
    cx = min(max((box[1] + box[3]) // 2 - TILE // 2, 0), WIDTH - TILE)
    crop = components(image[cy:cy + TILE, cx:cx + TILE])
    crop["rois"] = crop["rois"] + [cy, cx, cy, cx]
    index, iou = _best_match(box, mask, class_id, crop)
    return (crop["masks"][index], tuple(crop["rois"][index])) if iou >= 0.5 else None


@pytest.fixture(scope="module")
def scene():
    return large_scene()


@pytest.fixture
def stub_model(monkeypatch):
    monkeypatch.setattr(tiling, "detect_tiles", exact_detect_tiles)
    return SimpleNamespace(mode="inference", config=TinyConfig())


def test_the_scene_has_objects_on_seams(scene):
    image, objects = scene
    tiles = tiling.tile_boxes(image.shape, (TILE, TILE), 0.2)
    cut_counts = []
    for (y1, x1, y2, x2), _, _ in objects:
        cut = sum(1 for t in tiles if tiling._intersection((y1, x1, y2, x2), t) and not (
            t[0] <= y1 and t[1] <= x1 and y2 <= t[2] and x2 <= t[3]))
        cut_counts.append(cut)
    assert len(objects) == 60
    assert sum(c >= 1 for c in cut_counts) >= 12     # 19 with seed 0
    assert sum(c >= 3 for c in cut_counts) >= 2      # 3: the long bar, the corners
    assert sum(c >= 4 for c in cut_counts) >= 1      # 1: the square on a four-tile corner


def test_every_object_found_once_across_the_seams(scene, stub_model):
    image, objects = scene
    result = tiling.detect_tiled(stub_model, image, tile_size=TILE, overlap=0.2,
                                 batch_size=4)[0]
    assert len(result["tiles"]) == 20
    reference_found, tiled_found, matched = 0, 0, []
    for box, class_id, mask in objects:
        reference = _single_crop_detection(image, box, class_id, mask)
        if reference is None:
            continue
        reference_found += 1
        index, iou = _best_match(reference[1], reference[0], class_id, result)
        if iou >= 0.5:
            tiled_found += 1
            matched.append(index)
            # Joined parts make the whole object: the exact detector's masks are exact.
            assert iou == 1.0, (box, iou)
    assert reference_found == len(objects)            # 60: every object fits in a crop
    assert tiled_found / reference_found >= 0.95      # measured 1.0
    # No duplicates: one detection per object and no detection left over.
    assert len(set(matched)) == len(matched) == len(result["rois"])
    for i in range(len(result["rois"])):
        for j in range(i + 1, len(result["rois"])):
            assert _iou(result["masks"][i], tuple(result["rois"][i]),
                        result["masks"][j], tuple(result["rois"][j])) == 0
    assert np.all(np.diff(result["scores"]) <= 0)


def test_without_merging_the_seams_leave_duplicates_and_parts(scene, stub_model):
    image, objects = scene
    unmerged = tiling.detect_tiled(stub_model, image, tile_size=TILE, overlap=0.2,
                                   batch_size=4, match_threshold=1.01)[0]
    # Each object once per tile that sees more than a sliver of it: 60 objects, 125 here.
    assert len(unmerged["rois"]) >= len(objects) + 30


def test_rle_masks_of_a_large_image(scene, stub_model):
    image, objects = scene
    box = tiling.detect_tiled(stub_model, image, tile_size=TILE, batch_size=4)[0]
    rle = tiling.detect_tiled(stub_model, image, tile_size=TILE, batch_size=4,
                              mask_format="rle")[0]
    np.testing.assert_array_equal(rle["rois"], box["rois"])
    for k in (0, len(box["rois"]) // 2, len(box["rois"]) - 1):
        decoded = mask_utils.decode(rle["masks"][k]).astype(bool)
        y1, x1, y2, x2 = box["rois"][k]
        np.testing.assert_array_equal(decoded[y1:y2, x1:x2], box["masks"][k])
        assert decoded.sum() == box["masks"][k].sum()


def test_bad_arguments_are_named(stub_model):
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="overlap must be in"):
        tiling.detect_tiled(stub_model, image, overlap=1.0)
    with pytest.raises(ValueError, match="mask_format must be one of 'box', 'rle', 'full'"):
        tiling.detect_tiled(stub_model, image, mask_format="bool")
    with pytest.raises(ValueError, match="tile_size must be positive"):
        tiling.detect_tiled(stub_model, image, tile_size=0)


# --- keypoints through the exact detector -----------------------------------------------

def corner_keypoints(image, tiles):
    """components() of each tile plus keypoints [N, 2, 3]: the top-left and bottom-right
    pixels of each part's box, score 0.9, or 0.95 where the part's box touches a side of
    the tile that is not a side of the image (a border cut the part there)."""
    height, width = image.shape[:2]
    results = []
    for y1, x1, y2, x2 in tiles:
        result = components(image[y1:y2, x1:x2])
        points = []
        for by1, bx1, by2, bx2 in result["rois"]:
            cut_top, cut_left = by1 == 0 and y1 > 0, bx1 == 0 and x1 > 0
            cut_bottom = by2 == y2 - y1 and y2 < height
            cut_right = bx2 == x2 - x1 and x2 < width
            points.append([[bx1, by1, 0.95 if cut_top or cut_left else 0.9],
                           [bx2 - 1, by2 - 1, 0.95 if cut_bottom or cut_right else 0.9]])
        result["keypoints"] = np.array(points, np.float32).reshape(-1, 2, 3)
        results.append(result)
    return results


class CornerKeypointConfig(TinyConfig):
    NUM_KEYPOINTS = 2
    KEYPOINT_NAMES = ["top_left", "bottom_right"]


@pytest.fixture
def keypoint_stub_model(monkeypatch):
    monkeypatch.setattr(tiling, "detect_tiles",
                        lambda model, image, tiles, batch_size: corner_keypoints(image, tiles))
    return SimpleNamespace(mode="inference", config=CornerKeypointConfig())


def test_merged_objects_get_their_true_corners_across_the_seams(scene, keypoint_stub_model):
    image, objects = scene
    result = tiling.detect_tiled(keypoint_stub_model, image, tile_size=TILE, batch_size=4)[0]
    assert result["keypoints"].shape == (len(result["rois"]), 2, 3)
    checked = cut = 0
    tiles = result["tiles"]
    for box, class_id, mask in objects:
        index, iou = _best_match(box, mask, class_id, result)
        assert iou == 1.0, box
        # The exact detector's box of the whole object (its mask may not fill `box`).
        y1, x1, y2, x2 = utils.extract_bboxes(mask[..., None])[0] + [box[0], box[1]] * 2
        np.testing.assert_array_equal(result["rois"][index], [y1, x1, y2, x2])
        # Each corner from a tile that saw it inside: the object's own corner pixels.
        np.testing.assert_allclose(result["keypoints"][index],
                                   [[x1, y1, 0.9], [x2 - 1, y2 - 1, 0.9]], rtol=1e-6)
        checked += 1
        cut += any(tiling._intersection((y1, x1, y2, x2), t) and not (
            t[0] <= y1 and t[1] <= x1 and y2 <= t[2] and x2 <= t[3]) for t in tiles)
    assert checked == 60 and cut >= 12                # 19 cut by some tile border


def test_without_merging_cut_parts_keep_their_border_corners(scene, keypoint_stub_model):
    image, _ = scene
    unmerged = tiling.detect_tiled(keypoint_stub_model, image, tile_size=TILE, batch_size=4,
                                   match_threshold=1.01)[0]
    # Each row's keypoints are its own box's corners, shifted into the image.
    rois, points = unmerged["rois"], unmerged["keypoints"]
    np.testing.assert_array_equal(points[:, 0, :2], rois[:, [1, 0]])
    np.testing.assert_array_equal(points[:, 1, :2], rois[:, [3, 2]] - 1)
    assert (points[:, :, 2] == np.float32(0.95)).any()  # the parts cut by a border


def test_an_image_without_detections_has_empty_keypoints(keypoint_stub_model):
    result = tiling.detect_tiled(keypoint_stub_model, np.zeros((100, 150, 3), np.uint8),
                                 tile_size=64)[0]
    assert len(result["tiles"]) == 6 and result["rois"].shape == (0, 4)
    assert result["keypoints"].shape == (0, 2, 3)
    assert result["keypoints"].dtype == np.float32


def test_a_model_without_keypoints_gives_no_keypoints(scene, stub_model):
    image, _ = scene
    assert "keypoints" not in tiling.detect_tiled(stub_model, image[:700, :900],
                                                  tile_size=TILE)[0]


# --- the real graph --------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    keras.utils.set_random_seed(0)   # the random weights
    return modellib.MaskRCNN("inference", TinyConfig(), str(tmp_path_factory.mktemp("m")))


def _sorted(rois, class_ids, scores):
    order = np.lexsort(np.column_stack([rois, class_ids, scores]).T[::-1])
    return rois[order], class_ids[order], scores[order], order


def test_one_tile_equals_detect(model):
    image = np.random.RandomState(1).randint(0, 256, (64, 64, 3), dtype=np.uint8)
    expected = model.detect([image])[0]
    got = model.detect_tiled([image], mask_format="full")[0]
    assert len(expected["rois"]) > 0
    e_rois, e_classes, e_scores, e_order = _sorted(
        expected["rois"], expected["class_ids"], expected["scores"])
    g_rois, g_classes, g_scores, g_order = _sorted(got["rois"], got["class_ids"], got["scores"])
    np.testing.assert_array_equal(g_rois, e_rois)
    np.testing.assert_array_equal(g_classes, e_classes)
    np.testing.assert_allclose(g_scores, e_scores, rtol=1e-6)
    np.testing.assert_array_equal(got["masks"][..., g_order], expected["masks"][..., e_order])


def test_each_tile_through_the_graph_equals_detect_on_its_crop(model):
    image = np.random.RandomState(2).randint(0, 256, (64, 128, 3), dtype=np.uint8)
    tiles = tiling.tile_boxes(image.shape, (64, 64), 0.5)
    np.testing.assert_array_equal(tiles[:, 1], [0, 32, 64])
    per_tile = tiling.detect_tiles(model, image, tiles, batch_size=2)
    for (y1, x1, y2, x2), got in zip(tiles, per_tile):
        expected = model.detect([image[y1:y2, x1:x2]])[0]
        np.testing.assert_array_equal(got["rois"], expected["rois"])
        np.testing.assert_array_equal(got["class_ids"], expected["class_ids"])
        np.testing.assert_allclose(got["scores"], expected["scores"], rtol=1e-6)
        for k, (by1, bx1, by2, bx2) in enumerate(expected["rois"]):
            np.testing.assert_array_equal(got["masks"][k],
                                          expected["masks"][by1:by2, bx1:bx2, k])


def test_detect_tiled_formats_agree_through_the_graph(model):
    image = np.random.RandomState(3).randint(0, 256, (100, 150, 3), dtype=np.uint8)
    full = model.detect_tiled(image, tile_size=64, mask_format="full")[0]
    box = model.detect_tiled(image, tile_size=64)[0]
    rle = model.detect_tiled(image, tile_size=64, mask_format="rle")[0]
    assert len(full["tiles"]) == 2 * 3 and len(full["rois"]) > 0
    # At most DETECTION_MAX_INSTANCES per tile, fewer once merged.
    assert len(full["rois"]) <= len(full["tiles"]) * TinyConfig.DETECTION_MAX_INSTANCES
    assert full["masks"].shape == (100, 150, len(full["rois"]))
    for i, (y1, x1, y2, x2) in enumerate(box["rois"]):
        assert box["masks"][i].shape == (y2 - y1, x2 - x1)
        np.testing.assert_array_equal(full["masks"][y1:y2, x1:x2, i], box["masks"][i])
        np.testing.assert_array_equal(mask_utils.decode(rle["masks"][i]).astype(bool),
                                      full["masks"][..., i])
    assert np.all(np.diff(full["scores"]) <= 0)


@pytest.fixture(scope="module")
def keypoint_model(tmp_path_factory):
    keras.utils.set_random_seed(0)   # the random weights
    return modellib.MaskRCNN("inference", TinyKeypointConfig(),
                             str(tmp_path_factory.mktemp("kp")))


def test_one_tile_keypoints_equal_detect(keypoint_model):
    image = np.random.RandomState(1).randint(0, 256, (64, 64, 3), dtype=np.uint8)
    expected = keypoint_model.detect([image])[0]
    got = keypoint_model.detect_tiled([image])[0]
    assert len(expected["rois"]) > 0
    assert got["keypoints"].shape == (len(got["rois"]), 3, 3)
    _, _, _, e_order = _sorted(expected["rois"], expected["class_ids"], expected["scores"])
    _, _, _, g_order = _sorted(got["rois"], got["class_ids"], got["scores"])
    np.testing.assert_allclose(got["keypoints"][g_order], expected["keypoints"][e_order],
                               atol=1e-4)


def test_each_tile_keypoints_equal_detect_on_its_crop(keypoint_model):
    image = np.random.RandomState(2).randint(0, 256, (64, 128, 3), dtype=np.uint8)
    tiles = tiling.tile_boxes(image.shape, (64, 64), 0.5)
    per_tile = tiling.detect_tiles(keypoint_model, image, tiles, batch_size=2)
    for (y1, x1, y2, x2), got in zip(tiles, per_tile):
        expected = keypoint_model.detect([image[y1:y2, x1:x2]])[0]
        np.testing.assert_array_equal(got["rois"], expected["rois"])
        np.testing.assert_allclose(got["keypoints"], expected["keypoints"], atol=1e-4)
    # Shifted by the tile's corner in the image: x by 32 for the middle tile.
    gathered = tiling.gather_tile_detections(tiles, per_tile)
    rows = gathered["tile_of"] == 1
    np.testing.assert_allclose(gathered["keypoints"][rows],
                               per_tile[1]["keypoints"] + np.float32([32, 0, 0]), atol=1e-6)
    merged = keypoint_model.detect_tiled(image, tile_size=64, overlap=0.5)[0]
    assert merged["keypoints"].shape == (len(merged["rois"]), 3, 3)
    assert np.all(merged["keypoints"][..., 0] <= 127) and np.all(merged["keypoints"][..., 1] <= 63)


class KeypointOnlyConfig(TinyKeypointConfig):
    KEYPOINT_WITH_MASKS = False


def test_a_keypoint_only_model_tiles_without_masks(tmp_path):
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("inference", KeypointOnlyConfig(), str(tmp_path))
    image = np.random.RandomState(1).randint(0, 256, (64, 64, 3), dtype=np.uint8)
    expected = model.detect([image])[0]
    got = model.detect_tiled([image])[0]
    assert "masks" not in expected and "masks" not in got
    assert len(expected["rois"]) > 0
    _, _, _, e_order = _sorted(expected["rois"], expected["class_ids"], expected["scores"])
    _, _, _, g_order = _sorted(got["rois"], got["class_ids"], got["scores"])
    np.testing.assert_allclose(got["keypoints"][g_order], expected["keypoints"][e_order],
                               atol=1e-4)
    # Filled boxes stand in for the masks when two tiles' detections are matched.
    tiles = tiling.tile_boxes((64, 128, 3), (64, 64), 0.5)
    wide = np.random.RandomState(2).randint(0, 256, (64, 128, 3), dtype=np.uint8)
    for result in tiling.detect_tiles(model, wide, tiles, batch_size=3):
        for (y1, x1, y2, x2), mask in zip(result["rois"], result["masks"]):
            assert mask.shape == (y2 - y1, x2 - x1) and mask.all()

"""Detection on images larger than the model: overlapping tiles at native resolution.

`detect_tiled(model, images)` (also `MaskRCNN.detect_tiled`) cuts each image into
overlapping tiles of the model's input size, detects the tiles in batches at scale 1
(a 6000x4000 image is not shrunk to 1024 px, so small objects keep their pixels),
shifts each tile's detections back to the image and merges the instances that tile
borders cut or that two tiles both saw:

1. Tiles (`tile_boxes`): along each axis, ceil((L - T) / (T (1 - overlap))) + 1 tiles of
   size T, evenly spaced from 0 to L - T, so neighbours overlap by at least
   `overlap` * T pixels (a side shorter than T is one tile of that side).
2. Per tile (`detect_tiles`): the tile is padded (bottom/right, zeros as the model's own
   padding) to a multiple of 64, molded at scale 1 with its window, run through the
   graph `batch_size` tiles at a time; each detection's 28x28 mask is pasted at the tile's
   resolution into its box (`utils.paste_mask`): a box-local bool mask.
3. Merging (`merge_tile_detections`): two detections from different tiles are the same
   instance when they have the same class and their masks agree inside the region both
   tiles saw: IoU of the two masks restricted to the intersection of the tiles
   >= `match_threshold`. In that region each tile saw the same pixels, so a whole object
   and the part of it a border cut agree there, as do two halves of an object wider than
   the overlap. Matches are joined transitively (an object on the corner of four tiles
   becomes one instance), and each instance gets the union of its parts' masks and
   boxes, the highest score and that part's class. Two detections of the same tile are
   never merged: the model's own NMS separated them.
4. Keypoints (a model with NUM_KEYPOINTS = K > 0): each tile's keypoints are shifted
   with its detections (x by the tile's first column, y by its first row) and stay on
   their rows through the merge. A merged instance takes each keypoint from its
   best-scored part that has the keypoint off the tile's cut borders (less than 1 px
   from a tile's outermost pixel, on a side that is not the image's edge), else from
   its best-scored part: a part's keypoints are clipped to its tile, so a keypoint the
   tile did not see lands on the border, and a border cuts new corners into an object.
   On 25 mosaics of 2x2 held-out keypoint-shapes images (128x128, 9 tiles of 64 at
   overlap 0.5; a model of bench_keypoint_shapes.py's recipe, AP50 0.951 on the 64x64
   images)
   keypoint AP50 / AP: this rule 0.936 / 0.761; the best-scored part's keypoints 0.903 /
   0.729; each keypoint of the highest keypoint score 0.912 / 0.688; no merging 0.694 /
   0.588; detect() on the whole mosaic (shrunk to 64 px) 0.018 / 0.007
   (bench/bench_tiled_keypoints.py). A keypoint-only model (KEYPOINT_WITH_MASKS
   False) has no masks: its filled boxes stand in for the masks when matching, and its
   results have no "masks", as detect()'s.

Results stay memory-safe: masks are box-local (`mask_format="box"`: bool [h_i, w_i] in
the frame of rois[i]) or COCO RLE (`"rle"`), never a full-image stack unless asked for
(`"full"`, bool [H, W, N]; 500 instances at 6000x4000 are 12 GB).

Compared with SAHI's sliced inference (`sahi.predict.get_sliced_prediction`):

* the same: overlapping slices of a fixed size (SAHI's default overlap ratio is also
  0.2), predictions shifted back by the slice offset, overlapping predictions of the
  same class merged rather than only suppressed, merged masks the union of the parts;
* different: SAHI matches predictions by box overlap (IoU, or by default intersection
  over the smaller box, threshold 0.5) over all predictions of the image: with IoU a
  small part cut by a border does not match its whole, with IoS a small object whose
  box lies inside a neighbour's box of the same class (in the same slice too) is merged
  into it. Here masks are compared, only inside the region both tiles saw, and only
  across tiles. SAHI's greedy merging joins each kept prediction with its direct
  matches; here matches are joined transitively (parts of one object on 3-4 tiles).
  SAHI hands each slice to the detector, which resizes it to its own input size, and by
  default adds a prediction on the whole (shrunk) image for large objects; here tiles
  run at scale 1 and there is no whole-image pass (objects larger than a tile are
  joined from their parts, as long as each tile detects its part). SAHI shifts the last
  slice to end at the border; here tiles are evenly spaced, so all overlaps are alike.

The model's DETECTION_MAX_INSTANCES bounds the detections per tile, not per image.
A concave object that a border cuts into two pieces of one tile matches its whole in
the neighbour only if each piece covers at least match_threshold of the whole's pixels
in the shared region; otherwise the smaller piece stays a detection of its own.
Tiles run at native scale whatever IMAGE_RESIZE_MODE says: a model for tiling is best
trained on crops at the scale of the images (e.g. IMAGE_RESIZE_MODE = "crop").
"""
import math

import numpy as np

from mrcnn import inference, keypoint_inference, utils
from mrcnn.image_meta import compose_image_meta

TILED_MASK_FORMATS = ("box", "rle", "full")


# --- the grid -----------------------------------------------------------------------

def tile_starts(length, tile, overlap):
    """First pixels of the tiles along one axis of `length` pixels.

    Args:
        length: pixels along the axis; tile: the tile's side; overlap: in [0, 1), the
            least share of a tile its neighbour covers.
    Returns:
        list of ints from 0 to length - tile, evenly spaced (rounded), at most
        tile * (1 - overlap) apart; [0] when the axis is no longer than a tile.
    """
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1 - overlap)))
    count = math.ceil((length - tile) / stride) + 1
    return [int(round(i * (length - tile) / (count - 1))) for i in range(count)]


def tile_boxes(image_shape, tile_size, overlap):
    """int32 [T, (y1, x1, y2, x2)] tiles of an image, row by row; y2/x2 exclusive.

    Each tile is tile_size pixels, or the image's side where it is shorter.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    tile_h, tile_w = tile_size
    boxes = [(y, x, min(y + tile_h, height), min(x + tile_w, width))
             for y in tile_starts(height, tile_h, overlap)
             for x in tile_starts(width, tile_w, overlap)]
    return np.array(boxes, dtype=np.int32).reshape(-1, 4)


def _tile_size(tile_size, config):
    """(h, w) from an int, a pair or None (the model's IMAGE_SHAPE)."""
    if tile_size is None:
        tile_size = config.IMAGE_SHAPE[:2]
    if np.isscalar(tile_size):
        tile_size = (tile_size, tile_size)
    tile_h, tile_w = (int(v) for v in tile_size)
    if tile_h < 1 or tile_w < 1:
        raise ValueError(f"tile_size must be positive, got {tile_size!r}")
    return tile_h, tile_w


def _check_overlap(overlap):
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1) (a share of the tile), got {overlap!r}")


# --- per tile -----------------------------------------------------------------------

def _ceil64(value):
    return int(math.ceil(value / 64) * 64)


def mold_tile(tile, molded_shape, config):
    """One tile at scale 1 for the graph.

    Args:
        tile: uint8 [h, w, C] pixels of the image.
        molded_shape: (H', W') >= (h, w), multiples of 64.
    Returns:
        molded float32 [H', W', C] (the tile at the top left, zero pixels below and to
        the right, minus MEAN_PIXEL) and its image_meta float32 [META] with the window
        (0, 0, h, w), scale 1 and the tile as the original image.
    """
    height, width = tile.shape[:2]
    padded = np.zeros((molded_shape[0], molded_shape[1], tile.shape[2]), dtype=tile.dtype)
    padded[:height, :width] = tile
    molded = inference.subtract_mean_pixel(padded, config)
    meta = compose_image_meta(0, tile.shape, molded.shape, (0, 0, height, width), 1.0,
                              np.zeros([config.NUM_CLASSES], dtype=np.int32))
    return molded, meta


def box_local_masks(masks, boxes):
    """Probabilities [N, mh, mw] -> N bool masks [y2 - y1, x2 - x1], each in its box's frame."""
    local = []
    for mask, (y1, x1, y2, x2) in zip(masks, np.asarray(boxes, dtype=np.int64)):
        shape = (int(y2 - y1), int(x2 - x1))
        local.append(utils.paste_mask(mask, (0, 0) + shape, shape))
    return local


def _uses_masks(config):
    """False for a keypoint-only model (no mask head), True otherwise."""
    return bool(getattr(config, "KEYPOINT_WITH_MASKS", True)) or not getattr(
        config, "NUM_KEYPOINTS", 0)


def detect_tiles(model, image, tiles, batch_size):
    """The graph's detections in each tile, in the tile's own pixels.

    Args:
        model: an inference MaskRCNN.
        image: uint8 [H, W, C].
        tiles: int [T, (y1, x1, y2, x2)] pixels of the image.
        batch_size: tiles per graph call.
    Returns:
        list of T dicts: "rois" int32 [N, 4] pixels of the tile, "class_ids" int32 [N],
        "scores" float32 [N], "masks" list of N bool [y2 - y1, x2 - x1] (box-local;
        all True for a keypoint-only model) and, for a keypoint model, "keypoints"
        float32 [N, K, 3] (x, y, score) pixel indices of the tile, rows as the rois'.
    """
    config = model.config
    with_masks = _uses_masks(config)
    heights, widths = tiles[:, 2] - tiles[:, 0], tiles[:, 3] - tiles[:, 1]
    molded_shape = (_ceil64(heights.max()), _ceil64(widths.max()))
    results = []
    for start in range(0, len(tiles), batch_size):
        batch = tiles[start:start + batch_size]
        crops = [image[y1:y2, x1:x2] for y1, x1, y2, x2 in batch]
        molded, metas = zip(*(mold_tile(crop, molded_shape, config) for crop in crops))
        # Keypoint models return detection_keypoints [B, D, K, 3] too.
        detections, masks, *keypoints = model._predict(np.stack(molded), np.stack(metas))
        for row, crop in enumerate(crops):
            window = (0, 0) + crop.shape[:2]
            rois, class_ids, scores, probabilities = model.unmold_detections(
                detections[row], masks[row], crop.shape, molded[row].shape, window,
                mask_format="box")
            result = {"rois": rois, "class_ids": class_ids, "scores": scores,
                      "masks": box_local_masks(probabilities, rois) if with_masks else
                      [np.ones((y2 - y1, x2 - x1), bool) for y1, x1, y2, x2 in rois]}
            if keypoints:
                result["keypoints"] = keypoint_inference.unmold_keypoints(
                    detections[row], keypoints[0][row], crop.shape, molded[row].shape,
                    window)
            results.append(result)
    return results


# --- merging ------------------------------------------------------------------------

def _intersection(a, b):
    """(y1, x1, y2, x2) of two boxes' overlap, or None when they do not overlap."""
    y1, x1 = max(a[0], b[0]), max(a[1], b[1])
    y2, x2 = min(a[2], b[2]), min(a[3], b[3])
    return (y1, x1, y2, x2) if y2 > y1 and x2 > x1 else None


def crop_box_mask(mask, box, region):
    """A box-local mask read over another region: bool [region h, region w].

    mask: bool [y2 - y1, x2 - x1] in the frame of `box`; region: (y1, x1, y2, x2) in the
    same pixels. Pixels of the region outside the box are False.
    """
    out = np.zeros((region[2] - region[0], region[3] - region[1]), dtype=bool)
    common = _intersection(box, region)
    if common is not None:
        y1, x1, y2, x2 = common
        out[y1 - region[0]:y2 - region[0], x1 - region[1]:x2 - region[1]] = \
            mask[y1 - box[0]:y2 - box[0], x1 - box[1]:x2 - box[1]]
    return out


def restricted_mask_iou(mask_a, box_a, mask_b, box_b, region):
    """IoU of two box-local masks counting only the pixels inside `region`.

    Returns 0 when neither mask has a pixel there.
    """
    envelope = (min(box_a[0], box_b[0]), min(box_a[1], box_b[1]),
                max(box_a[2], box_b[2]), max(box_a[3], box_b[3]))
    window = _intersection(envelope, region)
    if window is None:
        return 0.0
    a = crop_box_mask(mask_a, box_a, window)
    b = crop_box_mask(mask_b, box_b, window)
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


class _Groups:
    """Union-find over detection indices."""

    def __init__(self, count):
        self.parent = list(range(count))

    def find(self, i):
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, i, j):
        self.parent[self.find(i)] = self.find(j)

    def groups(self):
        members = {}
        for i in range(len(self.parent)):
            members.setdefault(self.find(i), []).append(i)
        return sorted(members.values())


def overlapping_tiles(tiles):
    """Pairs (t, u), t < u, of tiles that share at least one pixel."""
    tiles = np.asarray(tiles)
    pairs = []
    for t in range(len(tiles) - 1):
        rest = tiles[t + 1:]
        share = ((np.minimum(rest[:, 2], tiles[t, 2]) > np.maximum(rest[:, 0], tiles[t, 0]))
                 & (np.minimum(rest[:, 3], tiles[t, 3]) > np.maximum(rest[:, 1], tiles[t, 1])))
        pairs.extend((t, t + 1 + int(k)) for k in np.flatnonzero(share))
    return pairs


def matching_pairs(tiles, tile_of, boxes, class_ids, masks, match_threshold):
    """Pairs (i, j) of detections from two different tiles that are one instance.

    Only tiles that overlap are compared, and only the detections whose boxes reach into
    the overlap; i and j match when their classes agree and restricted_mask_iou over the
    tiles' overlap is >= match_threshold.
    """
    pairs = []
    by_tile = [np.flatnonzero(tile_of == t) for t in range(len(tiles))]
    for t, u in overlapping_tiles(tiles):
        region = _intersection(tiles[t], tiles[u])
        near_t = [i for i in by_tile[t] if _intersection(boxes[i], region)]
        near_u = [j for j in by_tile[u] if _intersection(boxes[j], region)]
        for i in near_t:
            for j in near_u:
                if class_ids[i] != class_ids[j] or not _intersection(boxes[i], boxes[j]):
                    continue
                iou = restricted_mask_iou(masks[i], boxes[i], masks[j], boxes[j], region)
                if iou >= match_threshold:
                    pairs.append((i, j))
    return pairs


def _union_of(members, boxes, masks):
    """The envelope box of some detections and the union of their masks in it."""
    parts = boxes[members]
    envelope = (int(parts[:, 0].min()), int(parts[:, 1].min()),
                int(parts[:, 2].max()), int(parts[:, 3].max()))
    union = np.zeros((envelope[2] - envelope[0], envelope[3] - envelope[1]), dtype=bool)
    for i in members:
        y1, x1, y2, x2 = boxes[i]
        union[y1 - envelope[0]:y2 - envelope[0], x1 - envelope[1]:x2 - envelope[1]] |= masks[i]
    return envelope, union


def gather_tile_detections(tiles, tile_results):
    """All tiles' detections in the image's pixels, one row per detection.

    Args:
        tiles: int [T, (y1, x1, y2, x2)] pixels of the image.
        tile_results: T dicts of detect_tiles (tile pixels, box-local masks).
    Returns:
        dict: "rois" int64 [M, 4] and, when the tiles have them, "keypoints" float32
        [M, K, 3] (x, y, score), both shifted by their tile's corner; "class_ids" int32
        [M], "scores" float32 [M], "masks" list of M box-local masks, "tile_of" int [M].
    """
    tiles = np.asarray(tiles, dtype=np.int64).reshape(-1, 4)
    boxes, class_ids, scores, masks, tile_of, keypoints = [], [], [], [], [], []
    for t, result in enumerate(tile_results):
        y, x = tiles[t, 0], tiles[t, 1]
        boxes.extend(np.asarray(result["rois"], dtype=np.int64).reshape(-1, 4) + [y, x, y, x])
        class_ids.extend(result["class_ids"])
        scores.extend(result["scores"])
        masks.extend(result["masks"])
        tile_of.extend([t] * len(result["class_ids"]))
        if "keypoints" in result:
            keypoints.append(np.asarray(result["keypoints"], dtype=np.float32)
                             + np.array([x, y, 0], dtype=np.float32))
    gathered = {"rois": np.array(boxes, dtype=np.int64).reshape(-1, 4),
                "class_ids": np.asarray(class_ids, dtype=np.int32),
                "scores": np.asarray(scores, dtype=np.float32), "masks": masks,
                "tile_of": np.asarray(tile_of, dtype=np.int64)}
    if keypoints:
        gathered["keypoints"] = np.concatenate(keypoints)
    return gathered


def instance_groups(tiles, gathered, match_threshold=0.5):
    """The rows of gather_tile_detections that are one instance each.

    Returns:
        list of int lists, each a group's rows by descending detection score (ties:
        the lower row); groups by descending best score (ties: the lower first row).
    """
    scores = gathered["scores"]
    groups = _Groups(len(scores))
    for i, j in matching_pairs(np.asarray(tiles, dtype=np.int64).reshape(-1, 4),
                               gathered["tile_of"], gathered["rois"],
                               gathered["class_ids"], gathered["masks"], match_threshold):
        groups.join(i, j)
    members = [sorted(group, key=lambda i: -scores[i]) for group in groups.groups()]
    return sorted(members, key=lambda group: -scores[group[0]])


def keypoints_on_cut_borders(keypoints, tile_of, tiles):
    """bool [M, K]: keypoints less than 1 px from their tile's outermost pixel on a side
    where a border cuts the image (not the image's own edge).

    A tile's keypoints are clipped to the tile, so there lie the guesses of keypoints
    outside it, and the corners a border cuts into an object.

    Args:
        keypoints: float [M, K, 3] (x, y, score) pixels of the image.
        tile_of: int [M] each row's tile; tiles: int [T, (y1, x1, y2, x2)], covering the
            image (their envelope is the image).
    """
    tiles = np.asarray(tiles, dtype=np.float64).reshape(-1, 4)
    height, width = tiles[:, 2].max(), tiles[:, 3].max()
    y1, x1, y2, x2 = (tiles[np.asarray(tile_of, dtype=np.int64), c][:, None] for c in range(4))
    x, y = keypoints[..., 0], keypoints[..., 1]
    return (((x - x1 < 1) & (x1 > 0)) | ((y - y1 < 1) & (y1 > 0))
            | ((x2 - 1 - x < 1) & (x2 < width)) | ((y2 - 1 - y < 1) & (y2 < height)))


def merge_keypoints(keypoints, on_border, members):
    """One merged instance's keypoints: float32 [K, 3].

    Keypoint k comes from the first of `members` (ordered by detection score) whose
    keypoint k is not on a cut border (keypoints_on_cut_borders), or from the first
    member when all are.

    Args:
        keypoints: float32 [M, K, 3] every row's keypoints; on_border: bool [M, K];
        members: the instance's rows, by descending detection score.
    """
    members = np.asarray(members, dtype=np.int64)
    inside = ~on_border[members]                       # [P, K]
    pick = np.where(inside.any(axis=0), np.argmax(inside, axis=0), 0)
    return keypoints[members[pick], np.arange(keypoints.shape[1])]


def merge_tiles(tiles, tile_results, match_threshold=0.5):
    """Shift each tile's detections into the image and merge the same instances.

    Args:
        tiles: int [T, (y1, x1, y2, x2)] pixels of the image.
        tile_results: T dicts of detect_tiles (tile pixels, box-local masks).
        match_threshold: least IoU, inside the region two tiles share, of two detections'
            masks for them to be one instance (see the module doc).
    Returns:
        dict: "rois" int32 [N, 4] pixels of the image, "class_ids" int32 [N], "scores"
        float32 [N] (descending), "masks" list of N bool [y2 - y1, x2 - x1] (box-local)
        and, when the tiles have keypoints, "keypoints" float32 [N, K, 3] (x, y, score)
        pixel indices of the image (see merge_keypoints), rows as the rois'.
    """
    gathered = gather_tile_detections(tiles, tile_results)
    boxes, scores, masks = gathered["rois"], gathered["scores"], gathered["masks"]
    rois, merged_masks = [], []
    groups = instance_groups(tiles, gathered, match_threshold)
    for members in groups:
        if len(members) == 1:
            box, mask = tuple(int(v) for v in boxes[members[0]]), masks[members[0]]
        else:
            box, mask = _union_of(members, boxes, masks)
        rois.append(box)
        merged_masks.append(mask)
    best = np.array([members[0] for members in groups], dtype=np.int64)
    merged = {"rois": np.array(rois, dtype=np.int32).reshape(-1, 4),
              "class_ids": gathered["class_ids"][best].astype(np.int32),
              "scores": scores[best].astype(np.float32), "masks": merged_masks}
    if "keypoints" in gathered:
        points = gathered["keypoints"]
        on_border = keypoints_on_cut_borders(points, gathered["tile_of"], tiles)
        merged["keypoints"] = np.array(
            [merge_keypoints(points, on_border, members) for members in groups],
            dtype=np.float32).reshape((-1,) + points.shape[1:])
    return merged


def merge_tile_detections(tiles, tile_results, match_threshold=0.5):
    """merge_tiles as a tuple: (rois int32 [N, 4] pixels of the image, class_ids int32
    [N], scores float32 [N] descending, masks: list of N box-local bool masks)."""
    merged = merge_tiles(tiles, tile_results, match_threshold)
    return merged["rois"], merged["class_ids"], merged["scores"], merged["masks"]


def format_tiled_masks(masks, rois, image_shape, mask_format):
    """Box-local masks as detect_tiled returns them ("box", "rle" or "full")."""
    if mask_format == "box":
        return masks
    if mask_format == "rle":
        return [inference.encode_box_mask(mask, box, image_shape)
                for mask, box in zip(masks, rois)]
    full = np.zeros((len(masks), int(image_shape[0]), int(image_shape[1])), dtype=bool)
    for i, (mask, (y1, x1, y2, x2)) in enumerate(zip(masks, rois)):
        full[i, y1:y2, x1:x2] = mask
    return full.transpose(1, 2, 0)


# --- the entry point ----------------------------------------------------------------

def detect_tiled(model, images, tile_size=None, overlap=0.2, batch_size=None,
                 mask_format="box", match_threshold=0.5, verbose=0):
    """Detect instances in images larger than the model, tile by tile (see the module doc).

    Args:
        model: an inference MaskRCNN.
        images: what detect() takes (a list of [H, W, C] images, one image, ...).
        tile_size: int or (h, w) pixels of a tile; None: the model's IMAGE_SHAPE[:2]
            (IMAGE_MAX_DIM, or IMAGE_MIN_DIM in "crop" mode).
        overlap: in [0, 1), the least share of a tile its neighbour covers. Objects
            narrower than overlap * tile_size lie whole in some tile.
        batch_size: tiles per graph call; None: the model's BATCH_SIZE.
        mask_format: "box" (default): list of N bool [y2 - y1, x2 - x1] masks at the
            image's resolution, each in the frame of rois[i]; "rle": list of N COCO RLE
            dicts {"size": [H, W], "counts": str}; "full": bool [H, W, N] (small images
            only).
        match_threshold: see merge_tiles.
    Returns:
        one dict per image: "rois" int32 [N, (y1, x1, y2, x2)] pixels of the image,
        "class_ids" int32 [N], "scores" float32 [N] (descending), "masks" (as above; not
        for a keypoint-only model), for a keypoint model "keypoints" float32 [N, K, 3]
        (x, y, score) pixel indices of the image, rows as the rois' ([0, K, 3] without
        detections), and "tiles" int32 [T, 4], the tiles the image was cut into.
    """
    if model.mode != "inference":
        raise ValueError("detect_tiled() needs a model built with mode='inference'")
    if mask_format not in TILED_MASK_FORMATS:
        raise ValueError(f"mask_format must be one of "
                         f"{', '.join(map(repr, TILED_MASK_FORMATS))}, got {mask_format!r}")
    _check_overlap(overlap)
    size = _tile_size(tile_size, model.config)
    batch_size = int(batch_size or model.config.BATCH_SIZE)
    results = []
    for index, image in enumerate(inference.prepare_images(
            images, model.config.IMAGE_CHANNEL_COUNT)):
        tiles = tile_boxes(image.shape, size, overlap)
        if verbose:
            print(f"image {index}: {image.shape[0]}x{image.shape[1]} in {len(tiles)} tiles "
                  f"of {size[0]}x{size[1]}")
        merged = merge_tiles(tiles, detect_tiles(model, image, tiles, batch_size),
                             match_threshold)
        result = {"rois": merged["rois"], "class_ids": merged["class_ids"],
                  "scores": merged["scores"]}
        if _uses_masks(model.config):
            result["masks"] = format_tiled_masks(merged["masks"], merged["rois"],
                                                 image.shape, mask_format)
        num_keypoints = int(getattr(model.config, "NUM_KEYPOINTS", 0) or 0)
        if num_keypoints:
            result["keypoints"] = merged.get(
                "keypoints", np.zeros((0, num_keypoints, 3), np.float32))
        result["tiles"] = tiles
        results.append(result)
    return results

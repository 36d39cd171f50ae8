"""Shapes of annotation tools as instance masks, in COCO's pixel convention.

Coordinate frame (all loaders): x is the column, y the row, in pixels of the original
image, continuous, with the image's top-left *corner* at (0, 0): pixel (row r, column c)
covers [c, c+1) x [r, r+1) and its centre is (c + 0.5, r + 0.5). This is COCO's frame, and
the one of the annotation tools' canvases (VIA, LabelMe, CVAT).

A pixel belongs to a shape when its centre lies inside:

* polygons are rasterised by pycocotools (``frPyObjects`` + ``decode``), exactly as COCO's
  own tools and evaluation do. pycocotools approximates the centre rule on a 5x finer
  grid, so pixels whose centre lies within ~0.1 px of an edge may go either way;
* boxes (x1, y1, x2, y2) hold the pixels with x1 <= c + 0.5 < x2 and y1 <= r + 0.5 < y2
  (integer corners: columns x1 .. x2-1, rows y1 .. y2-1, width x2 - x1 pixels);
* circles and ellipses hold the pixels whose centre satisfies the ellipse equation
  (u/rx)^2 + (v/ry)^2 <= 1, u and v along the axes rotated by ``angle`` radians from the
  x axis towards the y axis (clockwise on screen, as an HTML canvas rotates);
* RLE masks and bitmaps are taken as they are.

Shapes are plain dicts stored in ``image_info`` (picklable):
``{"type": "polygon", "points": float [N, 2] (x, y)}``, ``{"type": "box", "box": (x1, y1,
x2, y2)}``, ``{"type": "ellipse", "center": (cx, cy), "radii": (rx, ry), "angle": a}``,
``{"type": "rle", "rle": compressed RLE}`` and ``{"type": "bitmap", "origin": (x, y),
"mask": bool [h, w]}``. Parts of a shape outside the image are cut off.
"""
import math

import numpy as np
from pycocotools import mask as mask_utils

from mrcnn.datasets.errors import AnnotationError

__all__ = ["polygon_shape", "box_shape", "ellipse_shape", "rle_shape", "bitmap_shape",
           "shape_mask", "instance_mask", "shape_extent", "shape_anchors"]


def _finite_numbers(values, what, file, annotation):
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationError(f"{what} holds values that are not numbers: {values!r:.80}",
                              file, annotation) from None
    if not np.all(np.isfinite(array)):
        raise AnnotationError(f"{what} holds NaN or infinite coordinates", file, annotation)
    return array


def polygon_shape(points, file=None, annotation=None, what="the polygon"):
    """A polygon from [[x, y], ...] or a flat [x1, y1, x2, y2, ...] list.

    Raises AnnotationError (naming ``file`` and ``annotation``) for fewer than 3 points,
    a flat list of odd length, or non-finite values.
    """
    array = _finite_numbers(points, what, file, annotation)
    if array.ndim == 1:
        if array.size % 2:
            raise AnnotationError(f"{what} has {array.size} coordinates, an odd number; "
                                  f"expected x, y pairs", file, annotation)
        array = array.reshape(-1, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise AnnotationError(f"{what} is not a list of (x, y) points: shape "
                              f"{tuple(array.shape)}", file, annotation)
    if len(array) < 3:
        raise AnnotationError(f"{what} has {len(array)} point(s); a polygon needs at least 3",
                              file, annotation)
    return {"type": "polygon", "points": array}


def box_shape(x1, y1, x2, y2, file=None, annotation=None, what="the rectangle"):
    """An axis-aligned box; corners in any order. Raises AnnotationError when empty."""
    x1, y1, x2, y2 = _finite_numbers([x1, y1, x2, y2], what, file, annotation).tolist()
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    if x2 <= x1 or y2 <= y1:
        raise AnnotationError(f"{what} ({x1:g}, {y1:g}) - ({x2:g}, {y2:g}) has no area",
                              file, annotation)
    return {"type": "box", "box": (x1, y1, x2, y2)}


def ellipse_shape(cx, cy, rx, ry, angle=0.0, file=None, annotation=None, what="the ellipse"):
    """An ellipse (a circle when rx == ry). Raises AnnotationError for radii <= 0."""
    cx, cy, rx, ry, angle = _finite_numbers([cx, cy, rx, ry, angle], what, file,
                                            annotation).tolist()
    if rx <= 0 or ry <= 0:
        raise AnnotationError(f"{what} has radius {min(rx, ry):g}; radii must be positive",
                              file, annotation)
    return {"type": "ellipse", "center": (cx, cy), "radii": (rx, ry), "angle": angle}


def rle_shape(segmentation, height, width, file=None, annotation=None):
    """A COCO RLE ({"size": [H, W], "counts": list (uncompressed) or str/bytes}).

    Raises AnnotationError when its size is not the image's.
    """
    size = segmentation.get("size")
    counts = segmentation.get("counts")
    if size is None or counts is None:
        raise AnnotationError("the RLE segmentation needs 'size' and 'counts'", file, annotation)
    if [int(s) for s in size] != [int(height), int(width)]:
        raise AnnotationError(f"the RLE mask is {size[0]}x{size[1]} but the image is "
                              f"{height}x{width} (height x width)", file, annotation)
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != height * width:
            raise AnnotationError(
                f"the uncompressed RLE counts add up to {sum(int(c) for c in counts)} "
                f"pixels, not {height}x{width} = {height * width}", file, annotation)
        rle = mask_utils.frPyObjects(segmentation, int(height), int(width))
    else:
        rle = {"size": [int(height), int(width)],
               "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return {"type": "rle", "rle": rle}


def bitmap_shape(mask, x, y):
    """A bitmap whose top-left pixel is at column ``x``, row ``y`` (integers)."""
    return {"type": "bitmap", "origin": (int(x), int(y)), "mask": np.asarray(mask, dtype=bool)}


def shape_extent(shape, height, width):
    """(x1, y1, x2, y2) in the corner frame that the shape covers."""
    kind = shape["type"]
    if kind == "polygon":
        points = shape["points"]
        return (float(points[:, 0].min()), float(points[:, 1].min()),
                float(points[:, 0].max()), float(points[:, 1].max()))
    if kind == "box":
        return shape["box"]
    if kind == "ellipse":
        (cx, cy), (rx, ry), angle = shape["center"], shape["radii"], shape["angle"]
        half_x = math.hypot(rx * math.cos(angle), ry * math.sin(angle))
        half_y = math.hypot(rx * math.sin(angle), ry * math.cos(angle))
        return cx - half_x, cy - half_y, cx + half_x, cy + half_y
    if kind == "bitmap":
        x, y = shape["origin"]
        h, w = shape["mask"].shape
        return x, y, x + w, y + h
    return 0.0, 0.0, float(width), float(height)   # an RLE has the image's size


def shape_anchors(shape):
    """The points that must lie near the image: vertices, corners, centres."""
    kind = shape["type"]
    if kind == "polygon":
        return shape["points"]
    if kind == "box":
        x1, y1, x2, y2 = shape["box"]
        return [(x1, y1), (x2, y2)]
    if kind == "ellipse":
        return [shape["center"]]
    if kind == "bitmap":
        x, y = shape["origin"]
        return [(x, y)]
    return []


def _polygon_mask(points, height, width):
    rles = mask_utils.frPyObjects([points.ravel().tolist()], height, width)
    return mask_utils.decode(rles)[:, :, 0].astype(bool)


def _box_mask(box, height, width):
    x1, y1, x2, y2 = box
    # Pixel c is inside when x1 <= c + 0.5 < x2: c from ceil(x1 - 0.5) to ceil(x2 - 0.5) - 1.
    c1, c2 = (min(max(math.ceil(v - 0.5), 0), width) for v in (x1, x2))
    r1, r2 = (min(max(math.ceil(v - 0.5), 0), height) for v in (y1, y2))
    mask = np.zeros([height, width], dtype=bool)
    mask[r1:r2, c1:c2] = True
    return mask


def _ellipse_mask(shape, height, width):
    mask = np.zeros([height, width], dtype=bool)
    x1, y1, x2, y2 = shape_extent(shape, height, width)
    c1, c2 = max(int(math.floor(x1)), 0), min(int(math.ceil(x2)) + 1, width)
    r1, r2 = max(int(math.floor(y1)), 0), min(int(math.ceil(y2)) + 1, height)
    if c1 >= c2 or r1 >= r2:
        return mask
    (cx, cy), (rx, ry), angle = shape["center"], shape["radii"], shape["angle"]
    dx = np.arange(c1, c2, dtype=np.float64)[None, :] + 0.5 - cx
    dy = np.arange(r1, r2, dtype=np.float64)[:, None] + 0.5 - cy
    cos, sin = math.cos(angle), math.sin(angle)
    u = dx * cos + dy * sin          # along the first axis (rx)
    v = -dx * sin + dy * cos         # along the second axis (ry)
    mask[r1:r2, c1:c2] = (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
    return mask


def _bitmap_mask(shape, height, width):
    mask = np.zeros([height, width], dtype=bool)
    x, y = shape["origin"]
    bitmap = shape["mask"]
    r1, c1 = max(y, 0), max(x, 0)
    r2, c2 = min(y + bitmap.shape[0], height), min(x + bitmap.shape[1], width)
    if r1 < r2 and c1 < c2:
        mask[r1:r2, c1:c2] = bitmap[r1 - y:r2 - y, c1 - x:c2 - x]
    return mask


def shape_mask(shape, height, width):
    """bool [height, width] mask of one shape (see the module docstring)."""
    kind = shape["type"]
    if kind == "polygon":
        return _polygon_mask(shape["points"], height, width)
    if kind == "box":
        return _box_mask(shape["box"], height, width)
    if kind == "ellipse":
        return _ellipse_mask(shape, height, width)
    if kind == "rle":
        return mask_utils.decode(shape["rle"]).astype(bool)
    if kind == "bitmap":
        return _bitmap_mask(shape, height, width)
    raise ValueError(f"unknown shape type {kind!r}")


def instance_mask(shapes, height, width):
    """bool [height, width]: the union of an instance's shapes (its parts)."""
    mask = np.zeros([height, width], dtype=bool)
    for shape in shapes:
        mask |= shape_mask(shape, height, width)
    return mask

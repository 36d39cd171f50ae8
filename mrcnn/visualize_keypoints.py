"""Drawing keypoints: points and skeleton edges over an image, headless to PNG.

Keypoints are [N, K, 3] (or one instance's [K, 3]) rows (x, y, c) in the pixel-index
frame of ``imshow``: pixel (row r, column c) is centred on the point (x=c, y=r). The
third value c is a ground truth's visibility (0 not labelled, 1 occluded, 2 visible) or
a detection's keypoint score; a point is drawn when c > ``threshold`` (0 by default: the
labelled points of a ground truth) and an edge when both its ends are drawn.

``visualize.display_keypoints`` and the ``keypoints=`` argument of
``visualize.display_instances`` are these functions, re-exported.
"""
import numpy as np
from matplotlib.collections import LineCollection

__all__ = ["draw_keypoints", "display_keypoints"]


def _as_instances(keypoints):
    """float [N, K, 3] from [N, K, 3], [K, 3] or an empty array."""
    points = np.asarray(keypoints, dtype=np.float64)
    if points.ndim == 2:
        points = points[None]
    if points.size == 0:
        return np.zeros((0, 0, 3))
    if points.ndim != 3 or points.shape[-1] < 3:
        raise ValueError(f"keypoints must be [N, K, 3] or [K, 3] (x, y, visibility or "
                         f"score), got shape {np.shape(keypoints)}")
    return points


def draw_keypoints(ax, keypoints, skeleton=None, color="yellow", threshold=0.0,
                   marker_size=30, line_width=2.0, names=None):
    """Draw one instance's (or several instances') keypoints and skeleton into ``ax``.

    Args:
        ax: a matplotlib Axes showing the image (its data coordinates are pixels).
        keypoints: [K, 3] or [N, K, 3] (x, y, c), see the module docstring.
        skeleton: pairs (i, j) of 0-based keypoint indices joined by a line.
        color: one matplotlib colour for these points and edges.
        threshold: a point is drawn when its third value is above this.
        marker_size: scatter marker area in points².
        line_width: width of the skeleton lines.
        names: optional K labels written beside the drawn points.
    Returns:
        (PathCollection of the points, LineCollection of the edges or None).
    """
    points = _as_instances(keypoints)
    shown = points[..., 2] > threshold if points.size else np.zeros((0, 0), bool)
    segments = []
    for i, j in skeleton or ():
        for row in range(points.shape[0]):
            if shown[row, i] and shown[row, j]:
                segments.append([points[row, i, :2], points[row, j, :2]])
    edges = None
    if segments:
        edges = LineCollection(segments, colors=[color], linewidths=line_width, zorder=3)
        ax.add_collection(edges)
    xy = points[shown][:, :2] if points.size else np.zeros((0, 2))
    dots = ax.scatter(xy[:, 0], xy[:, 1], s=marker_size, c=[color], edgecolors="black",
                      linewidths=0.5, zorder=4)
    if names is not None:
        for row, k in zip(*np.nonzero(shown)):
            ax.text(points[row, k, 0] + 1.5, points[row, k, 1] - 1.5, str(names[k]),
                    color=color, size=8, zorder=5, clip_on=True)
    return dots, edges


def display_keypoints(image, keypoints, skeleton=None, colors=None, threshold=0.0,
                      names=None, title="", figsize=(8, 8), ax=None, marker_size=30,
                      line_width=2.0, save_path=None):
    """Show an image with the keypoints and skeleton edges of its instances.

    Args:
        image: [H, W, 3] image, values 0..255 (uint8 or float).
        keypoints: [N, K, 3] (or [K, 3]) (x, y, visibility or score) pixels of ``image``.
        skeleton: pairs (i, j) of 0-based keypoint indices to join, e.g.
            ``mrcnn.keypoints.COCO_PERSON_SKELETON``.
        colors: N matplotlib colours, one per instance (distinct random ones by default).
        threshold: points whose third value is not above it are left out (with their edges).
        names: K labels written beside the points (e.g. config.KEYPOINT_NAMES).
        title, figsize, ax: as ``visualize.display_instances``.
        marker_size, line_width: point area (points²) and edge width.
        save_path: write the figure there (PNG by its extension), headless.
    Returns:
        the Axes drawn on.
    """
    from mrcnn import visualize

    points = _as_instances(keypoints)
    created = ax is None
    if created:
        ax = visualize._new_axes(figsize)
    colors = visualize.random_colors(len(points)) if colors is None else list(colors)
    ax.imshow(visualize._rgb_uint8(image))
    for row in range(len(points)):
        draw_keypoints(ax, points[row], skeleton, colors[row], threshold, marker_size,
                       line_width, names)
    height, width = image.shape[:2]
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_xlim(-0.5, width - 0.5)
    ax.axis("off")
    ax.set_title(title)
    visualize._finish(ax.figure, created, save_path, show=True)
    return ax


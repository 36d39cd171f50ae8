"""Drawing helpers: images, instances (boxes, masks, captions), ROIs, precision-recall, weights.

The functions keep the names and arguments of matterport/Mask_RCNN's ``visualize`` module, so
notebook code such as::

    r = model.detect([image])[0]
    visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"],
                                dataset.class_names, r["scores"])

works unchanged. In addition every drawing function

* takes ``save_path=None``: when given, the figure is written there (PNG by its extension),
  which works headless with matplotlib's Agg backend;
* returns the matplotlib Axes it drew on (a list of Axes for the multi-panel functions),
  so ``ax.figure.savefig(...)`` works too. Returning Axes rather than the Figure keeps Jupyter
  from showing the picture twice when the call ends a cell.

``plt.show()`` is called (where the original called it) only when matplotlib's backend is
interactive (e.g. Jupyter's inline backend); with a non-interactive backend such as Agg
nothing is shown, and a figure written to ``save_path`` is closed after saving. The backend is
left to matplotlib, which falls back to Agg when there is no display.

Image coordinates: boxes are (y1, x1, y2, x2) in pixels with y2/x2 exclusive; pixel (row r,
column c) is centred on the point (x=c, y=r) of the drawing, as in ``imshow``.

Pixel helpers that need no matplotlib (:func:`apply_mask`, :func:`draw_box`,
:func:`mask_outline`, :func:`draw_mask_outline`, :func:`mask_contours`) work on numpy arrays.
"""
import colorsys
import html
import itertools
import random

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import lines, patches
from matplotlib.colors import to_rgb
from matplotlib.patches import Polygon
from skimage.measure import find_contours

__all__ = [
    "display_images", "random_colors", "apply_mask", "display_instances", "display_differences",
    "draw_rois", "draw_box", "display_top_masks", "plot_precision_recall", "plot_overlaps",
    "draw_boxes", "display_table", "display_weight_stats",
    "mask_outline", "draw_mask_outline", "mask_contours", "display_keypoints", "draw_keypoints",
]


############################################################
#  Backend and output
############################################################

def _non_interactive_backends():
    try:
        from matplotlib.backends import BackendFilter, backend_registry
        return {b.lower() for b in backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE)}
    except ImportError:  # matplotlib < 3.9
        return {b.lower() for b in matplotlib.rcsetup.non_interactive_bk}


def _backend_is_interactive():
    """True for backends that can show a window or a notebook output (not Agg, PDF, SVG...)."""
    return matplotlib.get_backend().lower() not in _non_interactive_backends()


def _in_notebook():
    """True inside a Jupyter (IPython kernel) session, where HTML output renders."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _new_axes(figsize):
    _, ax = plt.subplots(1, figsize=figsize, layout="constrained")
    return ax


def _finish(fig, created, save_path, show):
    """Saves ``fig`` to ``save_path`` if given, then shows or closes a figure we created.

    A figure the caller passed in (through ``ax``) is neither shown nor closed. One we created
    is shown when ``show`` and the backend is interactive; under a non-interactive backend it
    is closed once written to ``save_path`` (and left open otherwise, so that
    ``plt.savefig`` after the call still works as it did with the original module).
    """
    if save_path is not None:
        fig.savefig(save_path)
    if not created:
        return
    if _backend_is_interactive():
        if show:
            plt.show()
    elif save_path is not None:
        plt.close(fig)


############################################################
#  Colours and numpy pixel helpers
############################################################

def random_colors(N, bright=True, seed=None, shuffle=True):
    """N visually distinct colours: hues evenly spaced around the HSV circle.

    Args:
        N: number of colours.
        bright: full brightness (1.0) if True, 0.7 otherwise.
        seed: seed of the shuffle; None uses Python's global ``random`` (the original
            behaviour, a new order every call).
        shuffle: if False the colours come in hue order (deterministic).

    Returns:
        list of N (r, g, b) tuples of floats in [0, 1].
    """
    brightness = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / N, 1, brightness) for i in range(N)]
    if shuffle:
        (random if seed is None else random.Random(seed)).shuffle(colors)
    return colors


def _as_mask(mask, shape):
    """bool [H, W] from a bool or numeric mask (numbers > 0.5 count as inside)."""
    mask = np.asarray(mask)
    mask = mask if mask.dtype == bool else mask > 0.5
    if mask.shape != tuple(shape):
        raise ValueError(f"Mask shape {mask.shape} does not match the image's {tuple(shape)}")
    return mask


def _color_255(color):
    """float [3] in 0..255 from a matplotlib colour (an (r, g, b[, a]) tuple in 0..1 or a name)."""
    return np.array(to_rgb(color), dtype=np.float64) * 255


def apply_mask(image, mask, color, alpha=0.5):
    """Blends ``color`` into ``image`` where ``mask`` is set, in place, and returns ``image``.

    Each masked pixel of the first three channels becomes
    ``image * (1 - alpha) + alpha * color * 255``; other pixels are unchanged. For an integer
    image the result is rounded to the nearest integer and clipped to the dtype's range.

    Args:
        image: [H, W, C>=3] array, values 0..255 (any numeric dtype).
        mask: [H, W] bool, or numbers where > 0.5 means inside.
        color: (r, g, b) in 0..1 (an alpha entry is ignored) or a matplotlib colour name.
        alpha: opacity of the colour, 0..1.

    Returns:
        ``image`` itself, modified.
    """
    mask = _as_mask(mask, image.shape[:2])
    blended = image[mask, :3].astype(np.float64) * (1 - alpha) + alpha * _color_255(color)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        blended = np.clip(np.rint(blended), info.min, info.max)
    image[mask, :3] = blended.astype(image.dtype)
    return image


def draw_box(image, box, color):
    """Draws a 2-pixel box outline into ``image`` in place and returns it.

    The outline lies inside the box: rows y1, y1+1, y2-2, y2-1 and columns x1, x1+1, x2-2,
    x2-1 (y2/x2 exclusive), clipped to the image.

    Args:
        image: [H, W, C] or [H, W] array.
        box: (y1, x1, y2, x2) in pixels.
        color: a value broadcastable to one pixel, e.g. (255, 0, 0) for a uint8 RGB image.
    """
    height, width = image.shape[:2]
    y1, x1, y2, x2 = (int(v) for v in box[:4])
    y1, y2 = max(y1, 0), min(y2, height)
    x1, x2 = max(x1, 0), min(x2, width)
    if y2 <= y1 or x2 <= x1:
        return image
    image[y1:min(y1 + 2, y2), x1:x2] = color
    image[max(y2 - 2, y1):y2, x1:x2] = color
    image[y1:y2, x1:min(x1 + 2, x2)] = color
    image[y1:y2, max(x2 - 2, x1):x2] = color
    return image


def mask_outline(mask, thickness=1):
    """Border pixels of a mask: bool [H, W].

    A pixel is on the border when it is inside the mask and one of its 4 neighbours is
    outside (the image edge counts as outside). ``thickness`` > 1 peels further layers.
    """
    inside = np.asarray(mask, dtype=bool)
    interior = inside
    for _ in range(int(thickness)):
        padded = np.pad(interior, 1, constant_values=False)
        interior = (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
                    & padded[1:-1, :-2] & padded[1:-1, 2:])
    return inside & ~interior


def draw_mask_outline(image, mask, color, thickness=1):
    """Paints the border pixels of ``mask`` (see :func:`mask_outline`) in place; returns ``image``.

    Args:
        image: [H, W, C>=3] array with values 0..255.
        mask: [H, W] bool.
        color: (r, g, b) in 0..1 or a matplotlib colour name; stored as round(color * 255).
    """
    border = mask_outline(_as_mask(mask, image.shape[:2]), thickness)
    image[border, :3] = np.rint(_color_255(color)).astype(image.dtype)
    return image


def mask_contours(mask):
    """Outlines of a mask as polygons, e.g. for ``matplotlib.patches.Polygon``.

    The mask is padded by one pixel so shapes touching the image edge get closed outlines.

    Returns:
        list of float arrays [K, 2] of (x, y) vertices in image coordinates (pixel centres
        at integers), running along the 0.5 level between inside and outside pixels.
    """
    mask = np.asarray(mask, dtype=bool)
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=np.uint8)
    padded[1:-1, 1:-1] = mask
    return [np.fliplr(verts) - 1 for verts in find_contours(padded, 0.5)]


def _rgb_uint8(image):
    """uint8 [H, W, 3] copy of an image with values 0..255 (grey is repeated, alpha dropped)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3]
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image.astype(np.float64)), 0, 255).astype(np.uint8)
    return image.copy()


def _caption_box(color):
    """Background of a caption: the instance colour, darkened so white text reads on it."""
    return {"facecolor": tuple(0.55 * c for c in to_rgb(color)), "alpha": 0.75,
            "pad": 1.5, "edgecolor": "none"}


def _rectangle(box, **kwargs):
    """A patch enclosing the pixels of box (y1, x1, y2, x2), y2/x2 exclusive."""
    y1, x1, y2, x2 = (float(v) for v in box[:4])
    return patches.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, **kwargs)


def _class_name(class_names, class_id):
    class_id = int(class_id)
    if 0 <= class_id < len(class_names):
        return str(class_names[class_id])
    return f"class {class_id}"


############################################################
#  Images and instances
############################################################

def display_images(images, titles=None, cols=4, cmap=None, norm=None, interpolation=None,
                   save_path=None, figsize=None):
    """Shows a grid of images with optional titles.

    Args:
        images: list of [H, W, 3] images (values 0..255) or [H, W] arrays (drawn with ``cmap``).
        titles: list of strings, one per image.
        cols: images per row.
        cmap, norm, interpolation: passed to ``imshow``.
        save_path: write the figure to this file.
        figsize: (width, height) in inches; by default 14 inches wide.

    Returns:
        list of the Axes, one per image.
    """
    images = list(images)
    titles = list(titles) if titles is not None else [""] * len(images)
    cols = max(1, min(cols, len(images)) if images else cols)
    rows = max(1, -(-len(images) // cols))
    if figsize is None:
        figsize = (14, max(2, 14 * rows / cols))
    fig = plt.figure(figsize=figsize, layout="constrained")
    axes = []
    for i, (image, title) in enumerate(zip(images, titles)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        image = np.asarray(image)
        if image.ndim == 3:
            image = np.clip(image, 0, 255).astype(np.uint8)
        ax.imshow(image, cmap=cmap, norm=norm, interpolation=interpolation)
        axes.append(ax)
    _finish(fig, True, save_path, show=True)
    return axes


def display_instances(image, boxes, masks, class_ids, class_names,
                      scores=None, title="",
                      figsize=(16, 16), ax=None,
                      show_mask=True, show_bbox=True,
                      colors=None, captions=None, save_path=None, keypoints=None,
                      skeleton=None, keypoint_threshold=0.0):
    """Draws instances over an image: masks blended in, mask outlines, boxes and captions.

    Args:
        image: [H, W, 3] image, values 0..255 (uint8 or float).
        boxes: [N, (y1, x1, y2, x2)] in pixels of ``image``; all-zero rows are skipped.
        masks: bool [H, W, N] (or None to draw boxes only).
        class_ids: int [N], indices into ``class_names``.
        class_names: list of class names (index 0 is the background).
        scores: optional [N] confidences, shown as "name 0.953".
        title: axes title.
        figsize: figure size in inches when a new figure is made.
        ax: draw into this Axes instead of a new figure.
        show_mask, show_bbox: draw the blended masks / the boxes (outlines are always drawn).
        colors: list of N matplotlib colours; distinct random colours by default.
        captions: list of N strings replacing the "name score" captions.
        save_path: write the figure to this file (e.g. "out.png").
        keypoints: optional [N, K, 3] (x, y, visibility or score), e.g. detect()'s
            "keypoints", drawn in each instance's colour (see mrcnn.visualize_keypoints);
            skeleton: (i, j) index pairs joined by lines; keypoint_threshold: points
            whose third value is not above it are left out.

    Returns:
        the Axes drawn on.
    """
    boxes = np.zeros([0, 4]) if boxes is None else np.asarray(boxes)
    class_ids = np.asarray(class_ids)
    N = boxes.shape[0]
    if not N:
        print("\n*** No instances to display *** \n")
    elif masks is not None:
        assert boxes.shape[0] == masks.shape[-1] == class_ids.shape[0], (
            f"{boxes.shape[0]} boxes, {masks.shape[-1]} masks, {class_ids.shape[0]} class ids")
    else:
        assert boxes.shape[0] == class_ids.shape[0]

    created = ax is None
    if created:
        ax = _new_axes(figsize)
    colors = random_colors(N) if colors is None else list(colors)

    height, width = image.shape[:2]
    ax.set_ylim(height + 10, -10)
    ax.set_xlim(-10, width + 10)
    ax.axis("off")
    ax.set_title(title)

    masked_image = _rgb_uint8(image)
    for i in range(N):
        color = colors[i]
        if not np.any(boxes[i]):
            continue  # padding, or an instance that was cropped away
        y1, x1, y2, x2 = boxes[i][:4]
        if show_bbox:
            ax.add_patch(_rectangle(boxes[i], linewidth=2, alpha=0.7, linestyle="dashed",
                                    edgecolor=color, facecolor="none"))
        if captions is None:
            label = _class_name(class_names, class_ids[i])
            score = scores[i] if scores is not None else None
            caption = "{} {:.3f}".format(label, score) if score is not None else label
        else:
            caption = captions[i]
        if caption:
            ax.text(x1, y1, caption, color="w", size=11, verticalalignment="top",
                    bbox=_caption_box(color), clip_on=True)
        if masks is not None:
            mask = masks[:, :, i]
            if show_mask:
                apply_mask(masked_image, mask, color)
            for verts in mask_contours(mask):
                ax.add_patch(Polygon(verts, facecolor="none", edgecolor=color))
        if keypoints is not None:
            draw_keypoints(ax, keypoints[i], skeleton, color, keypoint_threshold)
    ax.imshow(masked_image)
    _finish(ax.figure, created, save_path, show=True)
    return ax


def display_differences(image,
                        gt_box, gt_class_id, gt_mask,
                        pred_box, pred_class_id, pred_score, pred_mask,
                        class_names, title="", ax=None,
                        show_mask=True, show_box=True,
                        iou_threshold=0.5, score_threshold=0.5, save_path=None):
    """Ground truth (green) and predictions (red) on one image; captions "score / IoU".

    A prediction's IoU is with the ground truth it matched, or its best IoU when unmatched.
    Matching is ``utils.compute_matches``.

    Args:
        image: [H, W, 3], values 0..255.
        gt_box: [G, (y1, x1, y2, x2)] pixels; gt_class_id: int [G]; gt_mask: bool [H, W, G].
        pred_box: [P, (y1, x1, y2, x2)]; pred_class_id: int [P]; pred_score: [P];
            pred_mask: bool [H, W, P].
        class_names: list of class names.
        iou_threshold, score_threshold: passed to ``compute_matches``.
        save_path: write the figure to this file.

    Returns:
        the Axes drawn on.
    """
    from mrcnn import utils

    gt_box, pred_box = np.asarray(gt_box), np.asarray(pred_box)
    gt_class_id, pred_class_id = np.asarray(gt_class_id), np.asarray(pred_class_id)
    pred_score = np.asarray(pred_score, dtype=np.float64)
    # Sort predictions by score here, so the match indices (in score order) line up with them.
    order = np.argsort(-pred_score, kind="stable")
    pred_box, pred_class_id = pred_box[order], pred_class_id[order]
    pred_score, pred_mask = pred_score[order], pred_mask[..., order]
    gt_match, pred_match, overlaps = utils.compute_matches(
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
        iou_threshold=iou_threshold, score_threshold=score_threshold)

    n_gt, n_pred = len(gt_box), len(pred_box)
    colors = [(0, 1, 0, .8)] * n_gt + [(1, 0, 0, 1)] * n_pred
    class_ids = np.concatenate([gt_class_id, pred_class_id]).astype(np.int32)
    scores = np.concatenate([np.zeros([n_gt]), pred_score])
    boxes = np.concatenate([gt_box.reshape(-1, 4), pred_box.reshape(-1, 4)])
    masks = np.concatenate([gt_mask, pred_mask], axis=-1)

    def iou_of(i):
        if i >= overlaps.shape[0] or overlaps.shape[1] == 0:
            return 0.0
        j = int(pred_match[i])
        return overlaps[i, j] if j > -1 else overlaps[i].max()

    captions = [""] * n_gt + ["{:.2f} / {:.2f}".format(pred_score[i], iou_of(i))
                              for i in range(n_pred)]
    title = title or "Ground Truth and Detections\n GT=green, pred=red, captions: score/IoU"
    return display_instances(image, boxes, masks, class_ids, class_names, scores, ax=ax,
                             show_bbox=show_box, show_mask=show_mask, colors=colors,
                             captions=captions, title=title, save_path=save_path)


def draw_rois(image, rois, refined_rois, mask, class_ids, class_names, limit=10,
              save_path=None, figsize=(12, 12)):
    """Shows ROIs (dashed) and their refinements (solid) with the masks of positive ones.

    Draws at most ``limit`` ROIs chosen at random (``np.random``). Background ROIs (class 0)
    are grey and have no refinement.

    Args:
        image: [H, W, 3], values 0..255.
        rois: [N, (y1, x1, y2, x2)] pixels.
        refined_rois: [N, (y1, x1, y2, x2)] pixels, the ROIs after box refinement.
        mask: [N, h, w] float mask of each ROI's class (e.g. 28x28 targets).
        class_ids: int [N]; class_names: list of class names.
        save_path: write the figure to this file.

    Returns:
        the Axes drawn on.
    """
    from mrcnn import utils

    rois, refined_rois, class_ids = np.asarray(rois), np.asarray(refined_rois), np.asarray(class_ids)
    masked_image = _rgb_uint8(image)
    ids = np.arange(rois.shape[0], dtype=np.int32)
    ids = np.random.choice(ids, limit, replace=False) if ids.shape[0] > limit else ids

    ax = _new_axes(figsize)
    if rois.shape[0] > limit:
        ax.set_title("Showing {} random ROIs out of {}".format(len(ids), rois.shape[0]))
    else:
        ax.set_title("{} ROIs".format(len(ids)))
    ax.set_ylim(image.shape[0] + 20, -20)
    ax.set_xlim(-50, image.shape[1] + 20)
    ax.axis("off")

    for roi_id in ids:
        color = tuple(np.random.rand(3))
        class_id = int(class_ids[roi_id])
        y1, x1, y2, x2 = rois[roi_id][:4]
        ax.add_patch(_rectangle(rois[roi_id], linewidth=2, edgecolor=color if class_id else "gray",
                                facecolor="none", linestyle="dashed"))
        if class_id:
            ry1, rx1, ry2, rx2 = refined_rois[roi_id][:4]
            ax.add_patch(_rectangle(refined_rois[roi_id], linewidth=2, edgecolor=color,
                                    facecolor="none"))
            ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
            ax.text(rx1, ry1, _class_name(class_names, class_id), color="w", size=11,
                    verticalalignment="top", bbox=_caption_box(color), clip_on=True)
            m = utils.unmold_mask(mask[roi_id], rois[roi_id][:4].astype(np.int32), image.shape)
            apply_mask(masked_image, m, color)
    ax.imshow(masked_image)

    positives = int((class_ids > 0).sum())
    print("Positive ROIs: ", positives)
    print("Negative ROIs: ", int((class_ids == 0).sum()))
    print("Positive Ratio: {:.2f}".format(positives / max(class_ids.shape[0], 1)))
    _finish(ax.figure, True, save_path, show=False)
    return ax


def display_top_masks(image, mask, class_ids, class_names, limit=4, save_path=None):
    """Shows the image and, for the ``limit`` classes of largest mask area, their masks.

    Each panel labels the instances of one class 1..n (so overlapping instances stay apart).

    Args:
        image: [H, W, 3], values 0..255.
        mask: bool [H, W, N]; class_ids: int [N]; class_names: list of class names.
        save_path: write the figure to this file.

    Returns:
        list of the Axes (image first).
    """
    class_ids = np.asarray(class_ids)
    to_display = [image]
    titles = ["H x W={}x{}".format(image.shape[0], image.shape[1])]
    unique_class_ids = np.unique(class_ids)
    mask_area = [np.sum(mask[:, :, np.where(class_ids == i)[0]]) for i in unique_class_ids]
    top_ids = [v[0] for v in sorted(zip(unique_class_ids, mask_area), key=lambda r: r[1], reverse=True)
               if v[1] > 0]
    for i in range(limit):
        class_id = top_ids[i] if i < len(top_ids) else -1
        m = mask[:, :, np.where(class_ids == class_id)[0]]
        m = np.sum(m * np.arange(1, m.shape[-1] + 1), -1)
        to_display.append(m)
        titles.append(_class_name(class_names, class_id) if class_id != -1 else "-")
    return display_images(to_display, titles=titles, cols=limit + 1, cmap="Blues_r",
                          save_path=save_path)


############################################################
#  Evaluation plots
############################################################

def plot_precision_recall(AP, precisions, recalls, ax=None, save_path=None):
    """Precision-recall curve (from ``utils.compute_ap``) titled with the AP.

    Args:
        AP: average precision (float).
        precisions, recalls: [K] arrays of the same length.
        ax: draw into this Axes instead of a new figure.
        save_path: write the figure to this file.

    Returns:
        the Axes drawn on.
    """
    created = ax is None
    if created:
        ax = _new_axes(None)
    ax.set_title("Precision-Recall Curve. AP@50 = {:.3f}".format(AP))
    ax.set_ylim(0, 1.1)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.plot(recalls, precisions)
    _finish(ax.figure, created, save_path, show=False)
    return ax


def plot_overlaps(gt_class_ids, pred_class_ids, pred_scores,
                  overlaps, class_names, threshold=0.5, ax=None, save_path=None, figsize=(12, 10)):
    """Grid of IoU between predictions (rows) and ground truth (columns).

    Cells above ``threshold`` say "match" (same class) or "wrong" (different class).

    Args:
        gt_class_ids: int [G] (background 0 entries are dropped).
        pred_class_ids: int [P] (0 entries dropped); pred_scores: [P].
        overlaps: [P, G] IoU, e.g. from ``utils.compute_matches``.
        class_names: list of class names.
        save_path: write the figure to this file.

    Returns:
        the Axes drawn on.
    """
    gt_class_ids = np.asarray(gt_class_ids)
    pred_class_ids = np.asarray(pred_class_ids)
    pred_scores = np.asarray(pred_scores)
    gt_class_ids = gt_class_ids[gt_class_ids != 0]
    keep = pred_class_ids != 0
    pred_class_ids, pred_scores = pred_class_ids[keep], pred_scores[keep]
    overlaps = np.asarray(overlaps)

    created = ax is None
    if created:
        ax = _new_axes(figsize)
    ax.imshow(overlaps, interpolation="nearest", cmap=plt.cm.Blues, vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(pred_class_ids)),
                  ["{} ({:.2f})".format(_class_name(class_names, c), pred_scores[i])
                   for i, c in enumerate(pred_class_ids)])
    ax.set_xticks(np.arange(len(gt_class_ids)),
                  [_class_name(class_names, c) for c in gt_class_ids], rotation=90)

    thresh = overlaps.max() / 2. if overlaps.size else 0
    for i, j in itertools.product(range(overlaps.shape[0]), range(overlaps.shape[1])):
        text = ""
        if overlaps[i, j] > threshold:
            text = "match" if gt_class_ids[j] == pred_class_ids[i] else "wrong"
        color = ("white" if overlaps[i, j] > thresh
                 else "black" if overlaps[i, j] > 0
                 else "grey")
        ax.text(j, i, "{:.3f}\n{}".format(overlaps[i, j], text),
                horizontalalignment="center", verticalalignment="center",
                fontsize=9, color=color)
    ax.set_xlabel("Ground Truth")
    ax.set_ylabel("Predictions")
    _finish(ax.figure, created, save_path, show=False)
    return ax


def draw_boxes(image, boxes=None, refined_boxes=None,
               masks=None, captions=None, visibilities=None,
               title="", ax=None, save_path=None, figsize=(12, 12)):
    """Draws boxes, refined boxes, masks and captions with per-box visibility.

    Args:
        image: [H, W, 3], values 0..255.
        boxes: [N, (y1, x1, y2, x2)] pixels, drawn dotted (all-zero rows skipped).
        refined_boxes: like ``boxes``, drawn solid and joined to their box by a line.
        masks: bool [H, W, N].
        captions: list of N strings, drawn at the top-left of each (refined) box.
        visibilities: list of N values in {0, 1, 2}: 0 grey dotted, 1 coloured dotted,
            2 coloured solid (default 1).
        title: axes title.
        ax: draw into this Axes instead of a new figure.
        save_path: write the figure to this file.

    Returns:
        the Axes drawn on.
    """
    assert boxes is not None or refined_boxes is not None, "Give boxes or refined_boxes"
    N = len(boxes) if boxes is not None else len(refined_boxes)

    created = ax is None
    if created:
        ax = _new_axes(figsize)
    colors = random_colors(N)
    margin = image.shape[0] // 10
    ax.set_ylim(image.shape[0] + margin, -margin)
    ax.set_xlim(-margin, image.shape[1] + margin)
    ax.axis("off")
    ax.set_title(title)

    masked_image = _rgb_uint8(image)
    for i in range(N):
        visibility = visibilities[i] if visibilities is not None else 1
        if visibility == 0:
            color, style, alpha = "gray", "dotted", 0.5
        elif visibility == 1:
            color, style, alpha = colors[i], "dotted", 1
        else:
            color, style, alpha = colors[i], "solid", 1

        corner = None
        if boxes is not None:
            if not np.any(boxes[i]):
                continue
            y1, x1, y2, x2 = boxes[i][:4]
            corner = (x1, y1)
            ax.add_patch(_rectangle(boxes[i], linewidth=2, alpha=alpha, linestyle=style,
                                    edgecolor=color, facecolor="none"))
        if refined_boxes is not None and visibility > 0:
            ry1, rx1, ry2, rx2 = np.asarray(refined_boxes[i][:4]).astype(np.int32)
            ax.add_patch(_rectangle((ry1, rx1, ry2, rx2), linewidth=2, edgecolor=color,
                                    facecolor="none"))
            if boxes is not None:
                ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
            corner = (rx1, ry1)
        if captions is not None and corner is not None:
            ax.text(corner[0], corner[1], captions[i], size=11, verticalalignment="top",
                    color="w", bbox=_caption_box(color), clip_on=True)
        if masks is not None:
            mask = masks[:, :, i]
            apply_mask(masked_image, mask, color)
            for verts in mask_contours(mask):
                ax.add_patch(Polygon(verts, facecolor="none", edgecolor=color))
    ax.imshow(masked_image)
    _finish(ax.figure, created, save_path, show=False)
    return ax


############################################################
#  Tables
############################################################

def _table_text(table):
    """Rows of cells as aligned plain text (columns padded to their widest cell)."""
    rows = [[str(cell) for cell in row] for row in table]
    if not rows:
        return ""
    n_cols = max(len(r) for r in rows)
    rows = [r + [""] * (n_cols - len(r)) for r in rows]
    widths = [max(len(r[c]) for r in rows) for c in range(n_cols)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def display_table(table):
    """Shows a table (a list of rows, each a list of cells; the first row is the header).

    Renders an HTML table in Jupyter and prints aligned text elsewhere.
    """
    if _in_notebook():
        import IPython.display

        body = "".join(
            "<tr>" + "".join("<td>{}</td>".format(html.escape(str(cell))) for cell in row) + "</tr>"
            for row in table)
        IPython.display.display(IPython.display.HTML("<table>" + body + "</table>"))
    else:
        print(_table_text(table))


def _weight_values(variable):
    if hasattr(variable, "numpy"):
        return np.asarray(variable.numpy())
    return np.asarray(variable)


def display_weight_stats(model):
    """Table of every weight of a Keras model: name, shape, min, max, std, and warnings.

    ``model`` is a ``keras.Model`` or a ``MaskRCNN`` (its ``keras_model`` is used). Flags:
    "*** NaN/Inf" for non-finite values, "*** dead?" for a kernel (2+ dimensions) whose
    values are all equal (std 0; constant biases and normalisation parameters are normal),
    "*** Overflow?" for values above 1000 in magnitude.
    """
    model = getattr(model, "keras_model", model)
    table = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for variable in model.weights:
        name = getattr(variable, "path", None) or variable.name
        w = _weight_values(variable).astype(np.float64)
        alert = ""
        if w.size == 0:
            table.append([name, str(w.shape), "", "", ""])
            continue
        finite = np.isfinite(w)
        if not finite.all():
            alert += " *** NaN/Inf"
        values = w[finite] if finite.any() else np.zeros(1)
        if w.ndim >= 2 and finite.all() and values.min() == values.max():
            alert += " *** dead?"
        if np.abs(values).max() > 1000:
            alert += " *** Overflow?"
        table.append([name + alert, str(w.shape),
                      "{:+9.4f}".format(values.min()),
                      "{:+10.4f}".format(values.max()),
                      "{:+9.4f}".format(values.std())])
    display_table(table)


from mrcnn.visualize_keypoints import display_keypoints, draw_keypoints  # noqa: E402


# The evaluation pictures live in mrcnn.visualize_evaluation (which uses this module's
# helpers); they are reachable from here too, as visualize.plot_confusion_matrix etc.
_EVALUATION_PICTURES = ("plot_confusion_matrix", "plot_precision_recall_curves",
                        "plot_f1_by_threshold")


def __getattr__(name):
    if name in _EVALUATION_PICTURES:
        from mrcnn import visualize_evaluation
        return getattr(visualize_evaluation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

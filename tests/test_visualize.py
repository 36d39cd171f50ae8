"""visualize: numpy pixel helpers exactly, and every drawing function headless to PNG."""
import os

os.environ["MPLBACKEND"] = "Agg"

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mrcnn import visualize  # noqa: E402
from mrcnn.shapes import ShapesDataset  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def shapes_sample():
    """A 128x128 shapes image with 3 or more instances: image, masks, boxes, class ids, names."""
    ds = ShapesDataset()
    ds.load_shapes(20, 128, 128, seed=1)
    ds.prepare()
    image_id = next(i for i in ds.image_ids if len(ds.image_reference(i)) >= 3)
    image = ds.load_image(image_id)
    masks, class_ids = ds.load_mask(image_id)
    return image, masks, _boxes(masks), class_ids, ds.class_names


def _boxes(masks):
    """[N, (y1, x1, y2, x2)] boxes of bool masks [H, W, N], y2/x2 exclusive."""
    boxes = []
    for i in range(masks.shape[-1]):
        ys, xs = np.nonzero(masks[..., i])
        boxes.append([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])
    return np.array(boxes, dtype=np.int32)


def read_png(path):
    """RGB uint8 pixels of a PNG written by matplotlib, checked not to be blank."""
    assert os.path.getsize(path) > 0
    png = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert png is not None, f"{path} does not decode"
    png = png[..., ::-1]
    assert png.shape[0] > 50 and png.shape[1] > 50
    assert png.std() > 5 and len(np.unique(png.reshape(-1, 3), axis=0)) > 5, "blank picture"
    return png


############################################################
#  numpy pixel helpers
############################################################

def test_apply_mask_blends_exactly_the_masked_pixels():
    rng = np.random.RandomState(0)
    image = rng.randint(0, 256, (6, 5, 3)).astype(np.uint8)
    image[2, 3] = [100, 50, 201]
    mask = np.zeros((6, 5), bool)
    mask[1:4, 2:5] = True
    original = image.copy()
    out = visualize.apply_mask(image, mask, (0.2, 0.4, 1.0), alpha=0.3)
    assert out is image  # in place, as the original function
    # Hand-computed: 100*0.7 + 0.3*0.2*255 = 85.3; 50*0.7 + 0.3*0.4*255 = 65.6;
    # 201*0.7 + 0.3*1.0*255 = 217.2.
    np.testing.assert_array_equal(image[2, 3], [85, 66, 217])
    np.testing.assert_array_equal(image[~mask], original[~mask])
    expected = np.rint(original[mask] * 0.7 + 0.3 * np.array([0.2, 0.4, 1.0]) * 255)
    np.testing.assert_array_equal(image[mask], expected.astype(np.uint8))
    assert (image[mask] != original[mask]).any(axis=-1).all()


def test_apply_mask_float_image_and_numeric_mask():
    image = np.full((3, 3, 3), 10.0)
    mask = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    visualize.apply_mask(image, mask, (1.0, 0.0, 0.5))
    np.testing.assert_allclose(image[0, 0], [5 + 127.5, 5, 5 + 63.75])
    np.testing.assert_allclose(image[1, 1], image[0, 0])
    np.testing.assert_array_equal(image[0, 1], [10, 10, 10])
    with pytest.raises(ValueError, match="shape"):
        visualize.apply_mask(image, np.ones((2, 2), bool), (1, 0, 0))


def test_draw_box_outline_inside_box():
    image = np.zeros((10, 10), np.uint8)
    visualize.draw_box(image, (2, 3, 8, 9), 7)
    expected = np.zeros((10, 10), np.uint8)
    expected[2:8, 3:9] = 7
    expected[4:6, 5:7] = 0  # interior
    np.testing.assert_array_equal(image, expected)
    # A box larger than the image is clipped: its outline runs along the image edge.
    rgb = visualize.draw_box(np.zeros((6, 6, 3), np.uint8), (-5, -5, 50, 50), (255, 0, 0))
    ring = np.ones((6, 6), bool)
    ring[2:4, 2:4] = False
    np.testing.assert_array_equal(rgb[..., 0] == 255, ring)
    assert not rgb[..., 1:].any()


def test_mask_outline_and_contours():
    mask = np.zeros((7, 8), bool)
    mask[1:6, 2:7] = True
    border = visualize.mask_outline(mask)
    expected = mask.copy()
    expected[2:5, 3:6] = False
    np.testing.assert_array_equal(border, expected)
    # A mask touching the image edge is outlined along the edge too.
    np.testing.assert_array_equal(visualize.mask_outline(np.ones((3, 3), bool)),
                                  [[1, 1, 1], [1, 0, 1], [1, 1, 1]])
    image = np.zeros((7, 8, 3), np.uint8)
    visualize.draw_mask_outline(image, mask, (0, 1, 0))
    np.testing.assert_array_equal(image[..., 1] == 255, expected)
    assert not image[..., [0, 2]].any()

    contours = visualize.mask_contours(mask)
    assert len(contours) == 1
    xs, ys = contours[0][:, 0], contours[0][:, 1]
    # The 0.5 level runs half a pixel outside the pixel centres of columns 2..6, rows 1..5.
    assert xs.min() == pytest.approx(1.5) and xs.max() == pytest.approx(6.5)
    assert ys.min() == pytest.approx(0.5) and ys.max() == pytest.approx(5.5)


def test_random_colors():
    colors = visualize.random_colors(12)
    assert len(colors) == 12 and len(set(colors)) == 12
    assert all(0 <= c <= 1 for rgb in colors for c in rgb)
    assert visualize.random_colors(5, seed=3) == visualize.random_colors(5, seed=3)
    assert visualize.random_colors(3, shuffle=False) == [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    assert max(max(c) for c in visualize.random_colors(4, bright=False)) == pytest.approx(0.7)


############################################################
#  Figures
############################################################

def _png_pixel(ax, png, col, row):
    """PNG pixel where image pixel (row, col) is drawn (figure saved at its own dpi)."""
    x, y = ax.transData.transform((col, row))
    return png[int(png.shape[0] - y), int(x)]


def test_display_instances_mask_colour_inside_mask(shapes_sample, tmp_path):
    image, masks, boxes, class_ids, names = shapes_sample
    n = masks.shape[-1]
    colors = visualize.random_colors(n, seed=0)
    path = tmp_path / "instances.png"
    ax = visualize.display_instances(image, boxes, masks, class_ids, names, figsize=(6, 6),
                                     colors=colors, captions=[""] * n, save_path=str(path))
    png = read_png(path)
    assert png.shape[:2] == (600, 600)
    assert not plt.fignum_exists(ax.figure.number), "saved figure is closed under Agg"
    for i in range(n):
        # The mask pixel farthest from the mask's border.
        distance = cv2.distanceTransform(masks[..., i].astype(np.uint8), cv2.DIST_L2, 5)
        row, col = np.unravel_index(np.argmax(distance), distance.shape)
        assert distance[row, col] >= 3
        blended = np.rint(image[row, col] * 0.5 + 0.5 * np.array(colors[i]) * 255)
        drawn = _png_pixel(ax, png, col, row).astype(int)
        assert np.abs(drawn - blended).max() <= 2, (i, drawn, blended, image[row, col])
        assert np.abs(drawn - image[row, col].astype(int)).max() > 10


def test_display_instances_captions_and_boxes(shapes_sample):
    image, masks, boxes, class_ids, names = shapes_sample
    n = masks.shape[-1]
    scores = np.linspace(0.9, 0.5, n)
    ax = visualize.display_instances(image, boxes, masks, class_ids, names, scores, figsize=(4, 4))
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["{} {:.3f}".format(names[c], s) for c, s in zip(class_ids, scores)]
    rects = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert len(rects) == n
    # Rectangles enclose the pixels: from x1 - 0.5 to x2 - 0.5.
    assert rects[0].get_x() == boxes[0, 1] - 0.5 and rects[0].get_width() == boxes[0, 3] - boxes[0, 1]
    # Without save_path the figure stays open, so plt.savefig after the call works.
    assert plt.fignum_exists(ax.figure.number)


def test_display_instances_into_given_axes_and_no_instances(tmp_path, capsys):
    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    image = np.full((32, 32, 3), 90, np.uint8)
    image[8:20, 8:20] = 200
    ax = visualize.display_instances(image, np.zeros((0, 4)), np.zeros((32, 32, 0), bool),
                                     np.zeros(0, int), ["BG"], ax=axes[1])
    assert ax is axes[1]
    assert "No instances" in capsys.readouterr().out
    fig.savefig(tmp_path / "given.png")
    read_png(tmp_path / "given.png")


def test_show_only_on_interactive_backends(shapes_sample, monkeypatch):
    image, masks, boxes, class_ids, names = shapes_sample
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(1))
    visualize.display_instances(image, boxes, masks, class_ids, names, figsize=(2, 2))
    assert shown == []  # Agg: never plt.show()
    monkeypatch.setattr(visualize, "_backend_is_interactive", lambda: True)
    visualize.display_instances(image, boxes, masks, class_ids, names, figsize=(2, 2))
    assert shown == [1]
    _, ax = plt.subplots()
    visualize.display_instances(image, boxes, masks, class_ids, names, ax=ax)
    assert shown == [1]  # a caller's Axes is never shown for them


def _blue_r(value):
    """RGB uint8 of the "Blues_r" colour map at `value` in [0, 1]."""
    return np.rint(np.array(matplotlib.colormaps["Blues_r"](value)[:3]) * 255)


def _inner_pixel(mask):
    """(row, col) of the mask pixel farthest from the mask's border, and that distance."""
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    row, col = np.unravel_index(np.argmax(distance), distance.shape)
    return row, col, distance[row, col]


def test_display_images(shapes_sample, tmp_path):
    image, masks, *_ = shapes_sample
    path = tmp_path / "images.png"
    axes = visualize.display_images([image, masks[..., 0], image.astype(np.float32) + 300],
                                    titles=["rgb", "mask", "float"], cols=2,
                                    cmap="Blues_r", save_path=str(path), figsize=(6, 6))
    assert len(axes) == 3 and [a.get_title() for a in axes] == ["rgb", "mask", "float"]
    # One image per Axes, holding the input (RGB values clipped to 0..255 as uint8).
    assert [len(a.images) for a in axes] == [1, 1, 1]
    np.testing.assert_array_equal(axes[0].images[0].get_array(), image)
    np.testing.assert_array_equal(axes[1].images[0].get_array(), masks[..., 0])
    np.testing.assert_array_equal(axes[2].images[0].get_array(), np.full_like(image, 255))
    # Two panels per row: the third starts a second row below the first.
    assert axes[2].get_position().y1 < axes[0].get_position().y0
    png = read_png(path)
    row, col, depth = _inner_pixel(masks[..., 0])
    assert depth >= 3
    drawn = _png_pixel(axes[0], png, col, row).astype(int)
    assert np.abs(drawn - image[row, col]).max() <= 2, (drawn, image[row, col])
    # The mask panel: True pixels at the light end of Blues_r, False at the dark end.
    outside_row, outside_col, _ = _inner_pixel(~masks[..., 0])
    for (r, c), value in (((row, col), 1.0), ((outside_row, outside_col), 0.0)):
        drawn = _png_pixel(axes[1], png, c, r).astype(int)
        assert np.abs(drawn - _blue_r(value)).max() <= 2, (value, drawn)
    assert np.abs(_png_pixel(axes[2], png, col, row).astype(int) - 255).max() <= 2


def test_display_top_masks(shapes_sample, tmp_path):
    image, masks, _, class_ids, names = shapes_sample
    path = tmp_path / "top.png"
    axes = visualize.display_top_masks(image, masks, class_ids, names, limit=3,
                                       save_path=str(path))
    assert len(axes) == 4
    np.testing.assert_array_equal(axes[0].images[0].get_array(), image)
    # Classes by total mask area, largest first; each panel labels that class's
    # instances 1, 2, ... in instance order and is 0 elsewhere.
    areas = {c: masks[..., class_ids == c].sum() for c in np.unique(class_ids)}
    order = sorted(areas, key=lambda c: -areas[c])
    assert [a.get_title() for a in axes[1:]] == [names[c] for c in order] + ["-"] * (3 - len(order))
    for ax, class_id in zip(axes[1:], order):
        expected = np.zeros(image.shape[:2], int)
        for label, k in enumerate(np.flatnonzero(class_ids == class_id), start=1):
            expected[masks[..., k]] = label          # instances of shapes do not overlap
        np.testing.assert_array_equal(ax.images[0].get_array(), expected)
    for ax in axes[1 + len(order):]:
        assert not np.any(ax.images[0].get_array())
    png = read_png(path)
    # The largest class's panel shows its masks light, the background dark.
    first = masks[..., class_ids == order[0]].any(axis=-1)
    row, col, _ = _inner_pixel(first)
    labels = axes[1].images[0].get_array()
    light = _blue_r(labels[row, col] / labels.max())
    assert np.abs(_png_pixel(axes[1], png, col, row).astype(int) - light).max() <= 2
    row, col, _ = _inner_pixel(~first)
    assert np.abs(_png_pixel(axes[1], png, col, row).astype(int) - _blue_r(0.0)).max() <= 2


def _inside(point, box):
    y, x = point
    return box[0] <= y < box[2] and box[1] <= x < box[3]


def test_draw_rois(shapes_sample, tmp_path, capsys):
    image, masks, boxes, class_ids, names = shapes_sample
    rois = np.concatenate([boxes, [[0, 0, 40, 40], [60, 70, 100, 120]]])
    refined = rois + [2, -2, 3, 1]
    roi_class_ids = np.concatenate([class_ids, [0, 0]])
    n, positives = len(rois), len(class_ids)
    yy, xx = np.mgrid[0:28, 0:28]
    roi_masks = np.repeat((((yy - 13.5) ** 2 + (xx - 13.5) ** 2) < 100).astype(np.float32)[None],
                          len(rois), axis=0)
    np.random.seed(0)
    path = tmp_path / "rois.png"
    ax = visualize.draw_rois(image, rois, refined, roi_masks, roi_class_ids, names, limit=10,
                             save_path=str(path), figsize=(5, 5))
    assert ax.get_title() == "{} ROIs".format(n)
    assert "Positive ROIs:  {}".format(positives) in capsys.readouterr().out

    # A dashed rectangle per ROI (grey for background), a solid one per positive ROI's
    # refinement, a line from each positive ROI's corner to its refinement's, a caption.
    def corners(box):
        return (box[1] - 0.5, box[0] - 0.5, box[3] - box[1], box[2] - box[0])

    rects = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    dashed = [p for p in rects if p.get_linestyle() in ("--", "dashed")]
    solid = [p for p in rects if p.get_linestyle() in ("-", "solid")]
    assert len(rects) == n + positives
    assert sorted((p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in dashed) == \
        sorted(corners(box) for box in rois)
    assert sorted((p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in solid) == \
        sorted(corners(box) for box in refined[:positives])
    grey = matplotlib.colors.to_rgba("gray")
    for p in dashed:
        is_background = (p.get_x(), p.get_y()) in [(-0.5, -0.5), (69.5, 59.5)]
        assert (p.get_edgecolor() == grey) == is_background
    assert len(ax.lines) == positives
    assert sorted(t.get_text() for t in ax.texts) == sorted(names[c] for c in class_ids)

    # The mask of each positive ROI (a disc at the ROI's centre) is blended into the
    # image in its refinement's colour; background ROIs get no mask.
    drawn = ax.images[0].get_array()
    colours = {(p.get_x(), p.get_y(), p.get_width(), p.get_height()): p.get_edgecolor()[:3]
               for p in solid}
    png = read_png(path)
    checked = 0
    for index, box in enumerate(rois):
        centre = ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
        others = [b for k, b in enumerate(rois[:positives]) if k != index]
        if any(_inside(centre, b) for b in others):
            continue
        original = image[centre].astype(float)
        if index < positives:
            colour = np.array(colours[corners(refined[index])])
            expected = np.rint(original * 0.5 + 0.5 * colour * 255)
        else:
            expected = original
        np.testing.assert_array_equal(drawn[centre], expected.astype(np.uint8))
        png_pixel = _png_pixel(ax, png, centre[1], centre[0]).astype(int)
        assert np.abs(png_pixel - expected).max() <= 2, (index, png_pixel, expected)
        checked += 1
    assert checked >= 3
    # Far from every ROI the image is unchanged.
    outside = np.ones(image.shape[:2], bool)
    for y1, x1, y2, x2 in rois:
        outside[max(y1, 0):y2, max(x1, 0):x2] = False
    np.testing.assert_array_equal(drawn[outside], image[outside])


def test_plot_precision_recall(tmp_path):
    path = tmp_path / "pr.png"
    precisions = np.array([1, 1, 0.67, 0.75, 0.6])
    recalls = np.array([0, 0.25, 0.5, 0.75, 0.75])
    ax = visualize.plot_precision_recall(0.75, precisions, recalls, save_path=str(path))
    assert ax.get_title() == "Precision-Recall Curve. AP@50 = 0.750"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Recall", "Precision")
    assert ax.get_xlim() == (0, 1.1) and ax.get_ylim() == (0, 1.1)
    # One curve through the given points, recall on x and precision on y.
    assert len(ax.lines) == 1
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), recalls)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), precisions)
    png = read_png(path)
    line = np.rint(np.array(matplotlib.colors.to_rgb(ax.lines[0].get_color())) * 255)
    for recall, precision in ((0.25, 1.0), (0.5, 0.67), (0.75, 0.6)):
        drawn = _png_pixel(ax, png, recall, precision).astype(int)
        assert np.abs(drawn - line).max() <= 40, (recall, precision, drawn)
    # Away from the curve the background is white.
    assert np.all(_png_pixel(ax, png, 0.9, 0.2) == 255)


def test_display_differences(shapes_sample, tmp_path):
    image, masks, boxes, class_ids, names = shapes_sample
    n = masks.shape[-1]
    # Predictions: the ground truth shifted by 2 pixels, in scrambled score order, plus a miss.
    pred_masks = np.roll(masks, 2, axis=1)
    pred_masks = np.concatenate([pred_masks, masks[..., :1]], axis=-1)
    pred_boxes = np.concatenate([boxes + [0, 2, 0, 2], boxes[:1]])
    pred_ids = np.concatenate([class_ids, [(class_ids[0] % 3) + 1]])
    pred_scores = np.linspace(0.6, 0.95, n + 1)
    path = tmp_path / "differences.png"
    _, given = plt.subplots(figsize=(5, 5))
    ax = visualize.display_differences(image, boxes, class_ids, masks,
                                       pred_boxes, pred_ids, pred_scores, pred_masks,
                                       names, ax=given, save_path=str(path))
    assert ax is given
    captions = [t.get_text() for t in ax.texts]
    assert len(captions) == n + 1
    # Highest score first; the wrong-class copy of instance 0 is unmatched but overlaps it fully.
    assert captions[0] == "0.95 / 1.00"
    assert all(float(c.split(" / ")[1]) > 0.5 for c in captions)
    read_png(path)


def test_plot_overlaps(tmp_path):
    overlaps = np.array([[0.9, 0.0, 0.1], [0.2, 0.7, 0.0]])
    path = tmp_path / "overlaps.png"
    ax = visualize.plot_overlaps(np.array([1, 2, 3, 0]), np.array([1, 3]), np.array([0.99, 0.8]),
                                 overlaps, ["BG", "square", "circle", "triangle"],
                                 save_path=str(path), figsize=(4, 4))
    texts = [t.get_text() for t in ax.texts]
    assert "0.900\nmatch" in texts and "0.700\nwrong" in texts and "0.100\n" in texts
    read_png(path)


def test_draw_boxes(shapes_sample, tmp_path):
    image, masks, boxes, class_ids, names = shapes_sample
    n = masks.shape[-1]
    path = tmp_path / "boxes.png"
    visibilities = [i % 3 for i in range(n)]
    ax = visualize.draw_boxes(image, boxes=boxes, refined_boxes=boxes + [1, 1, -1, -1], masks=masks,
                              captions=[f"#{i}" for i in range(n)], visibilities=visibilities,
                              title="boxes", save_path=str(path), figsize=(4, 4))
    assert [t.get_text() for t in ax.texts] == [f"#{i}" for i in range(n)]
    read_png(path)
    ax = visualize.draw_boxes(image, refined_boxes=boxes)  # refined boxes only
    assert len(ax.patches) == n


############################################################
#  Tables
############################################################

def test_display_table_text(capsys):
    visualize.display_table([["NAME", "VALUE"], ["alpha", 1], ["b", "<x>"]])
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["NAME   VALUE", "alpha  1", "b      <x>"]


def test_display_table_html_in_notebook(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(visualize, "_in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", shown.append)
    visualize.display_table([["NAME"], ["<b>"]])
    assert shown[0].data == "<table><tr><td>NAME</td></tr><tr><td>&lt;b&gt;</td></tr></table>"


def test_display_weight_stats_flags(capsys):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(4, name="live", kernel_initializer=keras.initializers.RandomNormal(seed=1)),
        keras.layers.Dense(2, name="dead", kernel_initializer="zeros"),
        keras.layers.Dense(2, name="broken"),
    ])
    kernel = model.get_layer("broken").kernel
    kernel.assign(np.where(np.eye(2) > 0, np.nan, 0.5).astype("float32"))

    class Wrapper:  # like MaskRCNN, which holds the keras model in keras_model
        keras_model = model

    visualize.display_weight_stats(Wrapper())
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["WEIGHT", "NAME", "SHAPE", "MIN", "MAX", "STD"]
    rows = {"/".join(line.split()[0].split("/")[-2:]): line for line in out[1:]}
    assert len(rows) == 6
    assert "dead?" not in rows["live/kernel"] and "(3, 4)" in rows["live/kernel"]
    assert "dead?" in rows["dead/kernel"]
    assert "dead?" not in rows["dead/bias"]  # zero biases are normal
    assert "NaN/Inf" in rows["broken/kernel"]
    assert "+0.5000" in rows["broken/kernel"]  # statistics of the finite values

"""Keypoint drawing: the points and edges drawn, and where they land in the saved PNG."""
import os

os.environ["MPLBACKEND"] = "Agg"

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mrcnn import utils, visualize  # noqa: E402
from mrcnn.keypoint_shapes import SKELETON, KeypointShapesDataset  # noqa: E402

# Two instances of three keypoints on a 64 x 64 grey image; the second instance's last
# point is not labelled (v = 0), so one of its edges is left out.
IMAGE = np.full((64, 64, 3), 60, np.uint8)
POINTS = np.array([[[10, 12, 2], [30, 12, 1], [20, 40, 2]],
                   [[45, 20, 2], [55, 30, 2], [50, 50, 0]]], np.float32)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def read_png(path):
    png = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert png is not None, f"{path} does not decode"
    return png[..., ::-1]


def png_pixel(ax, png, x, y):
    """PNG pixel where the data point (x, y) is drawn."""
    px, py = ax.transData.transform((x, y))
    return png[int(png.shape[0] - py), int(px)].astype(int)


def test_display_keypoints_draws_labelled_points_and_their_edges(tmp_path):
    path = tmp_path / "keypoints.png"
    colors = [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)]
    ax = visualize.display_keypoints(IMAGE, POINTS, skeleton=SKELETON, colors=colors,
                                     figsize=(4, 4), marker_size=80, line_width=4,
                                     save_path=str(path))
    assert not plt.fignum_exists(ax.figure.number), "saved figure is closed under Agg"
    dots = [c for c in ax.collections if isinstance(c, matplotlib.collections.PathCollection)]
    np.testing.assert_allclose(dots[0].get_offsets(), POINTS[0, :, :2])
    np.testing.assert_allclose(dots[1].get_offsets(), POINTS[1, :2, :2])  # v = 0 left out
    edges = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    assert len(edges) == 2
    np.testing.assert_allclose(edges[0].get_segments(), [
        [[10, 12], [30, 12]], [[30, 12], [20, 40]], [[20, 40], [10, 12]]])
    np.testing.assert_allclose(edges[1].get_segments(), [[[45, 20], [55, 30]]])
    png = read_png(path)
    # Each drawn point shows its instance's colour; the unlabelled one and a spot away
    # from every point and edge show the image's grey.
    for (x, y, v), color in [(p, colors[0]) for p in POINTS[0]] + \
                            [(p, colors[1]) for p in POINTS[1, :2]]:
        np.testing.assert_allclose(png_pixel(ax, png, x, y), np.array(color) * 255, atol=3)
    assert np.abs(png_pixel(ax, png, 50, 50) - 60).max() <= 2
    assert np.abs(png_pixel(ax, png, 5, 60) - 60).max() <= 2
    # The middle of an edge is drawn in its instance's colour.
    np.testing.assert_allclose(png_pixel(ax, png, 20, 12), [255, 0, 0], atol=3)
    # Between the second instance's first point and its unlabelled third: no edge.
    assert np.abs(png_pixel(ax, png, 47.5, 35) - 60).max() <= 2


def test_threshold_hides_low_scores_and_single_instances_are_accepted():
    scores = np.array([[5, 5, 0.9], [9, 9, 0.2], [12, 3, 0.6]], np.float32)
    _, ax = plt.subplots()
    visualize.display_keypoints(IMAGE, scores, skeleton=((0, 1), (0, 2)), threshold=0.5,
                                ax=ax, names=("a", "b", "c"))
    dots = ax.collections[-1]
    np.testing.assert_allclose(dots.get_offsets(), [[5, 5], [12, 3]])
    assert [t.get_text() for t in ax.texts] == ["a", "c"]
    lines = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    np.testing.assert_allclose(lines[0].get_segments(), [[[5, 5], [12, 3]]])
    with pytest.raises(ValueError, match=r"\[N, K, 3\] or \[K, 3\]"):
        visualize.display_keypoints(IMAGE, np.zeros((2, 3, 2)), ax=ax)


def test_display_instances_draws_keypoints_in_instance_colours(tmp_path):
    dataset = KeypointShapesDataset()
    dataset.load_triangles(4, 64, 64, seed=2)
    dataset.prepare()
    image = dataset.load_image(0)
    masks, class_ids = dataset.load_mask(0)
    points = dataset.load_keypoints(0)
    boxes = utils.extract_bboxes(masks)
    colors = visualize.random_colors(len(class_ids), seed=0)
    path = tmp_path / "instances.png"
    ax = visualize.display_instances(image, boxes, masks, class_ids, dataset.class_names,
                                     figsize=(4, 4), colors=colors, keypoints=points,
                                     skeleton=SKELETON, save_path=str(path))
    dots = [c for c in ax.collections if isinstance(c, matplotlib.collections.PathCollection)]
    assert len(dots) == len(class_ids)
    for i, collection in enumerate(dots):
        labelled = points[i, :, 2] > 0
        np.testing.assert_allclose(collection.get_offsets(), points[i, labelled, :2])
        np.testing.assert_allclose(collection.get_facecolor()[0, :3], colors[i])
    assert os.path.getsize(path) > 0
    # Without keypoints nothing of the sort is drawn.
    ax = visualize.display_instances(image, boxes, masks, class_ids, dataset.class_names,
                                     figsize=(2, 2))
    assert not ax.collections

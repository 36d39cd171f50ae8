"""The synthetic keypoint data set: exact vertex keypoints, occlusion, unlabelled points, flips."""
import numpy as np
import pytest

from mrcnn import data, validate
from mrcnn.keypoint_shapes import (FLIP_MAP, KEYPOINT_NAMES, KeypointShapesConfig,
                                   KeypointShapesDataset, triangle_vertices)


@pytest.fixture(scope="module")
def dataset():
    d = KeypointShapesDataset()
    d.load_triangles(60, 64, 64, seed=3)
    d.prepare()
    return d


def test_deterministic_by_seed_and_independent_of_count(dataset):
    other = KeypointShapesDataset()
    other.load_triangles(5, 64, 64, seed=3)
    other.prepare()
    for i in range(5):
        np.testing.assert_array_equal(other.load_image(i), dataset.load_image(i))
        np.testing.assert_array_equal(other.load_keypoints(i), dataset.load_keypoints(i))
    third = KeypointShapesDataset()
    third.load_triangles(5, 64, 64, seed=4)
    assert any(third.image_info[i]["triangles"] != other.image_info[i]["triangles"]
               for i in range(5))


def test_keypoints_are_the_vertices_with_their_visibility(dataset):
    counts = np.zeros(3, int)
    for image_id in dataset.image_ids:
        info = dataset.image_info[image_id]
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        points = dataset.load_keypoints(image_id)
        assert points.dtype == np.float32 and points.shape == (len(class_ids), 3, 3)
        validate.check_keypoints(points, len(class_ids), image.shape, 3)
        # No triangle of these specs is hidden entirely, so rows follow the spec.
        assert masks.shape[2] == len(info["triangles"])
        for row, (triangle, color) in enumerate(zip(info["triangles"], info["colors"])):
            for k, (x, y) in enumerate(triangle_vertices(triangle)):
                x_, y_, v = points[row, k]
                counts[int(v)] += 1
                if not info["labelled"][row][k]:
                    assert (x_, y_, v) == (0, 0, 0)
                    continue
                assert (x_, y_) == (x, y)
                # Visible: the vertex pixel shows the triangle's own colour and lies in its
                # own mask (rows aligned); occluded: something else is drawn there.
                assert (v == 2) == bool(masks[y, x, row])
                if v == 2:
                    assert tuple(image[y, x]) == tuple(color)
    # 60 images: each visibility occurs (measured 0: 36, 1: 41, 2: 265 with this seed).
    assert counts[0] >= 5 and counts[1] >= 5 and counts[2] > 5 * (counts[0] + counts[1]) / 2


def test_hidden_triangle_is_dropped_with_its_keypoints():
    d = KeypointShapesDataset()
    d.add_class("kpshapes", 1, "triangle")
    # The second triangle covers the first one entirely.
    d.add_image("kpshapes", image_id=0, path=None, width=32, height=32, bg_color=(0, 0, 0),
                triangles=[(16, 24, 28, 12, 20), (15, 2, 30, 0, 31)],
                colors=[(255, 0, 0), (0, 255, 0)], discs=[(3, 3, 2)],
                disc_colors=[(0, 0, 255)], labelled=[[True] * 3, [True] * 3])
    d.prepare()
    masks, class_ids = d.load_mask(0)
    points = d.load_keypoints(0)
    assert masks.shape == (32, 32, 1) and class_ids.tolist() == [1]
    # The disc of radius 2 at (3, 3) covers no vertex of the big triangle.
    np.testing.assert_array_equal(points, [[[15, 2, 2], [0, 30, 2], [31, 30, 2]]])


def test_left_and_right_corners_stay_left_and_right_under_flips(dataset):
    config = KeypointShapesConfig()
    assert config.NUM_KEYPOINTS == 3 and config.KEYPOINT_NAMES == KEYPOINT_NAMES
    assert config.KEYPOINT_FLIP_MAP == FLIP_MAP
    mirrored = 0
    for image_id in range(12):
        _, _, _, boxes, _, points = data.load_image_gt(
            dataset, config, image_id, augment=True, with_keypoints=True,
            rng=np.random.default_rng(image_id))
        both = (points[:, 1, 2] > 0) & (points[:, 2, 2] > 0)
        assert (points[both, 1, 0] < points[both, 2, 0]).all()
        original = np.array([triangle_vertices(t)[1, 0]
                             for t in dataset.image_info[image_id]["triangles"]])
        mirrored += int(not np.isin(boxes[:, 1], original).all())
    assert 0 < mirrored < 12

"""The image_meta vector: what the graph needs to know about each molded image.

Layout (length 12 + NUM_CLASSES), as upstream:
    [0]      image_id
    [1:4]    original image shape (height, width, channels) before resizing
    [4:7]    molded image shape (height, width, channels) after resizing and padding
    [7:11]   window (y1, x1, y2, x2) in pixels of the molded image: where the real
             image lies, the rest is padding
    [11]     scale factor from original to molded image
    [12:]    active_class_ids: 1 for every class of the dataset the image comes from
"""
import numpy as np


def compose_image_meta(image_id, original_image_shape, image_shape, window, scale,
                       active_class_ids):
    """Pack the attributes of one image into a float [12 + NUM_CLASSES] vector."""
    return np.array(
        [image_id]
        + list(original_image_shape)
        + list(image_shape)
        + list(window)
        + [scale]
        + list(active_class_ids),
        dtype=np.float32,
    )


def parse_image_meta(meta):
    """Unpack a numpy image_meta batch [B, 12 + NUM_CLASSES] into a dict of arrays."""
    meta = np.asarray(meta)
    return {
        "image_id": meta[:, 0].astype(np.int32),
        "original_image_shape": meta[:, 1:4].astype(np.int32),
        "image_shape": meta[:, 4:7].astype(np.int32),
        "window": meta[:, 7:11].astype(np.int32),
        "scale": meta[:, 11].astype(np.float32),
        "active_class_ids": meta[:, 12:].astype(np.int32),
    }


def parse_image_meta_graph(meta):
    """Unpack an image_meta tensor [B, 12 + NUM_CLASSES] into a dict of float tensors."""
    return {
        "image_id": meta[:, 0],
        "original_image_shape": meta[:, 1:4],
        "image_shape": meta[:, 4:7],
        "window": meta[:, 7:11],
        "scale": meta[:, 11],
        "active_class_ids": meta[:, 12:],
    }

"""Inputs and outputs of ``mrcnn detect``: image files, folders, globs and videos in;
pictures with the detections drawn, mask PNGs and annotated videos out.

Images are read as RGB uint8 [H, W, 3] (grey repeated, alpha dropped, 16-bit scaled).
Videos are read with OpenCV's VideoCapture, one frame at a time, BGR converted to RGB.
"""
import glob
import os

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v",
                    ".wmv")


def kind_of(path):
    """"image", "video" or None, from the file extension."""
    extension = os.path.splitext(path)[1].lower()
    if extension in IMAGE_EXTENSIONS:
        return "image"
    if extension in VIDEO_EXTENSIONS:
        return "video"
    return None


def expand_inputs(inputs):
    """[(path, kind)] of the INPUT arguments: files, folders (their images and videos,
    sorted, not recursive) and glob patterns. Raises CliError naming a missing input."""
    from mrcnn.cli.errors import CliError

    found = []
    for item in inputs:
        if os.path.isdir(item):
            entries = sorted(os.path.join(item, name) for name in os.listdir(item))
            media = [(p, kind_of(p)) for p in entries if os.path.isfile(p) and kind_of(p)]
            if not media:
                raise CliError(f"{item}: the folder holds no image or video files "
                               f"({', '.join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)})")
            found.extend(media)
        elif os.path.isfile(item):
            if kind_of(item) is None:
                raise CliError(f"{item}: not an image or video file (by its extension)")
            found.append((item, kind_of(item)))
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item) if os.path.isfile(p) and kind_of(p))
            if not matches:
                raise CliError(f"{item}: the pattern matches no image or video file")
            found.extend((p, kind_of(p)) for p in matches)
        else:
            raise CliError(f"{item}: no such file or folder")
    return found


def read_image(path):
    """RGB uint8 [H, W, 3] of an image file; CliError naming the file if unreadable."""
    import skimage.io

    from mrcnn.cli.errors import CliError

    try:
        image = np.asarray(skimage.io.imread(path))
    except Exception as error:  # noqa: BLE001 - the readers raise many types
        raise CliError(f"{path}: cannot read the image ({error})") from None
    if image.ndim == 3 and image.shape[-1] in (1, 2):
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise CliError(f"{path}: unsupported image shape {image.shape}")
    image = image[..., :3]
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


class VideoFrames:
    """The frames of a video file, read one at a time: iterate for (index, RGB frame).

    Attributes: fps (frames per second, 25 when the file does not say), frame_count
    (OpenCV's estimate, 0 when unknown), size (width, height).
    """

    def __init__(self, path, every_nth=1):
        import cv2

        from mrcnn.cli.errors import CliError

        self.path = path
        self.every_nth = max(1, int(every_nth))
        self._capture = cv2.VideoCapture(path)
        if not self._capture.isOpened():
            raise CliError(f"{path}: OpenCV cannot open the video")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and np.isfinite(fps) and fps > 0 else 25.0
        self.frame_count = max(0, int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        self.size = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def selected_count(self):
        """Frames the iteration yields (from frame_count; 0 when unknown)."""
        return -(-self.frame_count // self.every_nth)

    def __iter__(self):
        import cv2

        index = 0
        try:
            while True:
                ok, frame = self._capture.read()
                if not ok:
                    break
                if index % self.every_nth == 0:
                    yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            self._capture.release()


class VideoWriter:
    """Writes RGB frames to a video file (mp4v for .mp4, MJPG for .avi); opened lazily
    on the first frame, whose size every frame must have."""

    def __init__(self, path, fps):
        self.path = path
        self.fps = float(fps)
        self._writer = None

    def write(self, frame):
        import cv2

        from mrcnn.cli.errors import CliError

        if self._writer is None:
            codec = "MJPG" if self.path.lower().endswith(".avi") else "mp4v"
            height, width = frame.shape[:2]
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*codec),
                                           self.fps, (width, height))
            if not self._writer.isOpened():
                raise CliError(f"{self.path}: OpenCV cannot write this video file")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def close(self):
        if self._writer is not None:
            self._writer.release()


def class_colors(num_classes):
    """One fixed colour (r, g, b in 0..1) per class id, the same in every frame."""
    from mrcnn import visualize

    return visualize.random_colors(max(num_classes, 1), seed=0)


def draw_detections(image, result, class_names, colors, skeleton=()):
    """A copy of ``image`` (RGB uint8 [H, W, 3]) with masks, outlines, boxes and captions.

    Drawn in numpy/OpenCV at the image's own resolution (used for video frames): masks
    blended at alpha 0.5, mask outlines and 2-pixel boxes in the class colour, and a
    "name score" caption above each box. A keypoint model's "keypoints" [N, K, 3] (x, y,
    score; pixel indices of the image) become 2-pixel dots in the class colour, joined by
    1-pixel lines along ``skeleton`` (0-based index pairs). A result without "masks" (a
    keypoint-only model) gets boxes, captions and keypoints.
    """
    import cv2

    from mrcnn import visualize

    canvas = np.array(image, dtype=np.uint8, copy=True)
    for i, class_id in enumerate(result["class_ids"]):
        color = colors[int(class_id) % len(colors)]
        if "masks" in result:
            visualize.apply_mask(canvas, result["masks"][..., i], color)
            visualize.draw_mask_outline(canvas, result["masks"][..., i], color)
        rgb = tuple(int(round(c * 255)) for c in color[:3])
        visualize.draw_box(canvas, result["rois"][i], rgb)
        y1, x1 = int(result["rois"][i][0]), int(result["rois"][i][1])
        caption = f"{_name(class_names, class_id)} {float(result['scores'][i]):.2f}"
        cv2.putText(canvas, caption, (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    rgb, 1, cv2.LINE_AA)
        if "keypoints" in result:
            _draw_keypoints(canvas, result["keypoints"][i], skeleton, rgb)
    return canvas


def _draw_keypoints(canvas, points, skeleton, rgb):
    """One instance's keypoints [K, 3] (x, y, score) as dots and skeleton lines."""
    import cv2

    xy = [(int(round(float(x))), int(round(float(y)))) for x, y, _ in np.asarray(points)]
    for i, j in skeleton:
        cv2.line(canvas, xy[i], xy[j], rgb, 1, cv2.LINE_AA)
    for point in xy:
        cv2.circle(canvas, point, 2, rgb, -1, cv2.LINE_AA)


def save_picture(path, image, result, class_names, colors, skeleton=()):
    """The image with its detections drawn by visualize.display_instances, as a PNG: with
    a keypoint model's "keypoints" (every point; lines along ``skeleton``); boxes without
    masks for a result without "masks" (a keypoint-only model)."""
    import matplotlib.pyplot as plt

    from mrcnn import visualize

    height, width = image.shape[:2]
    scale = max(1.0, 640 / max(height, width))
    figure, ax = plt.subplots(1, figsize=(width * scale / 100, height * scale / 100), dpi=100)
    figure.subplots_adjust(left=0, right=1, bottom=0, top=1)
    instance_colors = [colors[int(c) % len(colors)] for c in result["class_ids"]]
    if len(instance_colors):
        visualize.display_instances(image, result["rois"], result.get("masks"),
                                    result["class_ids"], class_names, result["scores"], ax=ax,
                                    colors=instance_colors, keypoints=result.get("keypoints"),
                                    skeleton=list(skeleton) or None)
    else:   # display_instances would print that there is nothing to display
        ax.imshow(image)
        ax.axis("off")
    figure.savefig(path)
    plt.close(figure)


def save_masks(folder, stem, result, class_names):
    """One binary PNG (0/255) per detection: folder/<stem>_<k>_<class>.png; returns paths."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    paths = []
    for k, class_id in enumerate(result["class_ids"]):
        name = _name(class_names, class_id).replace(os.sep, "_").replace(" ", "_")
        path = os.path.join(folder, f"{stem}_{k:03d}_{name}.png")
        Image.fromarray(result["masks"][..., k].astype(np.uint8) * 255).save(path)
        paths.append(path)
    return paths


def _name(class_names, class_id):
    class_id = int(class_id)
    return class_names[class_id] if 0 <= class_id < len(class_names) else f"class {class_id}"


def unique_stem(path, taken):
    """The file's name without extension, made unique among ``taken`` (which it joins)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    candidate, count = stem, 1
    while candidate in taken:
        count += 1
        candidate = f"{stem}_{count}"
    taken.add(candidate)
    return candidate

"""Errors and warnings of the annotation loaders: each names the file and the annotation."""
import os
import warnings

import numpy as np

from mrcnn.validate import DatasetError

__all__ = ["AnnotationError", "AnnotationWarning", "OutsideReport"]


class AnnotationError(DatasetError):
    """An annotation file holds something that cannot become an instance mask.

    The message reads "<file>: <annotation>: <problem>", e.g.
    ``instances.json: annotation 7 (image 3 'a.jpg'): polygon 0 has 2 points; a polygon
    needs at least 3``. A DatasetError, so training and ``validate_dataset`` report it
    like any other bad image.

    Attributes:
        file: the annotation file (or image / mask file) concerned, as given.
        annotation: which annotation in it ("annotation 7 (image 3 'a.jpg')"), or None.
        detail: the problem alone.
    """

    def __init__(self, detail, file=None, annotation=None):
        self.file = None if file is None else os.fspath(file)
        self.annotation = annotation
        self.detail = detail
        super().__init__(": ".join(str(p) for p in (self.file, annotation, detail) if p))

    def __reduce__(self):  # keep the attributes when pickled (worker processes)
        return (self.__class__, (self.detail, self.file, self.annotation))


class AnnotationWarning(UserWarning):
    """Annotations were adjusted while loading (cut off at the image border, skipped)."""


class OutsideReport:
    """Collects the annotations of one file that reach outside their image.

    A point outside the image by more than ``tolerance`` times the image side (width for
    x, height for y; at least 2 pixels) is an error; closer ones are noted, and
    :meth:`warn` emits one AnnotationWarning for the whole file: the masks are rasterised
    at the image size, so the parts outside are cut off.
    """

    def __init__(self, file, tolerance):
        self.file = None if file is None else os.fspath(file)
        self.tolerance = float(tolerance)
        self.count = 0
        self.worst = 0.0
        self.first = None

    def check(self, extent, centres, width, height, annotation, file=None):
        """Check one shape.

        extent: (x1, y1, x2, y2) the shape covers; centres: [(x, y), ...] points that must
        lie within the tolerance (polygon vertices, box corners, circle centres).
        annotation: names the shape; file: its file, when not the report's own (a
        folder's report gathers many files).
        Raises AnnotationError for a point far outside; notes a shape reaching outside.
        """
        margin_x = max(2.0, self.tolerance * width)
        margin_y = max(2.0, self.tolerance * height)
        points = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
        far = (points[:, 0] < -margin_x) | (points[:, 0] > width + margin_x) \
            | (points[:, 1] < -margin_y) | (points[:, 1] > height + margin_y)
        if far.any():
            x, y = points[np.argmax(far)]
            raise AnnotationError(
                f"point ({x:g}, {y:g}) lies far outside the {width}x{height} (width x "
                f"height) image (more than {margin_x:g} px in x / {margin_y:g} px in y); "
                f"were the coordinates made for another image size?",
                file or self.file, annotation)
        x1, y1, x2, y2 = extent
        beyond = max(-x1, -y1, x2 - width, y2 - height, 0.0)
        if beyond > 0:
            self.count += 1
            self.worst = max(self.worst, beyond)
            if self.first is None:
                self.first = f"{os.path.basename(file)} {annotation}" if file else annotation

    def warn(self, stacklevel=3):
        """One AnnotationWarning when shapes reached outside their image."""
        if self.count:
            warnings.warn(
                f"{self.file}: {self.count} annotation(s) reach outside their image by up "
                f"to {self.worst:.3g} px (first: {self.first}); the parts outside the image "
                f"are cut off", AnnotationWarning, stacklevel=stacklevel)

"""Import imgaug 0.4 on numpy 2.

imgaug 0.4.0 reads ``np.sctypes`` at import time and uses ``np.complex`` in a few
augmenters; numpy 2 removed both. This module puts equivalent values back (only where
they are missing, so numpy 1 is untouched) and then imports imgaug::

    from mrcnn.imgaug_compat import imgaug, iaa
    augmentation = iaa.Fliplr(0.5)

``imgaug`` is the imgaug package and ``iaa`` is ``imgaug.augmenters``. Importing this
module raises ImportError with an installation hint when imgaug is not installed.
"""
import numpy as np

__all__ = ["imgaug", "iaa", "restore_numpy_aliases"]


def _sctypes():
    """The value numpy 1 had for ``np.sctypes``: scalar types grouped by kind."""
    return {
        "int": [np.int8, np.int16, np.int32, np.int64],
        "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
        "float": [np.float16, np.float32, np.float64, np.longdouble],
        "complex": [np.complex64, np.complex128, np.clongdouble],
        "others": [bool, object, bytes, str, np.void],
    }


def _missing(name):
    """True when numpy has no attribute ``name`` (numpy 2 raises on removed names)."""
    try:
        getattr(np, name)
    except AttributeError:
        return True
    return False


def restore_numpy_aliases():
    """Define ``np.sctypes`` and ``np.complex`` where this numpy lacks them."""
    if _missing("sctypes"):
        np.sctypes = _sctypes()
    if _missing("complex"):
        np.complex = complex


restore_numpy_aliases()

try:
    import imgaug  # noqa: E402
    import imgaug.augmenters as iaa  # noqa: E402
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "imgaug is needed for `augmentation=` with imgaug augmenters; install it with "
        "`pip install imgaug` (it needs OpenCV: opencv-python or opencv-python-headless)"
    ) from error

"""Augmentation of an image with its instance masks: imgaug, albumentations or a function.

``MaskRCNN.train(..., augmentation=...)`` and ``load_image_gt(..., augmentation=...)``
accept:

* an imgaug augmenter (``iaa.Sequential([...])`` etc., imported through
  ``mrcnn.imgaug_compat`` on numpy 2). The masks go through imgaug as segmentation maps,
  so every geometric augmenter (flips, Affine, Rot90, crops and pads, perspective, ...)
  moves them with the image, with nearest-neighbour sampling, and colour, blur or noise
  augmenters leave them alone;
* an albumentations transform (``A.Compose([...])`` or a single transform): called with
  ``image=`` and ``masks=`` (one [H, W] uint8 mask per instance); albumentations applies
  its spatial transforms to masks and its pixel-level transforms to the image only;
* a function ``f(image, masks, rng) -> (image, masks)`` with image uint8 [H, W, 3],
  masks bool [H, W, N] and ``rng`` a ``np.random.Generator`` to draw from.

Augmentation must keep the image size. Instances whose mask becomes empty (pushed out
of the image) are dropped by the caller.

Randomness: each call takes an integer ``seed``; the same seed gives the same result.
The adapters keep one copy of the user's augmenter per thread and re-seed it per call,
so parallel workers never share an augmenter's random state, and a sample's
augmentation depends only on its seed, not on which worker runs it or when.
With ``seed=None`` the user's own augmenter and its own random state are used (under a
lock), as upstream does.
"""
import copy
import threading

import numpy as np

__all__ = ["Augmentation", "ImgaugAugmentation", "AlbumentationsAugmentation",
           "FunctionAugmentation", "as_augmentation", "apply_augmentation",
           "SEED_RANGE"]

SEED_RANGE = 2 ** 31 - 1  # seeds are drawn from [0, SEED_RANGE)


class Augmentation:
    """Base class: ``augmentation(image, masks, seed) -> (image, masks)``.

    image: uint8 [H, W, C]. masks: bool [H, W, N] full-image masks. seed: int or None.
    Returns arrays of the same shapes and dtypes (ValueError if the size changed).
    """

    def __init__(self, augmenter):
        self.augmenter = augmenter
        self._local = threading.local()
        self._lock = threading.Lock()

    def __getstate__(self):  # thread-local copies and locks stay behind
        return {"augmenter": self.augmenter}

    def __setstate__(self, state):
        self.__init__(state["augmenter"])

    def __repr__(self):
        return f"{type(self).__name__}({self.augmenter!r})"

    def _copy_for_this_thread(self):
        """This thread's private copy of the user's augmenter."""
        own = getattr(self._local, "augmenter", None)
        if own is None:
            with self._lock:
                own = copy.deepcopy(self.augmenter)
            self._local.augmenter = own
        return own

    def __call__(self, image, masks, seed=None):
        shapes = (image.shape, masks.shape)
        if seed is None:
            with self._lock:
                image, masks = self._apply(self.augmenter, image, masks, None)
        else:
            image, masks = self._apply(self._copy_for_this_thread(), image, masks, int(seed))
        if (image.shape, masks.shape) != shapes:
            raise ValueError(
                f"augmentation {self.augmenter!r} changed the image shape {shapes[0]} -> "
                f"{image.shape} or the mask shape {shapes[1]} -> {masks.shape}; use "
                f"augmenters that keep the image size (it is already resized to "
                f"the model's input)")
        return np.ascontiguousarray(image), masks

    def _apply(self, augmenter, image, masks, seed):
        raise NotImplementedError


class ImgaugAugmentation(Augmentation):
    """An imgaug augmenter; masks travel as segmentation maps."""

    def _apply(self, augmenter, image, masks, seed):
        from imgaug.augmentables.segmaps import SegmentationMapsOnImage

        if seed is None:
            augmenter = augmenter.to_deterministic()
        else:
            augmenter.seed_(seed)
        if masks.shape[-1] == 0:
            return augmenter(image=image), masks
        segmaps = SegmentationMapsOnImage(masks, shape=image.shape)
        image, segmaps = augmenter(image=image, segmentation_maps=segmaps)
        return image, segmaps.get_arr().astype(bool, copy=False)


class AlbumentationsAugmentation(Augmentation):
    """An albumentations transform or Compose; masks go in as ``masks=`` [N, H, W]."""

    def _apply(self, augmenter, image, masks, seed):
        if seed is not None:
            augmenter.set_random_seed(seed)
        if masks.shape[-1] == 0:
            return augmenter(image=image)["image"], masks
        stacked = np.ascontiguousarray(np.moveaxis(masks, -1, 0), dtype=np.uint8)
        result = augmenter(image=image, masks=stacked)
        out = np.asarray(result["masks"])
        return result["image"], np.moveaxis(out, 0, -1).astype(bool)


class FunctionAugmentation(Augmentation):
    """A function ``f(image, masks, rng) -> (image, masks)``; rng is a np.random.Generator."""

    def _copy_for_this_thread(self):
        return self.augmenter  # a function holds no random state of its own

    def __call__(self, image, masks, seed=None):
        if seed is None:
            seed = int(np.random.randint(SEED_RANGE))
        return super().__call__(image, masks, seed)

    def _apply(self, augmenter, image, masks, seed):
        image, masks = augmenter(image, masks, np.random.default_rng(seed))
        return np.asarray(image), np.asarray(masks).astype(bool, copy=False)


def _is_imgaug(augmenter):
    if not type(augmenter).__module__.startswith("imgaug"):
        return False
    from mrcnn.imgaug_compat import iaa
    return isinstance(augmenter, iaa.Augmenter)


def _is_albumentations(augmenter):
    if not type(augmenter).__module__.startswith("albumentations"):
        return False
    import albumentations
    return isinstance(augmenter, (albumentations.BaseCompose, albumentations.BasicTransform))


def as_augmentation(augmenter):
    """The adapter for an imgaug augmenter, an albumentations transform or a function.

    None gives None; an :class:`Augmentation` is returned as is.

    Raises:
        TypeError: anything else (the message lists what is accepted).
    """
    if augmenter is None or isinstance(augmenter, Augmentation):
        return augmenter
    if _is_imgaug(augmenter):
        return ImgaugAugmentation(augmenter)
    if _is_albumentations(augmenter):
        return AlbumentationsAugmentation(augmenter)
    if callable(augmenter):
        return FunctionAugmentation(augmenter)
    raise TypeError(
        f"augmentation must be an imgaug augmenter, an albumentations transform or a "
        f"function f(image, masks, rng) -> (image, masks); got {type(augmenter).__name__}")


def apply_augmentation(image, masks, augmentation, rng=None):
    """Augment an image and its masks with one random draw.

    Args:
        image: uint8 [H, W, 3]. masks: bool [H, W, N] full-image masks.
        augmentation: see the module docstring (or an :class:`Augmentation`).
        rng: ``np.random.Generator`` or ``RandomState``: one seed is drawn from it, so
            the result is reproducible; None uses the augmenter's own random state.

    Returns:
        (image uint8 [H, W, 3], masks bool [H, W, N]).
    """
    adapter = as_augmentation(augmentation)
    seed = None
    if rng is not None:
        draw = rng.integers if isinstance(rng, np.random.Generator) else rng.randint
        seed = int(draw(0, SEED_RANGE))
    return adapter(image, masks, seed)

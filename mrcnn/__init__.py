"""mrcnn: Mask R-CNN for instance segmentation on Keras 3 and TensorFlow 2.

Import paths match the matterport/Mask_RCNN project::

    from mrcnn.config import Config
    from mrcnn import utils, visualize
    import mrcnn.model as modellib
"""
import os as _os

# TensorFlow's C++ start-up chatter is noise for users; keep warnings and errors.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

__version__ = "0.1.0"

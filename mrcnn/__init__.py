"""mrcnn: Mask R-CNN for instance segmentation on Keras 3 and TensorFlow 2.

Import paths match the matterport/Mask_RCNN project::

    from mrcnn.config import Config
    from mrcnn import utils, visualize
    import mrcnn.model as modellib
"""
import os as _os

# TensorFlow's C++ logging (start-up notes, grappler cost-model warnings about
# CropAndResize) is noise for users; keep errors. Set TF_CPP_MIN_LOG_LEVEL to override.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

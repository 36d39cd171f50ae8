"""Model and training settings.

Subclass `Config` and override the attributes that differ for your data, as with
matterport/Mask_RCNN::

    class BalloonConfig(Config):
        NAME = "balloon"
        NUM_CLASSES = 1 + 1
        IMAGES_PER_GPU = 2

Every attribute of upstream's Config exists here with the same default and meaning.
Settings beyond upstream are grouped at the end of the class and default to upstream's
behaviour. `validate()` runs in `__init__` and again whenever a model is built, so a
setting changed in a notebook after construction is still checked; each error names the
attribute at fault.
"""
import json
import math

import numpy as np

RESIZE_MODES = ("none", "square", "pad64", "crop")
MODES = ("training", "inference")
BUILTIN_BACKBONES = ("resnet50", "resnet101", "resnet18")
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
              "mrcnn_bbox_loss", "mrcnn_mask_loss")
LR_SCHEDULES = ("constant", "cosine")
GRADIENT_CLIP_MODES = ("per_tensor", "global")
MIXED_PRECISION_POLICIES = (None, "float32", "mixed_float16", "mixed_bfloat16")
ROI_ALIGN_MODES = ("upstream", "aligned")
KEYPOINT_LOSS_NAME = "mrcnn_keypoint_loss"   # weight: KEYPOINT_LOSS_WEIGHT
CLASS_LOSSES = ("cross_entropy", "focal")


class ConfigError(ValueError):
    """An invalid setting; the message starts with the attribute's name."""


class Config:
    """Settings of a Mask R-CNN model, its input pipeline and its training."""

    # --- Identity and batch -------------------------------------------------------
    NAME = None                  # names the experiment: checkpoints, log directories
    GPU_COUNT = 1                # replicas; training runs under tf.distribute when > 1
    IMAGES_PER_GPU = 2           # images per replica per step
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50

    # --- Backbone and feature pyramid --------------------------------------------------
    # "resnet50", "resnet101", "resnet18" (basic blocks, for small images on a CPU)
    # or a callable(input_image, stage5, train_bn) -> [C1, C2, C3, C4, C5]; a callable
    # also needs COMPUTE_BACKBONE_SHAPE(image_shape) -> [[h, w] per pyramid level].
    BACKBONE = "resnet101"
    COMPUTE_BACKBONE_SHAPE = None
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    TOP_DOWN_PYRAMID_SIZE = 256

    NUM_CLASSES = 1              # including the background

    # --- Region proposal network ----------------------------------------------------
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)   # one scale per pyramid level, pixels
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]               # width / height
    RPN_ANCHOR_STRIDE = 1
    RPN_NMS_THRESHOLD = 0.7
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    PRE_NMS_LIMIT = 6000
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000

    # --- Masks and input images -----------------------------------------------------
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)   # (height, width)
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    IMAGE_MIN_SCALE = 0
    IMAGE_CHANNEL_COUNT = 3
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])

    # --- Heads --------------------------------------------------------------------------
    TRAIN_ROIS_PER_IMAGE = 200
    ROI_POSITIVE_RATIO = 0.33
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    MASK_SHAPE = [28, 28]
    MAX_GT_INSTANCES = 100
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3

    # --- Optimisation -------------------------------------------------------------------
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    WEIGHT_DECAY = 0.0001
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.,
        "rpn_bbox_loss": 1.,
        "mrcnn_class_loss": 1.,
        "mrcnn_bbox_loss": 1.,
        "mrcnn_mask_loss": 1.,
    }
    # False: the heads train on random ROIs that DataGenerator feeds as input_rois
    # (POST_NMS_ROIS_TRAINING per image) instead of the RPN's proposals, e.g. to debug them.
    USE_RPN_ROIS = True
    # BatchNorm: None trains it (batch statistics in training, updated moving averages),
    # False freezes it (moving statistics always, gamma/beta not trained),
    # True uses batch statistics always, inference included.
    TRAIN_BN = False
    GRADIENT_CLIP_NORM = 5.0

    # --- Beyond upstream (defaults reproduce upstream's behaviour) ------------------------
    # "per_tensor" clips each gradient to GRADIENT_CLIP_NORM (upstream's clipnorm);
    # "global" clips the global norm of all gradients together.
    GRADIENT_CLIP_MODE = "per_tensor"
    # Linear learning-rate warm-up over this many optimizer steps at the start of training.
    LEARNING_RATE_WARMUP_STEPS = 0
    # "constant", or "cosine": decay to LEARNING_RATE * LEARNING_RATE_MIN_FACTOR over the
    # steps of one training stage (a `train()` call; a resumed run continues its stage).
    LEARNING_RATE_SCHEDULE = "constant"
    LEARNING_RATE_MIN_FACTOR = 0.0
    # Classifier loss for imbalanced classes (mrcnn/nn/class_loss.py): NUM_CLASSES weights,
    # background first, for each ROI's cross-entropy by its true class, normalised as a
    # weighted mean (all ones = upstream's loss); None: all ones. CLASS_LOSS "focal" scales
    # each ROI's cross-entropy by (1 - p_true)^FOCAL_GAMMA.
    CLASS_LOSS_WEIGHTS = None
    CLASS_LOSS = "cross_entropy"
    FOCAL_GAMMA = 2.0
    # The progress bar, TensorBoard's batch summaries, custom callbacks' batch hooks and
    # the non-finite check run every this many optimizer steps (rounded down to a
    # divisor of STEPS_PER_EPOCH), not after each one: each of them waits for the device.
    LOG_EVERY_N_STEPS = 100
    # Channels of the RPN's shared 3x3 conv and of the mask head's convs (upstream: 512 and
    # 256, fixed). Narrower heads train much faster on a CPU; weights of other widths do
    # not load into them.
    RPN_CONV_SIZE = 512
    MASK_HEAD_CONV_SIZE = 256
    # Run the mask head in training on the rows that can hold positive ROIs only (the first
    # int(TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO)); the head costs about
    # 1/ROI_POSITIVE_RATIO less. The mask loss reads positives alone, so with frozen
    # BatchNorm (TRAIN_BN = False) the loss is unchanged. With trained BatchNorm (TRAIN_BN
    # None or True) the mask head's BatchNorm layers take their batch statistics, and so
    # their moving statistics, from those leading rows (positives, then negatives or
    # padding where positives are fewer) instead of from every sampled ROI, so the loss
    # and the trained head differ. Measured on ShapesConfig (TRAIN_BN = None, 300 steps,
    # seeds 0 and 1), mask mAP@0.5 True: 0.31, 0.50; False: 0.24, 0.47 -- within the
    # seed-to-seed spread (bench/bench_mask_head_rows.py).
    MASK_HEAD_POSITIVES_ONLY = True
    # Give each image's ground-truth boxes to the ROI sampler as extra proposals (as
    # detectron2 does) so the heads see positives from the first step of training from
    # scratch, and fill the sampled ROIs up with negatives when positives are few.
    # Upstream: False and False.
    ROI_INCLUDE_GT_BOXES = False
    ROI_FILL_NEGATIVES = False
    # ROI pooling: "upstream" crops each box with one bilinear sample per bin (upstream's
    # weights were trained so); "aligned" is the paper's ROIAlign with the half-pixel
    # correction (detectron2's ROIAlignV2): the mean of SAMPLING_RATIO x SAMPLING_RATIO
    # bilinear samples per bin; its mask targets sample the centres of the same bins.
    ROI_ALIGN_MODE = "upstream"
    SAMPLING_RATIO = 2
    # Keras mixed precision: None (float32), "mixed_float16" (GPUs with tensor cores; the
    # loss is scaled dynamically) or "mixed_bfloat16" (TPUs, recent GPUs and CPUs).
    # Weights, boxes, anchors, NMS, ROI pooling and the losses stay float32.
    MIXED_PRECISION = None
    # With GPU_COUNT > 1 and trained BatchNorm (TRAIN_BN None or True): normalise with the
    # statistics of the global batch, all-reduced over replicas, as one device would.
    SYNC_BN = False
    # Seed of the input pipeline's sampling (image order, RPN/ROI sampling); None: random.
    SEED = None
    # Threads that prepare training batches; None: every CPU this process may use.
    DATA_WORKERS = None
    # Train on images without instances as negatives (upstream skips them). Set
    # ROI_FILL_NEGATIVES = True as well so the classifier sees their ROIs as background.
    TRAIN_ON_EMPTY_IMAGES = False
    # A training image that fails mrcnn.validate's checks: "raise" stops with an error
    # naming it; "skip" skips it with a warning and lists skipped images at each epoch end.
    BAD_IMAGE_POLICY = "raise"

    # --- Keypoints (the paper's section 5: a Keypoint R-CNN head beside the mask head) ----
    # Keypoints per instance; 0: no keypoint head (every graph, checkpoint and upstream
    # weight file is as without it). Datasets then implement load_keypoints(image_id).
    NUM_KEYPOINTS = 0
    KEYPOINT_NAMES = None          # K names, e.g. COCO's "nose", "left_eye", ...
    KEYPOINT_FLIP_MAP = ()         # (left_name, right_name) pairs swapped by horizontal flips
    KEYPOINT_POOL_SIZE = 14        # ROIAlign output side of the keypoint head
    KEYPOINT_MASK_SHAPE = [56, 56] # heatmap side: 2x the transposed conv's, 4x the pool's
    KEYPOINT_HEAD_CONV_SIZE = 512  # channels of the head's eight 3x3 convs
    KEYPOINT_HEAD_CONV_COUNT = 8
    KEYPOINT_LOSS_WEIGHT = 1.0
    # False trains and detects keypoints without the mask head (the paper's keypoint-only
    # model); detect() then returns no "masks".
    KEYPOINT_WITH_MASKS = True

    def __init__(self):
        self.validate()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, sources in _DERIVED.items():
            if name in vars(cls):
                raise ConfigError(f"{name} is derived from {sources}; set those in "
                                  f"{cls.__name__} instead")

    # --- Derived attributes: always computed from the settings they depend on ----------
    @property
    def BATCH_SIZE(self):
        """Images per optimizer step over all replicas."""
        return self.IMAGES_PER_GPU * self.GPU_COUNT

    @property
    def IMAGE_SHAPE(self):
        """np.array [height, width, channels] of the model's input in "square"/"crop" mode.

        In "crop" mode images are cropped to IMAGE_MIN_DIM; otherwise the upper bound
        IMAGE_MAX_DIM (the exact size in "square" mode, a bound in "pad64" and "none").
        """
        side = self.IMAGE_MIN_DIM if self.IMAGE_RESIZE_MODE == "crop" else self.IMAGE_MAX_DIM
        return np.array([side, side, self.IMAGE_CHANNEL_COUNT])

    @property
    def IMAGE_META_SIZE(self):
        """Length of the image_meta vector: id, 2 shapes, window, scale, class ids."""
        return 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES

    @BATCH_SIZE.setter
    def BATCH_SIZE(self, value):
        _refuse_derived("BATCH_SIZE")

    @IMAGE_SHAPE.setter
    def IMAGE_SHAPE(self, value):
        _refuse_derived("IMAGE_SHAPE")

    @IMAGE_META_SIZE.setter
    def IMAGE_META_SIZE(self, value):
        _refuse_derived("IMAGE_META_SIZE")

    # --- Inspection -----------------------------------------------------------------------
    def to_dict(self):
        """Every setting (upper-case attribute) as JSON-friendly Python values."""
        result = {}
        for name in sorted(dir(self)):
            if not name.isupper() or name.startswith("__"):
                continue
            value = getattr(self, name)
            if callable(value):
                continue
            result[name] = _plain(value)
        return result

    def display(self):
        """Print every setting, one per line, as upstream's Config.display()."""
        print("\nConfigurations:")
        for name, value in self.to_dict().items():
            print(f"{name:30} {value}")
        for name in ("BACKBONE", "COMPUTE_BACKBONE_SHAPE"):
            value = getattr(self, name)
            if callable(value):
                print(f"{name:30} {getattr(value, '__name__', value)}")
        print("\n")

    def to_json(self):
        """The settings as a JSON string (written beside checkpoints)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    # --- Validation -------------------------------------------------------------------
    def validate(self, mode=None):
        """Check every setting; raise ConfigError naming the first bad attribute.

        mode: None checks what every use needs; "training" or "inference" also checks
        what that graph needs (MaskRCNN(mode=...) passes its mode). Returns self.
        """
        self._validate_batch()
        self._validate_backbone()
        self._validate_anchors()
        self._validate_images()
        self._validate_heads()
        self._validate_keypoints()
        self._validate_optimisation()
        if mode is not None:
            self._validate_for_mode(mode)
        return self

    def _validate_for_mode(self, mode):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        resize = self.IMAGE_RESIZE_MODE
        if mode == "training" and resize in ("pad64", "none"):
            side = int(self.IMAGE_SHAPE[0])
            raise ConfigError(
                f"IMAGE_RESIZE_MODE {resize!r} cannot be used for training: the training "
                f"graph takes images of the fixed size IMAGE_SHAPE ({side}x{side}) and "
                f"{resize!r} gives each image its own size. Train with 'square' (scale and "
                f"pad to IMAGE_MAX_DIM x IMAGE_MAX_DIM) or 'crop' (random IMAGE_MIN_DIM x "
                f"IMAGE_MIN_DIM crops); {resize!r} works at inference")

    def _validate_batch(self):
        _require_int(self, "GPU_COUNT", minimum=1)
        _require_int(self, "IMAGES_PER_GPU", minimum=1)
        _require_int(self, "STEPS_PER_EPOCH", minimum=1)
        _require_int(self, "VALIDATION_STEPS", minimum=1)
        _require_int(self, "NUM_CLASSES", minimum=1)
        if self.NAME is not None and not isinstance(self.NAME, str):
            raise ConfigError(f"NAME must be a string or None, got {self.NAME!r}")
        if self.DATA_WORKERS is not None:
            _require_int(self, "DATA_WORKERS", minimum=1)
        if self.BAD_IMAGE_POLICY not in ("raise", "skip"):
            raise ConfigError(f"BAD_IMAGE_POLICY must be 'raise' or 'skip', "
                              f"got {self.BAD_IMAGE_POLICY!r}")
        if not isinstance(self.TRAIN_ON_EMPTY_IMAGES, (bool, np.bool_)):
            raise ConfigError(f"TRAIN_ON_EMPTY_IMAGES must be True or False, "
                              f"got {self.TRAIN_ON_EMPTY_IMAGES!r}")

    def _validate_backbone(self):
        if callable(self.BACKBONE):
            if not callable(self.COMPUTE_BACKBONE_SHAPE):
                raise ConfigError(
                    "COMPUTE_BACKBONE_SHAPE must be a callable(image_shape) -> "
                    "[[h, w] per level] when BACKBONE is a callable")
        elif self.BACKBONE not in BUILTIN_BACKBONES:
            raise ConfigError(f"BACKBONE must be one of {BUILTIN_BACKBONES} or a callable, "
                              f"got {self.BACKBONE!r}")
        strides = _require_sequence(self, "BACKBONE_STRIDES")
        for stride in strides:
            if int(stride) != stride or stride < 1:
                raise ConfigError(f"BACKBONE_STRIDES must hold positive integers, got {strides}")
        _require_int(self, "TOP_DOWN_PYRAMID_SIZE", minimum=1)
        _require_int(self, "RPN_CONV_SIZE", minimum=1)
        _require_int(self, "MASK_HEAD_CONV_SIZE", minimum=1)
        _require_int(self, "FPN_CLASSIF_FC_LAYERS_SIZE", minimum=1)

    def _validate_anchors(self):
        scales = _require_sequence(self, "RPN_ANCHOR_SCALES")
        if len(scales) != len(self.BACKBONE_STRIDES):
            raise ConfigError(
                f"RPN_ANCHOR_SCALES has {len(scales)} scales but BACKBONE_STRIDES has "
                f"{len(self.BACKBONE_STRIDES)} levels: give one anchor scale per pyramid level")
        if any(s <= 0 for s in scales):
            raise ConfigError(f"RPN_ANCHOR_SCALES must be positive, got {scales}")
        ratios = _require_sequence(self, "RPN_ANCHOR_RATIOS")
        if not ratios or any(r <= 0 for r in ratios):
            raise ConfigError(f"RPN_ANCHOR_RATIOS must be positive numbers, got {ratios}")
        _require_int(self, "RPN_ANCHOR_STRIDE", minimum=1)
        _require_fraction(self, "RPN_NMS_THRESHOLD")
        _require_int(self, "RPN_TRAIN_ANCHORS_PER_IMAGE", minimum=2)
        _require_int(self, "PRE_NMS_LIMIT", minimum=1)
        _require_int(self, "POST_NMS_ROIS_TRAINING", minimum=1)
        _require_int(self, "POST_NMS_ROIS_INFERENCE", minimum=1)
        _require_std_dev(self, "RPN_BBOX_STD_DEV")

    def _validate_images(self):
        if self.IMAGE_RESIZE_MODE not in RESIZE_MODES:
            raise ConfigError(f"IMAGE_RESIZE_MODE must be one of {RESIZE_MODES}, "
                              f"got {self.IMAGE_RESIZE_MODE!r}")
        _require_int(self, "IMAGE_MAX_DIM", minimum=64)
        _require_int(self, "IMAGE_CHANNEL_COUNT", minimum=1)
        if self.IMAGE_RESIZE_MODE in ("square", "crop"):
            attribute = "IMAGE_MIN_DIM" if self.IMAGE_RESIZE_MODE == "crop" else "IMAGE_MAX_DIM"
            side = getattr(self, attribute)
            if side % 64:
                raise ConfigError(
                    f"{attribute} must be divisible by 64 in {self.IMAGE_RESIZE_MODE!r} mode "
                    f"(the input image is {side} pixels, which the 5 pyramid levels halve "
                    f"6 times); try {max(64, int(round(side / 64)) * 64)}")
        if self.IMAGE_MIN_DIM is not None:
            _require_int(self, "IMAGE_MIN_DIM", minimum=1)
            if self.IMAGE_RESIZE_MODE == "pad64" and self.IMAGE_MIN_DIM % 64:
                raise ConfigError(
                    f"IMAGE_MIN_DIM must be divisible by 64 in 'pad64' mode (the short side "
                    f"is scaled to {self.IMAGE_MIN_DIM} pixels, then padded to a multiple of "
                    f"64); try {max(64, int(round(self.IMAGE_MIN_DIM / 64)) * 64)}, or None (no "
                    f"minimum side)")
            if self.IMAGE_RESIZE_MODE == "square" and self.IMAGE_MIN_DIM > self.IMAGE_MAX_DIM:
                raise ConfigError(f"IMAGE_MIN_DIM ({self.IMAGE_MIN_DIM}) must not exceed "
                                  f"IMAGE_MAX_DIM ({self.IMAGE_MAX_DIM})")
        if self.IMAGE_MIN_SCALE is not None and self.IMAGE_MIN_SCALE < 0:
            raise ConfigError(f"IMAGE_MIN_SCALE must be >= 0, got {self.IMAGE_MIN_SCALE}")
        mean = np.asarray(self.MEAN_PIXEL, dtype=float).reshape(-1)
        if mean.size != self.IMAGE_CHANNEL_COUNT:
            raise ConfigError(f"MEAN_PIXEL has {mean.size} values but IMAGE_CHANNEL_COUNT is "
                              f"{self.IMAGE_CHANNEL_COUNT}: give one mean per channel")
        if self.USE_MINI_MASK:
            _require_pair(self, "MINI_MASK_SHAPE")

    def _validate_heads(self):
        _require_int(self, "TRAIN_ROIS_PER_IMAGE", minimum=1)
        ratio = self.ROI_POSITIVE_RATIO
        if not 0 < ratio <= 1:
            raise ConfigError(f"ROI_POSITIVE_RATIO must be in (0, 1], got {ratio}")
        _require_int(self, "POOL_SIZE", minimum=1)
        _require_int(self, "MASK_POOL_SIZE", minimum=1)
        mask_shape = _require_pair(self, "MASK_SHAPE")
        expected = [2 * self.MASK_POOL_SIZE, 2 * self.MASK_POOL_SIZE]
        if list(mask_shape) != expected:
            raise ConfigError(f"MASK_SHAPE must be twice MASK_POOL_SIZE ({expected}) since the "
                              f"mask head upsamples once, got {list(mask_shape)}")
        _require_int(self, "MAX_GT_INSTANCES", minimum=1)
        _require_int(self, "DETECTION_MAX_INSTANCES", minimum=1)
        _require_std_dev(self, "BBOX_STD_DEV")
        if not 0 <= self.DETECTION_MIN_CONFIDENCE <= 1:
            raise ConfigError(f"DETECTION_MIN_CONFIDENCE must be in [0, 1], "
                              f"got {self.DETECTION_MIN_CONFIDENCE}")
        _require_fraction(self, "DETECTION_NMS_THRESHOLD")
        if self.ROI_ALIGN_MODE not in ROI_ALIGN_MODES:
            raise ConfigError(f"ROI_ALIGN_MODE must be one of {ROI_ALIGN_MODES}, "
                              f"got {self.ROI_ALIGN_MODE!r}")
        _require_int(self, "SAMPLING_RATIO", minimum=1)

    def _validate_keypoints(self):
        """The keypoint head's settings (NUM_KEYPOINTS = 0 leaves the others unread)."""
        count = _require_int(self, "NUM_KEYPOINTS", minimum=0)
        if not isinstance(self.KEYPOINT_WITH_MASKS, (bool, np.bool_)):
            raise ConfigError(f"KEYPOINT_WITH_MASKS must be True or False, "
                              f"got {self.KEYPOINT_WITH_MASKS!r}")
        if not self.KEYPOINT_WITH_MASKS and count == 0:
            raise ConfigError("KEYPOINT_WITH_MASKS = False (a keypoint-only model) needs "
                              "NUM_KEYPOINTS > 0: without keypoints there is no head left")
        if count == 0:
            return
        names = self.KEYPOINT_NAMES
        if names is not None:
            if isinstance(names, str) or len(list(names)) != count \
                    or not all(isinstance(n, str) for n in names):
                raise ConfigError(f"KEYPOINT_NAMES must be {count} strings (NUM_KEYPOINTS), "
                                  f"got {names!r}")
            if len(set(names)) != count:
                raise ConfigError(f"KEYPOINT_NAMES must be distinct, got {list(names)}")
        _check_flip_map(self.KEYPOINT_FLIP_MAP, names)
        pool = _require_int(self, "KEYPOINT_POOL_SIZE", minimum=1)
        shape = _require_pair(self, "KEYPOINT_MASK_SHAPE")
        if [int(v) for v in shape] != [4 * pool, 4 * pool]:
            raise ConfigError(
                f"KEYPOINT_MASK_SHAPE must be 4 x KEYPOINT_POOL_SIZE ({[4 * pool] * 2}): the "
                f"head's transposed conv and its bilinear upsampling each double the "
                f"{pool}x{pool} pooled features, got {list(shape)}")
        _require_int(self, "KEYPOINT_HEAD_CONV_SIZE", minimum=1)
        _require_int(self, "KEYPOINT_HEAD_CONV_COUNT", minimum=0)
        weight = self.KEYPOINT_LOSS_WEIGHT
        if isinstance(weight, (bool, np.bool_)) or not isinstance(
                weight, (int, float, np.integer, np.floating)) or not weight >= 0:
            raise ConfigError(f"KEYPOINT_LOSS_WEIGHT must be a number >= 0, got {weight!r}")
        listed = self.LOSS_WEIGHTS.get(KEYPOINT_LOSS_NAME)
        if listed is not None and float(listed) != float(weight):
            raise ConfigError(
                f"LOSS_WEIGHTS[{KEYPOINT_LOSS_NAME!r}] ({listed}) disagrees with "
                f"KEYPOINT_LOSS_WEIGHT ({weight}): set the keypoint loss's weight in one")

    def _validate_optimisation(self):
        for name in ("LEARNING_RATE", "GRADIENT_CLIP_NORM"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if not 0 <= self.LEARNING_MOMENTUM < 1:
            raise ConfigError(f"LEARNING_MOMENTUM must be in [0, 1), got {self.LEARNING_MOMENTUM}")
        if self.WEIGHT_DECAY < 0:
            raise ConfigError(f"WEIGHT_DECAY must be >= 0, got {self.WEIGHT_DECAY}")
        unknown = set(self.LOSS_WEIGHTS) - set(LOSS_NAMES) - {KEYPOINT_LOSS_NAME}
        if unknown:
            raise ConfigError(f"LOSS_WEIGHTS has unknown losses {sorted(unknown)}; "
                              f"known: {list(LOSS_NAMES)}")
        if self.MIXED_PRECISION not in MIXED_PRECISION_POLICIES:
            raise ConfigError(f"MIXED_PRECISION must be one of {MIXED_PRECISION_POLICIES}, "
                              f"got {self.MIXED_PRECISION!r}")
        if not isinstance(self.SYNC_BN, bool):
            raise ConfigError(f"SYNC_BN must be True or False, got {self.SYNC_BN!r}")
        if self.TRAIN_BN not in (None, True, False):
            raise ConfigError(f"TRAIN_BN must be None, True or False, got {self.TRAIN_BN!r}")
        if self.GRADIENT_CLIP_MODE not in GRADIENT_CLIP_MODES:
            raise ConfigError(f"GRADIENT_CLIP_MODE must be one of {GRADIENT_CLIP_MODES}, "
                              f"got {self.GRADIENT_CLIP_MODE!r}")
        if self.LEARNING_RATE_SCHEDULE not in LR_SCHEDULES:
            raise ConfigError(f"LEARNING_RATE_SCHEDULE must be one of {LR_SCHEDULES}, "
                              f"got {self.LEARNING_RATE_SCHEDULE!r}")
        _require_int(self, "LEARNING_RATE_WARMUP_STEPS", minimum=0)
        _require_int(self, "LOG_EVERY_N_STEPS", minimum=1)
        if not 0 <= self.LEARNING_RATE_MIN_FACTOR <= 1:
            raise ConfigError(f"LEARNING_RATE_MIN_FACTOR must be in [0, 1], "
                              f"got {self.LEARNING_RATE_MIN_FACTOR}")
        _validate_class_loss(self)


_DERIVED = {
    "BATCH_SIZE": "IMAGES_PER_GPU and GPU_COUNT",
    "IMAGE_SHAPE": "IMAGE_MAX_DIM (IMAGE_MIN_DIM in crop mode) and IMAGE_CHANNEL_COUNT",
    "IMAGE_META_SIZE": "NUM_CLASSES",
}


def _validate_class_loss(config):
    """CLASS_LOSS_WEIGHTS, CLASS_LOSS and FOCAL_GAMMA (see mrcnn/nn/class_loss.py)."""
    if config.CLASS_LOSS not in CLASS_LOSSES:
        raise ConfigError(f"CLASS_LOSS must be one of {CLASS_LOSSES}, "
                          f"got {config.CLASS_LOSS!r}")
    gamma = config.FOCAL_GAMMA
    if (isinstance(gamma, (bool, np.bool_)) or not isinstance(gamma, (int, float, np.number))
            or not math.isfinite(gamma) or gamma < 0):
        raise ConfigError(f"FOCAL_GAMMA must be a finite number >= 0, got {gamma!r}")
    weights = config.CLASS_LOSS_WEIGHTS
    if weights is None:
        return
    try:
        values = [float(v) for v in _require_sequence(config, "CLASS_LOSS_WEIGHTS")]
    except (TypeError, ValueError) as error:
        raise ConfigError(f"CLASS_LOSS_WEIGHTS must be numbers, got {weights!r}") from error
    if len(values) != config.NUM_CLASSES:
        raise ConfigError(f"CLASS_LOSS_WEIGHTS has {len(values)} weights but NUM_CLASSES is "
                          f"{config.NUM_CLASSES}: give one weight per class, background "
                          f"first")
    if any(not math.isfinite(v) or v < 0 for v in values) or not any(v > 0 for v in values):
        raise ConfigError(f"CLASS_LOSS_WEIGHTS must be finite numbers >= 0, at least one "
                          f"of them > 0, got {list(weights)}")


def _refuse_derived(name, sources=None):
    raise AttributeError(f"{name} is derived from {sources or _DERIVED[name]}; "
                         f"set those instead")


def _plain(value):
    """A JSON-friendly copy of a setting's value."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _require_int(config, name, minimum):
    value = getattr(config, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _require_fraction(config, name):
    value = getattr(config, name)
    if not (isinstance(value, (int, float, np.floating)) and 0 < value <= 1):
        raise ConfigError(f"{name} must be in (0, 1], got {value!r}")
    return value


def _require_sequence(config, name):
    value = getattr(config, name)
    try:
        values = list(np.asarray(value).reshape(-1))
    except Exception as error:  # noqa: BLE001 - any non-sequence is the user's error
        raise ConfigError(f"{name} must be a sequence of numbers, got {value!r}") from error
    if not values:
        raise ConfigError(f"{name} must not be empty")
    return values


def _require_pair(config, name):
    value = getattr(config, name)
    values = _require_sequence(config, name)
    if len(values) != 2 or any(v < 1 or int(v) != v for v in values):
        raise ConfigError(f"{name} must be two positive integers (height, width), got {value!r}")
    return values


def _check_flip_map(flip_map, names):
    """KEYPOINT_FLIP_MAP: (left, right) pairs of distinct KEYPOINT_NAMES, each name once."""
    try:
        pairs = [tuple(pair) for pair in flip_map]
    except TypeError:
        raise ConfigError(f"KEYPOINT_FLIP_MAP must be a sequence of (left_name, right_name) "
                          f"pairs, got {flip_map!r}") from None
    if pairs and names is None:
        raise ConfigError("KEYPOINT_FLIP_MAP names keypoints, so KEYPOINT_NAMES must be given")
    seen = set()
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ConfigError(f"KEYPOINT_FLIP_MAP must hold pairs of two different names, "
                              f"got {pair!r}")
        unknown = [n for n in pair if n not in names]
        if unknown:
            raise ConfigError(f"KEYPOINT_FLIP_MAP names {unknown} that are not in "
                              f"KEYPOINT_NAMES {list(names)}")
        if seen & set(pair):
            raise ConfigError(f"KEYPOINT_FLIP_MAP names {sorted(seen & set(pair))} in more "
                              f"than one pair")
        seen.update(pair)


def _require_std_dev(config, name):
    values = _require_sequence(config, name)
    if len(values) != 4 or any(not math.isfinite(v) or v <= 0 for v in values):
        raise ConfigError(f"{name} must be 4 positive numbers (dy, dx, dh, dw), got {values}")
    return values

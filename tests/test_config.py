"""Config: upstream defaults, derived attributes, validation messages."""
import json

import numpy as np
import pytest

from mrcnn.config import Config, ConfigError


def test_upstream_defaults_and_derived_attributes():
    config = Config()
    assert config.NAME is None
    assert (config.GPU_COUNT, config.IMAGES_PER_GPU, config.BATCH_SIZE) == (1, 2, 2)
    assert config.BACKBONE == "resnet101"
    assert config.BACKBONE_STRIDES == [4, 8, 16, 32, 64]
    assert config.RPN_ANCHOR_SCALES == (32, 64, 128, 256, 512)
    assert config.PRE_NMS_LIMIT == 6000
    assert config.TRAIN_BN is False
    assert config.GRADIENT_CLIP_NORM == 5.0
    assert list(config.IMAGE_SHAPE) == [1024, 1024, 3]
    # 1 id + 3 original shape + 3 molded shape + 4 window + 1 scale + NUM_CLASSES
    assert config.IMAGE_META_SIZE == 12 + config.NUM_CLASSES
    assert set(config.LOSS_WEIGHTS) == {"rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
                                        "mrcnn_bbox_loss", "mrcnn_mask_loss"}


def test_derived_attributes_follow_later_changes():
    config = Config()
    config.IMAGES_PER_GPU = 4
    config.GPU_COUNT = 2
    config.NUM_CLASSES = 5
    config.IMAGE_RESIZE_MODE = "crop"
    config.IMAGE_MIN_DIM = 512
    assert config.BATCH_SIZE == 8
    assert config.IMAGE_META_SIZE == 17
    assert list(config.IMAGE_SHAPE) == [512, 512, 3]
    with pytest.raises(AttributeError, match="IMAGES_PER_GPU"):
        config.BATCH_SIZE = 1


def test_subclass_overrides():
    class ShapesLike(Config):
        NAME = "shapes"
        NUM_CLASSES = 4
        IMAGE_MIN_DIM = 128
        IMAGE_MAX_DIM = 128
        IMAGES_PER_GPU = 8

    config = ShapesLike()
    assert config.BATCH_SIZE == 8 and config.IMAGE_META_SIZE == 16
    assert list(config.IMAGE_SHAPE) == [128, 128, 3]


def test_to_dict_is_json_and_display_prints(capsys):
    config = Config()
    as_dict = config.to_dict()
    assert as_dict["MEAN_PIXEL"] == [123.7, 116.8, 103.9]
    assert as_dict["BATCH_SIZE"] == 2
    assert json.loads(config.to_json())["IMAGE_MAX_DIM"] == 1024
    config.display()
    out = capsys.readouterr().out
    assert "IMAGE_MAX_DIM" in out and "1024" in out


def _with(**settings):
    return type("Custom", (Config,), settings)


@pytest.mark.parametrize("settings, attribute", [
    (dict(IMAGE_MAX_DIM=1000), "IMAGE_MAX_DIM"),
    (dict(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=500), "IMAGE_MIN_DIM"),
    (dict(IMAGE_RESIZE_MODE="stretch"), "IMAGE_RESIZE_MODE"),
    (dict(RPN_ANCHOR_SCALES=(32, 64, 128)), "RPN_ANCHOR_SCALES"),
    (dict(RPN_ANCHOR_RATIOS=[]), "RPN_ANCHOR_RATIOS"),
    (dict(RPN_ANCHOR_RATIOS=[0.5, -1]), "RPN_ANCHOR_RATIOS"),
    (dict(NUM_CLASSES=0), "NUM_CLASSES"),
    (dict(NUM_CLASSES=2.5), "NUM_CLASSES"),
    (dict(IMAGES_PER_GPU=0), "IMAGES_PER_GPU"),
    (dict(GPU_COUNT=0), "GPU_COUNT"),
    (dict(BACKBONE="vgg16"), "BACKBONE"),
    (dict(BACKBONE=lambda *a: None), "COMPUTE_BACKBONE_SHAPE"),
    (dict(MEAN_PIXEL=[1.0, 2.0]), "MEAN_PIXEL"),
    (dict(ROI_POSITIVE_RATIO=1.5), "ROI_POSITIVE_RATIO"),
    (dict(MASK_SHAPE=[56, 56]), "MASK_SHAPE"),
    (dict(TRAIN_BN="yes"), "TRAIN_BN"),
    (dict(LOSS_WEIGHTS={"rpn_loss": 1.0}), "LOSS_WEIGHTS"),
    (dict(BBOX_STD_DEV=[0.1, 0.1, 0.2]), "BBOX_STD_DEV"),
    (dict(DETECTION_MIN_CONFIDENCE=1.5), "DETECTION_MIN_CONFIDENCE"),
    (dict(RPN_NMS_THRESHOLD=0.0), "RPN_NMS_THRESHOLD"),
    (dict(LEARNING_RATE=-0.1), "LEARNING_RATE"),
    (dict(LEARNING_MOMENTUM=1.0), "LEARNING_MOMENTUM"),
    (dict(LEARNING_RATE_SCHEDULE="linear"), "LEARNING_RATE_SCHEDULE"),
    (dict(GRADIENT_CLIP_MODE="norm"), "GRADIENT_CLIP_MODE"),
    (dict(MINI_MASK_SHAPE=(56,)), "MINI_MASK_SHAPE"),
    (dict(IMAGE_MIN_DIM=2048), "IMAGE_MIN_DIM"),
    (dict(DATA_WORKERS=0), "DATA_WORKERS"),
    (dict(MIXED_PRECISION="float16"), "MIXED_PRECISION"),
    (dict(SYNC_BN=1), "SYNC_BN"),
    (dict(BAD_IMAGE_POLICY="ignore"), "BAD_IMAGE_POLICY"),
    (dict(TRAIN_ON_EMPTY_IMAGES="yes"), "TRAIN_ON_EMPTY_IMAGES"),
    (dict(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=800), "IMAGE_MIN_DIM"),
])
def test_invalid_setting_names_its_attribute(settings, attribute):
    with pytest.raises(ConfigError) as raised:
        _with(**settings)()
    assert str(raised.value).startswith(attribute)


def test_square_mode_checks_max_dim_not_min_dim():
    # Upstream's shapes sample uses IMAGE_MIN_DIM=800 (not /64) in square mode: valid.
    config = _with(IMAGE_MIN_DIM=800, IMAGE_MAX_DIM=1024)()
    assert list(config.IMAGE_SHAPE) == [1024, 1024, 3]


def test_validate_catches_changes_after_init():
    config = Config()
    config.IMAGE_MAX_DIM = 100
    with pytest.raises(ConfigError, match="^IMAGE_MAX_DIM.*try 128"):
        config.validate()


def test_callable_backbone_accepted_with_shape_function():
    def backbone(image, stage5, train_bn):
        return []

    def shapes(image_shape):
        return np.array([[image_shape[0] // s, image_shape[1] // s] for s in (4, 8, 16, 32, 64)])

    config = _with(BACKBONE=backbone, COMPUTE_BACKBONE_SHAPE=shapes)()
    assert "BACKBONE" not in config.to_dict()


def test_subclass_setting_a_derived_attribute_is_refused():
    with pytest.raises(ConfigError, match="^BATCH_SIZE is derived from IMAGES_PER_GPU"):
        class Bad(Config):
            BATCH_SIZE = 4


@pytest.mark.parametrize("resize_mode", ["pad64", "none"])
def test_per_image_sizes_are_refused_for_training_only(resize_mode):
    config = _with(IMAGE_RESIZE_MODE=resize_mode, IMAGE_MIN_DIM=512)()
    assert config.validate(mode="inference") is config
    with pytest.raises(ConfigError) as raised:
        config.validate(mode="training")
    message = str(raised.value)
    assert message.startswith(f"IMAGE_RESIZE_MODE {resize_mode!r} cannot be used for training")
    assert "'square'" in message and "'crop'" in message and "1024x1024" in message


@pytest.mark.parametrize("resize_mode", ["square", "crop"])
def test_fixed_size_modes_are_valid_for_both_graphs(resize_mode):
    config = _with(IMAGE_RESIZE_MODE=resize_mode, IMAGE_MIN_DIM=512)()
    assert config.validate(mode="training") is config
    assert config.validate(mode="inference") is config


def test_pad64_without_a_minimum_side_is_valid():
    assert _with(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=None)().validate(mode="inference")


def test_unknown_validation_mode_is_an_error():
    with pytest.raises(ValueError, match="mode must be one of"):
        Config().validate(mode="train")


def test_training_model_refuses_pad64_before_building(tmp_path):
    import mrcnn.model as modellib
    config = _with(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=512)()
    with pytest.raises(ConfigError, match="^IMAGE_RESIZE_MODE 'pad64' cannot be used"):
        modellib.MaskRCNN("training", config, str(tmp_path))

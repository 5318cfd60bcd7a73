"""Per-net input normalisation: each ImageNet checkpoint expects its own input range.

All functions take float32 RGB images in [0, 255], shape [..., 3].
"""
import numpy as np

from utils.compat import tf

# ImageNet channel means (RGB) used by the Caffe-converted VGG and slim ResNet-v1 checkpoints.
VGG_MEAN_RGB = (123.68, 116.78, 103.94)
# torchvision normalisation (of [0, 1] RGB), used by ResNet-18/34 weights converted from torchvision / timm
# (tests/test_torch_weights.py compares it with torchvision's ToTensor + Normalize).
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)
# EfficientNet-Lite (tensorflow/tpu lite/efficientnet_lite_builder.py MEAN_RGB, STDDEV_RGB): about [-1, 1].
LITE_MEAN, LITE_STD = 127.0, 128.0


def vgg(images):
    """Mean subtraction only (VGG, slim ResNet-v1 50/101)."""
    return images - tf.constant(VGG_MEAN_RGB, dtype=images.dtype)


def inception(images):
    """Scale to [-1, 1] (Inception, MobileNet)."""
    return images * (2.0 / 255.0) - 1.0


def torchvision(images):
    """(x/255 - mean) / std (torchvision-converted ResNet-18/34)."""
    mean = tf.constant(TORCH_MEAN_RGB, dtype=images.dtype)
    std = tf.constant(TORCH_STD_RGB, dtype=images.dtype)
    return (images / 255.0 - mean) / std


def efficientnet_lite(images):
    """(x - 127) / 128: EfficientNet-Lite's 'inception-style' range, chosen there for int8."""
    return (images - LITE_MEAN) / LITE_STD


# EfficientNet B0-B3 use "torchvision": the TPU repository's (x - 255 * mean) / (255 * std) is the same map.
PREPROCESSORS = {"vgg": vgg, "inception": inception, "torchvision": torchvision,
                 "efficientnet_lite": efficientnet_lite}


def undo(key, images):
    """numpy inverse of PREPROCESSORS[key]: normalised images -> RGB in [0, 255] (for pictures)."""
    images = np.asarray(images, dtype=np.float32)
    if key == "vgg":
        out = images + np.asarray(VGG_MEAN_RGB, np.float32)
    elif key == "inception":
        out = (images + 1.0) * 127.5
    elif key == "efficientnet_lite":
        out = images * LITE_STD + LITE_MEAN
    elif key == "torchvision":
        out = (images * np.asarray(TORCH_STD_RGB, np.float32) + np.asarray(TORCH_MEAN_RGB, np.float32)) * 255.0
    else:
        raise KeyError("unknown preprocessing %r; valid: %s" % (key, ", ".join(PREPROCESSORS)))
    return np.clip(out, 0, 255)

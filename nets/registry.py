"""One registry of feature extractors (encoders): name -> how to build, feed and tap it.

A decoder never imports a net module directly: it asks `get(name)` for a
`Encoder` and calls `.build(images, is_training)`.  Adding a net is one
module in `nets/` plus one entry here.

Encoders trained from scratch (ENet, FC-DenseNet) have no ImageNet
checkpoint (`checkpoint=None`: train.py then trains from scratch and says so)
and name their own decoder (`decoder`), the default when no decoder is asked for.
"""
import dataclasses
import importlib
import inspect
from typing import Dict, Mapping, Optional, Tuple

from nets import preprocessing
from utils.compat import slim


@dataclasses.dataclass(frozen=True)
class Features:
    """What a decoder gets from an encoder.

    top:  the base_only output (the deepest feature map, nominal stride 32).
    taps: nominal stride (4, 8, 16, 32) -> feature map; 32 is `top`.  With an
          `output_stride` < 32 the deeper taps are dilated, so their true stride
          is smaller than the nominal one: use `true_stride()` or tensor shapes.
          (ENet is dilated beyond stride 8 by design.)  Some encoders also tap
          finer strides (1, 2) that encoder-decoder nets read (SegNet, FC-DenseNet).
    end_points: the net's full TF-Slim end_points dict.
    pool_indices: {stride: nets.pooling.PoolIndices} of the encoder's 2x2 max pools, keyed by the
          stride of each pool's input, when the build asked for them (`pool_indices=True`); else {}.
    """
    top: object
    taps: Mapping[int, object]
    end_points: Mapping[str, object]
    input_shape: tuple
    pool_indices: Mapping[int, object] = dataclasses.field(default_factory=dict)

    def true_stride(self, nominal):
        """Actual downsampling of tap `nominal` w.r.t. the (padded) input height."""
        height = self.taps[nominal].shape[1]
        if height is None or self.input_shape[1] is None:
            raise ValueError("true_stride needs static spatial shapes")
        return int(round(self.input_shape[1] / int(height)))


@dataclasses.dataclass(frozen=True)
class Encoder:
    """Registry entry.  A net's module is imported when the net is first built (`module`, `function`)."""
    name: str
    module: str              # python module in nets/, e.g. 'nets.resnet_v1'
    function: str            # net function in that module: fn(images, num_classes, is_training, base_only, output_stride, ...)
    arg_scope: str           # arg_scope function in that module: fn(weight_decay=...) -> scope dict
    preprocessing: str       # key in nets.preprocessing.PREPROCESSORS
    taps: Mapping[int, str]  # nominal stride -> end_points key (as built at the root variable scope)
    scope: str               # top variable scope == the checkpoint's variable prefix
    head_scope: str          # classifier head variables (left out by base_only)
    imagenet_classes: Optional[int]  # 1000 or 1001 (with background), as in the slim checkpoint; None: no ImageNet head
    checkpoint: Optional[str]        # file expected under --modelspath; None: no ImageNet checkpoint (from scratch)
    checkpoint_source: str = "the TF-Slim model zoo"  # where a user downloads `checkpoint` (said when it is missing)
    decoder: Optional[str] = None    # its own decoder, the default when none is asked for (ENet, FC-DenseNet)
    top_stride: int = 32             # true stride of the top tap when not dilated further (ENet: 8)
    # net keyword -> checkpoint scopes a build with that keyword False does not make (VGG's fc_layers: fc6, fc7)
    optional_scopes: Mapping[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)
    # more classifier-head scopes outside head_scope (MobileNet v3's Conv_2 after the pool), left out by base_only
    more_head_scopes: Tuple[str, ...] = ()
    # the --output_stride values it builds (None always works); MiT does not dilate: 32 only
    output_strides: Tuple[int, ...] = (8, 16, 32)

    @property
    def net_fn(self):
        return getattr(importlib.import_module(self.module), self.function)

    @property
    def arg_scope_fn(self):
        return getattr(importlib.import_module(self.module), self.arg_scope)

    def preprocess(self, images):
        """float RGB images in [0, 255] -> the input range this net was trained on."""
        return preprocessing.PREPROCESSORS[self.preprocessing](images)

    @property
    def head_scopes(self):
        """Every checkpoint scope of the classifier head: head_scope and more_head_scopes."""
        return (self.head_scope,) + tuple(self.more_head_scopes)

    @property
    def has_checkpoint(self):
        return self.checkpoint is not None

    def unbuilt_scopes(self, net_args):
        """Checkpoint scopes a build with `net_args` leaves out: the classifier head, and the optional parts
        switched off (SegNet's VGG-16 without fc6/fc7); a restore expects them unused."""
        return self.head_scopes + tuple(scope for keyword, scopes in self.optional_scopes.items()
                                          if net_args.get(keyword, True) is False for scope in scopes)

    def takes(self, net_args):
        """True when the net function accepts every keyword of `net_args` (a decoder's requests)."""
        return set(net_args) <= set(inspect.signature(self.net_fn).parameters)

    def build(self, images, is_training, weight_decay=0.0, output_stride=None, preprocess=True,
              batch_norm_decay=None, pool_indices=False, **net_args):
        """Build the base net (no classifier head) under its own arg_scope.

        images: float32 [N, H, W, 3] RGB in [0, 255] (preprocess=True) or already
        preprocessed.  is_training: Python bool or scalar bool tensor.
        batch_norm_decay: moving-average decay of its batch norms (None: the
        checkpoint's slim default, e.g. 0.997; short runs want less, e.g. 0.9).
        pool_indices: record where the max pools took their maxima (Features.pool_indices).
        net_args: further keywords of the net function a decoder asks for (VGG's fc_layers=False).
        """
        inputs = self.preprocess(images) if preprocess else images
        scope_args = {"weight_decay": weight_decay}
        if batch_norm_decay is not None and "batch_norm_decay" in inspect.signature(self.arg_scope_fn).parameters:
            scope_args["batch_norm_decay"] = batch_norm_decay
        recorded = {}
        if pool_indices:
            net_args["pool_indices"] = recorded
        if not self.takes(net_args):
            raise ValueError("%s cannot build with %s" % (self.name, ", ".join(sorted(net_args))))
        with slim.arg_scope(self.arg_scope_fn(**scope_args)):
            top, end_points = self.net_fn(
                inputs, num_classes=None, is_training=is_training,
                base_only=True, output_stride=output_stride, **net_args)
        taps = {stride: lookup_end_point(end_points, key) for stride, key in self.taps.items() if stride != 32}
        taps[32] = top
        return Features(top=top, taps=taps, end_points=end_points,
                        input_shape=tuple(images.shape.as_list()), pool_indices=recorded)


def lookup_end_point(end_points, key):
    """end_points[key], also when the net was built under an outer scope ('outer/<key>')."""
    if key in end_points:
        return end_points[key]
    matches = [k for k in end_points if k.endswith("/" + key)]
    if len(matches) != 1:
        raise KeyError("end point %r not found (or ambiguous) among %d end points, e.g. %s"
                       % (key, len(end_points), sorted(end_points)[:8]))
    return end_points[matches[0]]


_ENTRIES = [
    Encoder(
        name="vgg_16", module="nets.vgg", function="vgg_16", arg_scope="vgg_arg_scope",
        preprocessing="vgg", scope="vgg_16", head_scope="vgg_16/fc8", imagenet_classes=1000,
        taps={1: "vgg_16/conv1/conv1_2", 2: "vgg_16/pool1", 4: "vgg_16/pool2", 8: "vgg_16/pool3",
              16: "vgg_16/pool4"},
        checkpoint="vgg_16.ckpt", optional_scopes={"fc_layers": ("vgg_16/fc6", "vgg_16/fc7")}),
    Encoder(
        name="inception_v1", module="nets.inception_v1", function="inception_v1",
        arg_scope="inception_v1_arg_scope", preprocessing="inception", scope="InceptionV1",
        head_scope="InceptionV1/Logits", imagenet_classes=1001,
        taps={4: "Conv2d_2c_3x3", 8: "Mixed_3c", 16: "Mixed_4f"},
        checkpoint="inception_v1.ckpt"),
    Encoder(
        name="resnet_v1_18", module="nets.resnet_v1", function="resnet_v1_18",
        arg_scope="resnet_arg_scope", preprocessing="torchvision", scope="resnet_v1_18",
        head_scope="resnet_v1_18/logits", imagenet_classes=1000,
        taps={4: "resnet_v1_18/block1", 8: "resnet_v1_18/block2", 16: "resnet_v1_18/block3"},
        checkpoint="resnet_v1_18.ckpt"),
    Encoder(
        name="resnet_v1_34", module="nets.resnet_v1", function="resnet_v1_34",
        arg_scope="resnet_arg_scope", preprocessing="torchvision", scope="resnet_v1_34",
        head_scope="resnet_v1_34/logits", imagenet_classes=1000,
        taps={4: "resnet_v1_34/block1", 8: "resnet_v1_34/block2", 16: "resnet_v1_34/block3"},
        checkpoint="resnet_v1_34.ckpt"),
    Encoder(
        name="resnet_v1_50", module="nets.resnet_v1", function="resnet_v1_50",
        arg_scope="resnet_arg_scope", preprocessing="vgg", scope="resnet_v1_50",
        head_scope="resnet_v1_50/logits", imagenet_classes=1000,
        taps={4: "resnet_v1_50/block1/unit_2/bottleneck_v1",
              8: "resnet_v1_50/block2/unit_3/bottleneck_v1",
              16: "resnet_v1_50/block3/unit_5/bottleneck_v1"},
        checkpoint="resnet_v1_50.ckpt"),
    Encoder(
        name="resnet_v1_101", module="nets.resnet_v1", function="resnet_v1_101",
        arg_scope="resnet_arg_scope", preprocessing="vgg", scope="resnet_v1_101",
        head_scope="resnet_v1_101/logits", imagenet_classes=1000,
        taps={4: "resnet_v1_101/block1/unit_2/bottleneck_v1",
              8: "resnet_v1_101/block2/unit_3/bottleneck_v1",
              16: "resnet_v1_101/block3/unit_22/bottleneck_v1"},
        checkpoint="resnet_v1_101.ckpt"),
    Encoder(
        name="mobilenet_v1", module="nets.mobilenet_v1", function="mobilenet_v1",
        arg_scope="mobilenet_v1_arg_scope", preprocessing="inception", scope="MobilenetV1",
        head_scope="MobilenetV1/Logits", imagenet_classes=1001,
        taps={4: "Conv2d_3_pointwise", 8: "Conv2d_5_pointwise", 16: "Conv2d_11_pointwise"},
        checkpoint="mobilenet_v1_1.0_224.ckpt"),
    Encoder(
        name="mobilenet_v2", module="nets.mobilenet_v2", function="mobilenet_v2",
        arg_scope="mobilenet_v2_arg_scope", preprocessing="inception", scope="MobilenetV2",
        head_scope="MobilenetV2/Logits", imagenet_classes=1001,
        taps={4: "layer_4", 8: "layer_7", 16: "layer_14"},
        checkpoint="mobilenet_v2_1.0_224.ckpt"),
    # MobileNet v3: the zoo's v3-{large,small}_224_1.0_float.tgz, its ema/ checkpoint saved under this name
    Encoder(
        name="mobilenet_v3_large", module="nets.mobilenet_v3", function="mobilenet_v3_large",
        arg_scope="mobilenet_v3_arg_scope", preprocessing="inception", scope="MobilenetV3",
        head_scope="MobilenetV3/Logits", more_head_scopes=("MobilenetV3/Conv_2",), imagenet_classes=1001,
        taps={4: "layer_4", 8: "layer_7", 16: "layer_13"},
        checkpoint="v3-large_224_1.0_float.ckpt"),
    Encoder(
        name="mobilenet_v3_small", module="nets.mobilenet_v3", function="mobilenet_v3_small",
        arg_scope="mobilenet_v3_arg_scope", preprocessing="inception", scope="MobilenetV3",
        head_scope="MobilenetV3/Logits", more_head_scopes=("MobilenetV3/Conv_2",), imagenet_classes=1001,
        taps={4: "layer_2", 8: "layer_4", 16: "layer_9"},
        checkpoint="v3-small_224_1.0_float.ckpt"),
    Encoder(
        # DeepLab's backbone (research/deeplab/core/xception.py); its model zoo's ImageNet-pretrained
        # xception_65_imagenet tarball unpacks to xception_65_imagenet/model.ckpt.{index,data-*}.
        # Taps: the last map at each stride, the stride-4 one being what DeepLab v3+'s decoder reads.
        name="xception_65", module="nets.xception", function="xception_65", arg_scope="xception_arg_scope",
        preprocessing="inception", scope="xception_65", head_scope="xception_65/logits", imagenet_classes=1001,
        taps={4: "xception_65/entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise",
              8: "xception_65/entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise",
              16: "xception_65/exit_flow/block1/unit_1/xception_module/separable_conv2_pointwise"},
        checkpoint="xception_65_imagenet/model.ckpt",
        checkpoint_source=("DeepLab's model zoo (xception_65_imagenet_2018_05_04.tar.gz, "
                           "unpacked under --modelspath)")),
] + [
    # EfficientNet (tensorflow/tpu models/official/efficientnet): checkpoint = `<model>/model.ckpt`, as the
    # published <model>.tar.gz unpacks; taps = the TPU model's reduction_2..4 (last block before each stride 2).
    Encoder(
        name=name, module="nets.efficientnet", function=name, arg_scope="efficientnet_arg_scope",
        preprocessing="efficientnet_lite" if "lite" in name else "torchvision", scope=scope,
        head_scope=scope + "/head", imagenet_classes=1000,
        taps={4: "reduction_2", 8: "reduction_3", 16: "reduction_4"}, checkpoint=scope + "/model.ckpt",
        checkpoint_source=("the TensorFlow TPU repository's EfficientNet checkpoints (<model>.tar.gz, "
                           "unpacked under --modelspath)"))
    for name, scope in (("efficientnet_b0", "efficientnet-b0"), ("efficientnet_b1", "efficientnet-b1"),
                        ("efficientnet_b2", "efficientnet-b2"), ("efficientnet_b3", "efficientnet-b3"),
                        ("efficientnet_lite0", "efficientnet-lite0"))
] + [
    # Mix Transformer (SegFormer's encoder): Hugging Face's nvidia/mit-b<n> model.safetensors, converted by
    # utils/convert_weights.py into mit_b<n>.ckpt; taps = the stage outputs (after their LayerNorm).
    Encoder(
        name=name, module="nets.mit", function=name, arg_scope="mit_arg_scope", preprocessing="torchvision",
        scope=name, head_scope=name + "/classifier", imagenet_classes=1000,
        taps={4: name + "/stage1", 8: name + "/stage2", 16: name + "/stage3"}, checkpoint=name + ".ckpt",
        checkpoint_source=("Hugging Face's nvidia/%s (its model.safetensors, then python utils/convert_weights.py "
                           "model.safetensors --modelspath <folder>)" % name.replace("_", "-")),
        output_strides=(32,))
    for name in ("mit_b0", "mit_b1", "mit_b2")
] + [
    Encoder(
        name="enet", module="nets.enet", function="enet", arg_scope="enet_arg_scope",
        preprocessing="torchvision", scope="enet", head_scope="enet/logits", imagenet_classes=None,
        taps={2: "enet/initial", 4: "enet/bottleneck1_4", 8: "enet/bottleneck2_0", 16: "enet/bottleneck2_8"},
        checkpoint=None, decoder="ENet", top_stride=8),
] + [
    Encoder(
        name=name, module="nets.fc_densenet", function=name, arg_scope="fc_densenet_arg_scope",
        preprocessing="torchvision", scope=name, head_scope=name + "/logits", imagenet_classes=None,
        taps={1: name + "/denseblock1", 2: name + "/denseblock2", 4: name + "/denseblock3",
              8: name + "/denseblock4", 16: name + "/denseblock5"},
        checkpoint=None, decoder="FCDenseNet")
    for name in ("fc_densenet_56", "fc_densenet_67", "fc_densenet_103")
]

REGISTRY: Dict[str, Encoder] = {entry.name: entry for entry in _ENTRIES}
NAMES = tuple(REGISTRY)


class UnknownNetError(ValueError):
    pass


def get(name: Optional[str]) -> Encoder:
    """The registry entry for `name`; an unknown name lists the valid ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownNetError("unknown feature extractor %r; valid names: %s"
                              % (name, ", ".join(NAMES))) from None

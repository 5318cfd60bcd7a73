"""BaseFcnArch: the decoder skeleton every decoder subclasses (seg-mentor's FCNgen drawing, as code).

`BaseFcnArch.build` runs the same skeleton for every decoder; a decoder is a
subclass that overrides blocks (and is exported as `arch.BaseFcnArch`):

    images (preprocessed, any size)
      -> pad to a multiple of 32 (undone at the end, callers never pad)
      -> encoder (feature extractor), base_only   taps {4, 8, 16, 32: top}
      -> net = decode_top(top)                    "decode at /32" (or at --encoder_stride)
      -> for stride in skip_strides() (deepest first, e.g. 16, 8, 4):
             net = upsample(net, skip, stride)    to the skip's size (x2, or x1 when dilated)
             net = combine(net, skip, stride)     e.g. score the skip and add
      -> logits = final_upsample(net, size)       to the padded input size
      -> aux = auxiliary_logits(features, size)   extra heads for training losses (PSPNet)
      -> crop to the input size

What every block may read:
  self.features  all encoder taps (`true_stride()` of each): ASPP's rates, PSP's pooling, aux heads
  self.pyramid   the decoder's own maps built so far, {stride: tensor} (the top and each combined
                 stride): a head over every level (FPN) reads it in final_upsample
  self.options   the decoder's own settings (its `Options` dataclass, see below)
  self.spec      the whole model spec (encoder, num_classes, strides, decays)

What a decoder declares at class level:
  Options              its settings, `setting(...)` fields: the command-line flags are generated
                       from them (arch.add_model_flags), so a new option is written here only
  run_name(options)    the decoder part of the run-folder name (FCN: FCN32/16/8/4)
  needs_static_shapes  True when a block reads static spatial sizes; inference then builds one
                       graph per image size at native resolution instead of one dynamic graph
  default_output_stride  encoder dilation when the spec leaves output_stride unset (DeepLab: 16)
  default_batch_norm_decay  decoder batch-norm decay without --batch_norm_decay (0.997; ENet: 0.9, as its encoder)
  encoders             the encoders it works with (None: every registered one); an encoder-decoder
                       net names its own (ENet: enet); ModelSpec rejects other pairs, naming the valid ones
  encoder_args         what it asks of the encoder's build: {"pool_indices": True} for the unpooling
                       decoders (Features.pool_indices), VGG's {"fc_layers": False} for SegNet
  pad_multiple         what the input is padded to a multiple of (32: every tap aligned; SegFormer: 1, it
                       resizes each tap itself, and padding would change a transformer's every output)
  published            {encoder: (million parameters, source)}: the paper's size of that pairing,
                       printed next to ours by the model summary

Helpers every decoder shares: `classifier` (the one 1x1 linear conv to num_classes),
`spatial_size`, `resize` / `resize_to` / `upsample_by` (bilinear, or the
bilinear-initialised transposed conv of `--trainable_upsampling`).
"""
import abc
import dataclasses

import numpy as np

import nets
from nets import dropout as stateless
from utils.compat import slim, tf
from utils.flags import setting

PAD_MULTIPLE = 32
DECODER_SCOPE = "decoder"
REGISTERED = {}   # name -> decoder class, filled by @register as decoders/ modules are imported


DEFAULT_BATCH_NORM_DECAY = 0.997  # the slim nets' own default, used by the decoder's batch norms too

class UnknownDecoderError(ValueError):
    pass


class DecoderOptionError(ValueError):
    pass


class IncompatibleEncoderError(DecoderOptionError):
    """The decoder cannot work over this encoder (or at this output stride)."""


def register(name):
    """Class decorator: makes a decoder selectable as `--extended_arch <name>`."""
    def wrap(cls):
        cls.name = name
        REGISTERED[name] = cls
        return cls
    return wrap


@dataclasses.dataclass(frozen=True)
class Options:
    """A decoder's own settings: none.  Subclass it (frozen dataclass) with `setting(...)` fields."""


@dataclasses.dataclass(frozen=True)
class UpsamplingOptions(Options):
    trainable_upsampling: bool = setting(False, "learnable x2 upsampling, a transposed conv initialised to "
                                                "bilinear interpolation")


def bilinear_kernel(factor, channels):
    """Transposed-conv kernel [k, k, channels, channels] that performs bilinear upsampling by `factor`.

    The classic FCN initialisation (k = 2*factor - factor % 2), one filter per
    channel on the diagonal, so training starts from plain interpolation.
    """
    size = 2 * factor - factor % 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    grid = np.ogrid[:size, :size]
    filt = (1 - abs(grid[0] - center) / factor) * (1 - abs(grid[1] - center) / factor)
    kernel = np.zeros((size, size, channels, channels), dtype=np.float32)
    for c in range(channels):
        kernel[:, :, c, c] = filt
    return kernel


def spatial_size(tensor):
    """[H, W] of an NHWC tensor: Python ints when static, else a tensor."""
    static = tensor.shape[1:3].as_list()
    return static if None not in static else tf.shape(tensor)[1:3]


def same_static_size(tensor, size):
    """True when `tensor` is statically known to be `size` ([H, W] ints) already."""
    return not tf.is_tensor(size) and tensor.shape[1:3].as_list() == list(size)


class BaseFcnArch(abc.ABC):
    """Abstract decoder over a registered feature extractor.

    `BaseFcnArch(spec, is_training)`, then `build(images)` once, inside the graph
    you want.  spec: an `arch.ModelSpec` whose `decoder_options` are this
    class's `Options`.  images: float32 [N, H, W, 3], already normalised for the
    encoder (`nets.get(encoder).preprocess`); any H, W.  Returns logits [N, H, W, C].
    """
    name = None
    Options = Options
    needs_static_shapes = False
    default_output_stride = None
    default_batch_norm_decay = DEFAULT_BATCH_NORM_DECAY  # without --batch_norm_decay: slim's ResNet default
    encoders = None
    encoder_args = {}
    published = {}
    pad_multiple = PAD_MULTIPLE

    def __init__(self, spec, is_training=False, decoder_scope=DECODER_SCOPE):
        if not isinstance(spec.decoder_options, self.Options):
            raise DecoderOptionError("%s needs %s.Options, got %r" % (self.name, self.name, spec.decoder_options))
        self.spec = spec
        self.options = spec.decoder_options
        self.encoder = nets.get(spec.encoder)
        self.num_classes = int(spec.num_classes)
        self.is_training = is_training
        default = self.default_output_stride if self.default_output_stride in self.encoder.output_strides else None
        self.output_stride = spec.output_stride or default  # an encoder that cannot dilate (MiT) keeps 32
        self.encoder_stride = spec.encoder_stride
        self.decoder_scope = decoder_scope
        self.features = None
        self.pyramid = {}
        self.aux_logits = []   # extra heads (e.g. PSPNet's) that training adds to the loss

    # ------------------------------------------------------------ declarations
    @classmethod
    def make_options(cls, values=None):
        """This decoder's Options from {name: value}; a name it does not declare is a DecoderOptionError."""
        values = dict(values or {})
        known = [field.name for field in dataclasses.fields(cls.Options)]
        foreign = sorted(set(values) - set(known))
        if foreign:
            raise DecoderOptionError("%s %s not an option of %s (its options: %s)" % (
                ", ".join("--" + name for name in foreign), "is" if len(foreign) == 1 else "are", cls.name,
                ", ".join("--" + name for name in known) or "none"))
        return cls.Options(**values)

    @classmethod
    def compatible_encoders(cls):
        """Names of the registered encoders this decoder works with."""
        return tuple(name for name in nets.NAMES
                     if (cls.encoders is None or name in cls.encoders) and nets.get(name).takes(cls.encoder_args))

    @classmethod
    def check_spec(cls, spec):
        """Raise IncompatibleEncoderError when this decoder cannot build `spec` (ModelSpec calls it)."""
        valid = cls.compatible_encoders()
        if spec.encoder not in valid:
            raise IncompatibleEncoderError("--extended_arch %s does not work over --basenet %s; its encoders: %s" % (
                cls.name, spec.encoder, ", ".join(valid)))
        strides = nets.get(spec.encoder).output_strides
        if spec.output_stride is not None and spec.output_stride not in strides:
            raise IncompatibleEncoderError("--basenet %s runs at --output_stride %s only (it does not dilate), not %s"
                                           % (spec.encoder, " / ".join(map(str, strides)), spec.output_stride))

    @classmethod
    def run_name(cls, options):
        """The decoder part of the run-folder name (seg-mentor's NETNAME = <encoder>_<this>)."""
        return cls.name

    @property
    def aux_loss_weight(self):
        """Weight of the auxiliary heads' loss in training (0 without them)."""
        return float(getattr(self.options, "aux_loss_weight", 0.0) or 0.0)

    # ------------------------------------------------------------------ blocks
    def skip_strides(self):
        """Taps the decoder consumes, deepest first.  Default: all of them."""
        return (16, 8, 4)

    def active_skip_strides(self):
        """skip_strides() shallower than the tap used as top (all of them unless --encoder_stride < 32)."""
        return tuple(stride for stride in self.skip_strides() if stride < self.encoder_stride)

    def decode_top(self, top):
        """Decode the top feature map: the stride-32 tap, or the --encoder_stride one
        (segmentation_models' encoder_depth: later encoder blocks are then never computed)."""
        return top

    def upsample(self, net, skip, stride):
        """Bring `net` to the spatial size of `skip` (normally x2)."""
        return self.resize_to(net, skip)

    @abc.abstractmethod
    def combine(self, net, skip, stride):
        """Merge the upsampled decoder state with the encoder tap at `stride`."""

    def final_upsample(self, net, size):
        """Logits at the (padded) input size `size` = [H, W]."""
        return self.resize(net, size)

    def auxiliary_logits(self, features, size):
        """Extra full-size logits that training adds to the loss (weight `aux_loss_weight`).  Default: none."""
        return []

    def building_for_training(self):
        """False only for a graph that can never train (is_training is Python False): skip training-only heads."""
        return self.is_training is not False

    def decoder_arg_scope(self):
        """arg_scope for decoder layers: L2 decay, fused batch norm following `is_training`."""
        decay = self.default_batch_norm_decay if self.spec.batch_norm_decay is None else self.spec.batch_norm_decay
        batch_norm_params = {"is_training": self.is_training, "decay": decay, "epsilon": 1e-5,
                             "scale": True, "fused": True}
        weight_decay = self.spec.weight_decay
        with slim.arg_scope([slim.conv2d, slim.conv2d_transpose, slim.separable_conv2d],
                            weights_regularizer=slim.l2_regularizer(weight_decay) if weight_decay else None,
                            weights_initializer=slim.variance_scaling_initializer(),
                            activation_fn=tf.nn.relu, normalizer_fn=slim.batch_norm,
                            normalizer_params=batch_norm_params):
            with slim.arg_scope([slim.batch_norm], **batch_norm_params) as scope:
                return scope

    # ----------------------------------------------------------------- helpers
    def classifier(self, net, scope="logits", kernel_size=1, weights_initializer=None):
        """The linear classifier to num_classes (no batch norm, no ReLU, zero biases).

        weights_initializer: None keeps the arg scope's variance scaling.
        """
        init = {} if weights_initializer is None else {"weights_initializer": weights_initializer}
        return slim.conv2d(net, self.num_classes, kernel_size, activation_fn=None, normalizer_fn=None,
                           biases_initializer=tf.zeros_initializer(), scope=scope, **init)

    @staticmethod
    def spatial_size(tensor):
        return spatial_size(tensor)

    def dropout(self, net, keep_prob, whole_channels=False, scope="dropout"):
        """Dropout while training, identity otherwise; whole_channels: of whole feature maps (PyTorch's Dropout2d).
        Stateless (nets/dropout.py): a resumed run draws the masks the uninterrupted run would have drawn."""
        return stateless.dropout(net, keep_prob, self.is_training, whole_channels, scope)

    def resize(self, net, size):
        """Fixed bilinear resize to [H, W] (half-pixel centres: stride-s feature i sits at pixel s*i + (s-1)/2);
        nothing to do when `net` is statically that size already."""
        if same_static_size(net, size):
            return net
        return tf.image.resize_bilinear(net, size, half_pixel_centers=True)

    def resize_to(self, net, like):
        """Resize `net` to the spatial size of tensor `like` (bilinear, or learnable when asked)."""
        in_hw, out_hw = net.shape[1:3].as_list(), like.shape[1:3].as_list()
        if None not in in_hw + out_hw and in_hw != out_hw:
            factor = out_hw[0] // in_hw[0]
            if self.trainable_upsampling and [factor * d for d in in_hw] == out_hw:
                return self.learnable_upsample(net, factor)
        return self.resize(net, spatial_size(like))

    def upsample_by(self, net, factor):
        """`net` x`factor` (bilinear, or the learnable transposed conv with --trainable_upsampling)."""
        if self.trainable_upsampling:
            return self.learnable_upsample(net, factor)
        size = spatial_size(net)
        return self.resize(net, [factor * d for d in size] if not tf.is_tensor(size) else size * factor)

    @property
    def trainable_upsampling(self):
        return bool(getattr(self.options, "trainable_upsampling", False))

    def learnable_upsample(self, net, factor, scope=None):
        """Transposed conv x`factor`, initialised to bilinear interpolation (FCN)."""
        channels = int(net.shape[-1])
        kernel = bilinear_kernel(factor, channels)
        return slim.conv2d_transpose(net, channels, kernel.shape[:2], stride=factor, padding="SAME",
                                     activation_fn=None, normalizer_fn=None, biases_initializer=None,
                                     weights_initializer=tf.constant_initializer(kernel),
                                     scope=scope or "upsample_x%d" % factor)

    # ------------------------------------------------------------------- build
    def build(self, images, features=None):
        """Logits for `images`.  `features`: another model's encoder output for these same
        images, to hang a second decoder on one encoder (give it its own decoder_scope)."""
        padded, size = pad_to_multiple(images, self.pad_multiple)
        self.features = features or self.encoder.build(
            padded, self.is_training, weight_decay=self.spec.weight_decay, output_stride=self.output_stride,
            preprocess=False, batch_norm_decay=self.spec.batch_norm_decay,
            **dict(self.encoder_args, **self.spec.encoder_net_args))
        self.pyramid = {}
        with tf.variable_scope(self.decoder_scope), slim.arg_scope(self.decoder_arg_scope()):
            net = self.decode_top(self.features.taps[self.encoder_stride])
            self.pyramid[self.encoder_stride] = net
            for stride in self.active_skip_strides():
                skip = self.features.taps[stride]
                with tf.variable_scope("up%d" % stride):
                    net = self.upsample(net, skip, stride)
                    net = self.combine(net, skip, stride)
                self.pyramid[stride] = net
            with tf.variable_scope("final"):
                logits = self.final_upsample(net, spatial_size(padded))
            with tf.variable_scope("aux"):
                aux = self.auxiliary_logits(self.features, spatial_size(padded))
        self.aux_logits = [crop(a, size) for a in aux]
        self.logits = crop(logits, size)
        return self.logits

    # --------------------------------------------------------------- variables
    def encoder_variables(self):
        """Pretrained encoder variables (restored from the ImageNet slim checkpoint)."""
        return tf.global_variables(self.encoder.scope + "/")

    def decoder_variables(self):
        """New variables created by the decoder (random / bilinear init)."""
        return tf.global_variables(self.decoder_scope + "/")


def crop(tensor, size):
    """Top-left size[0] x size[1] of `tensor`: undoes pad_to_multiple (no op when nothing was padded)."""
    if tensor.shape[1:3].as_list() == list(size):
        return tensor
    return tensor[:, :size[0], :size[1], :]


def pad_to_multiple(images, multiple):
    """Zero-pad bottom/right to a multiple (0 = mean colour after normalisation); returns (padded, [H, W])."""
    static = images.shape[1:3].as_list()
    if multiple == 1:
        return images, static if None not in static else [tf.shape(images)[1], tf.shape(images)[2]]
    if None not in static:
        pad_h, pad_w = (-static[0]) % multiple, (-static[1]) % multiple
        if pad_h == pad_w == 0:
            return images, static
        return tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]), static
    shape = tf.shape(images)
    pad_h, pad_w = (-shape[1]) % multiple, (-shape[2]) % multiple
    return tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]), [shape[1], shape[2]]

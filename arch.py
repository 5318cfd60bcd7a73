"""Meta-architecture: any registered encoder + a decoder made of a few overridable blocks.

seg-mentor's FCNgen drawing, as code.  `BaseFcnArch.build` runs the same
skeleton for every decoder; a decoder is a subclass that overrides blocks:

    images (preprocessed, any size)
      -> pad to a multiple of 32 (undone at the end, callers never pad)
      -> feature extractor, base_only            taps {4, 8, 16, 32: top}
      -> net = decode_top(top)                   "decode at /32"
      -> for stride in skip_strides() (deepest first, e.g. 16, 8, 4):
             net = upsample(net, skip, stride)   to the skip's size (x2, or x1 when dilated)
             net = combine(net, skip, stride)    e.g. score the skip and add
      -> logits = final_upsample(net, size)      to the padded input size
      -> aux = auxiliary_logits(features)        extra heads for training losses (PSPNet)
      -> crop to the input size

Every block may read `self.features` (all taps, `true_stride()` of each), so
decoders that look at several taps at once (ASPP's parallel atrous branches
scaled to the true output stride, PSP's pyramid pooling, auxiliary heads)
fit the same skeleton.

`FcnArch` (decoders/fcn.py) is the baseline; `--extended_arch` picks another
subclass from decoders/ (one file each, registered with `@register`).  Run
`python arch.py --help` for the model summary (parameters, GMACs) and
`python arch.py --table` for the comparison with seg-mentor's published table.
"""
import abc
import importlib
import pkgutil

import numpy as np

import nets

PAD_MULTIPLE = 32
DECODER_SCOPE = "decoder"

_DECODERS = {}


def register(name):
    """Class decorator: makes a decoder selectable as `--extended_arch <name>`."""
    def wrap(cls):
        cls.name = name
        _DECODERS[name] = cls
        return cls
    return wrap


def _load_decoders():
    import decoders
    for module in pkgutil.iter_modules(decoders.__path__):
        importlib.import_module("decoders." + module.name)


def decoder_names():
    """Registered decoders, the seg-mentor originals (FCN, LinkNet) first."""
    _load_decoders()
    return tuple(sorted(_DECODERS, key=lambda name: (name != "FCN", name != "LinkNet", name)))


class UnknownDecoderError(ValueError):
    pass


def get_arch_class(name):
    """Decoder class for `--extended_arch`; '' or None means FCN.  Case-insensitive."""
    _load_decoders()
    wanted = (name or "FCN").lower()
    for registered, cls in _DECODERS.items():
        if registered.lower() == wanted:
            return cls
    raise UnknownDecoderError("unknown --extended_arch %r; valid names: %s" % (name, ", ".join(decoder_names())))


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


class BaseFcnArch(abc.ABC):
    """Abstract decoder over a registered feature extractor.

    Construct, then call `build(images)` once (inside the graph you want).
    `images`: float32 [N, H, W, 3], already normalised for the feature extractor
    (`nets.get(basenet).preprocess`); any H, W.  Returns logits [N, H, W, C].
    """
    name = None

    def __init__(self, basenet, num_classes, is_training=False, fcn16=True, fcn8=False, fcn4=False,
                 trainable_upsampling=False, zero_init_skips=False, output_stride=None,
                 weight_decay=0.0, aux_loss_weight=0.0, encoder_stride=32, batch_norm_decay=None,
                 decoder_scope=DECODER_SCOPE, **unused_flags):
        self.fe = nets.get(basenet)
        self.num_classes = int(num_classes)
        self.is_training = is_training
        self.fcn16, self.fcn8, self.fcn4 = bool(fcn16), bool(fcn8), bool(fcn4)
        self.trainable_upsampling = bool(trainable_upsampling)
        self.zero_init_skips = bool(zero_init_skips)
        self.output_stride = output_stride
        self.weight_decay = float(weight_decay)
        self.aux_loss_weight = float(aux_loss_weight or 0.0)
        if encoder_stride not in (None, 4, 8, 16, 32):
            raise ValueError("encoder_stride must be 4, 8, 16 or 32, got %r" % (encoder_stride,))
        self.encoder_stride = int(encoder_stride or 32)
        self.batch_norm_decay = batch_norm_decay
        self.decoder_scope = decoder_scope
        self.features = None
        self.aux_logits = []   # extra heads (e.g. PSPNet's) that training adds to the loss

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
        """Extra full-size logits that training adds to the loss (weight --aux_loss_weight).  Default: none."""
        return []

    def building_for_training(self):
        """False only for a graph that can never train (is_training is Python False): skip training-only heads."""
        return self.is_training is not False

    def decoder_arg_scope(self):
        """arg_scope for decoder layers: L2 decay, fused batch norm following `is_training`."""
        from utils.tf1 import slim, tf
        decay = 0.997 if self.batch_norm_decay is None else self.batch_norm_decay
        batch_norm_params = {"is_training": self.is_training, "decay": decay, "epsilon": 1e-5,
                             "scale": True, "fused": True}
        with slim.arg_scope([slim.conv2d, slim.conv2d_transpose, slim.separable_conv2d],
                            weights_regularizer=slim.l2_regularizer(self.weight_decay) if self.weight_decay else None,
                            weights_initializer=slim.variance_scaling_initializer(),
                            activation_fn=tf.nn.relu, normalizer_fn=slim.batch_norm,
                            normalizer_params=batch_norm_params):
            with slim.arg_scope([slim.batch_norm], **batch_norm_params) as scope:
                return scope

    # ----------------------------------------------------------------- helpers
    def resize(self, net, size):
        """Fixed bilinear resize (half-pixel centres: stride-s feature i sits at pixel s*i + (s-1)/2)."""
        from utils.tf1 import tf
        return tf.image.resize_bilinear(net, size, half_pixel_centers=True)

    def resize_to(self, net, like):
        """Resize `net` to the spatial size of tensor `like` (bilinear, or learnable when asked)."""
        from utils.tf1 import tf
        in_hw, out_hw = net.shape[1:3].as_list(), like.shape[1:3].as_list()
        if None not in in_hw + out_hw:
            if in_hw == out_hw:
                return net
            factor = out_hw[0] // in_hw[0]
            if self.trainable_upsampling and [factor * d for d in in_hw] == out_hw:
                return self.learnable_upsample(net, factor)
            return self.resize(net, out_hw)
        return self.resize(net, tf.shape(like)[1:3])

    def learnable_upsample(self, net, factor, scope=None):
        """Transposed conv x`factor`, initialised to bilinear interpolation (FCN)."""
        from utils.tf1 import slim, tf
        channels = net.shape[-1]
        kernel = bilinear_kernel(factor, int(channels))
        return slim.conv2d_transpose(net, int(channels), kernel.shape[:2], stride=factor, padding="SAME",
                                     activation_fn=None, normalizer_fn=None, biases_initializer=None,
                                     weights_initializer=tf.constant_initializer(kernel),
                                     scope=scope or "upsample_x%d" % factor)

    # ------------------------------------------------------------------- build
    def build(self, images, features=None):
        """Logits for `images`.  `features`: another model's encoder output for these same
        images, to hang a second decoder on one encoder (give it its own decoder_scope)."""
        from utils.tf1 import slim, tf
        padded, size = _pad_to_multiple(images, PAD_MULTIPLE)
        self.features = features or self.fe.build(
            padded, self.is_training, weight_decay=self.weight_decay, output_stride=self.output_stride,
            preprocess=False, batch_norm_decay=self.batch_norm_decay)
        with tf.variable_scope(self.decoder_scope):
            with slim.arg_scope(self.decoder_arg_scope()):
                net = self.decode_top(self.features.taps[self.encoder_stride])
                for stride in self.active_skip_strides():
                    skip = self.features.taps[stride]
                    with tf.variable_scope("up%d" % stride):
                        net = self.upsample(net, skip, stride)
                        net = self.combine(net, skip, stride)
                with tf.variable_scope("final"):
                    logits = self.final_upsample(net, _spatial_size(padded))
                with tf.variable_scope("aux"):
                    aux = self.auxiliary_logits(self.features, _spatial_size(padded))
        self.aux_logits = [_crop(a, size) for a in aux]
        self.logits = _crop(logits, size)
        return self.logits

    # --------------------------------------------------------------- variables
    def fe_variables(self):
        """Pretrained feature-extractor variables (restored from the slim checkpoint)."""
        from utils.tf1 import tf
        return tf.global_variables(self.fe.scope + "/")

    def decoder_variables(self):
        """New variables created by the decoder (random / bilinear init)."""
        from utils.tf1 import tf
        return tf.global_variables(self.decoder_scope + "/")


def _spatial_size(tensor):
    from utils.tf1 import tf
    static = tensor.shape[1:3].as_list()
    return static if None not in static else tf.shape(tensor)[1:3]


def _crop(tensor, size):
    """Top-left size[0] x size[1] of `tensor`: undoes _pad_to_multiple (no op when nothing was padded)."""
    if tensor.shape[1:3].as_list() == list(size):
        return tensor
    return tensor[:, :size[0], :size[1], :]


def _pad_to_multiple(images, multiple):
    """Zero-pad bottom/right to a multiple (0 = mean colour after normalisation); returns (padded, [H, W])."""
    from utils.tf1 import tf
    static = images.shape[1:3].as_list()
    if None not in static:
        pad_h, pad_w = (-static[0]) % multiple, (-static[1]) % multiple
        if pad_h == pad_w == 0:
            return images, static
        return tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]), static
    shape = tf.shape(images)
    pad_h, pad_w = (-shape[1]) % multiple, (-shape[2]) % multiple
    return tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]), [shape[1], shape[2]]


def build_arch(basenet, extended_arch, num_classes, is_training=False, **flags):
    """Construct the decoder chosen by `--extended_arch` (default FCN)."""
    return get_arch_class(extended_arch)(basenet, num_classes, is_training=is_training, **flags)


def main(argv=None):
    from utils import model_summary
    return model_summary.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""SegFormer's all-MLP head (Xie et al. 2021), as Hugging Face's SegformerDecodeHead computes it, over any encoder.

Each tap (strides 4, 8, 16, 32; up to --encoder_stride) is projected to `--segformer_channels` by a linear
layer (a biased 1x1 conv), resized bilinearly (half-pixel centres: torch's align_corners=False) to the stride-4
tap's size, the four concatenated deepest first (c4, c3, c2, c1, HF's order), fused by a 1x1 conv without bias +
batch norm + ReLU, dropped out (0.1) and classified by a 1x1 conv: logits at stride 4 (`stride4_logits`, what HF's
model returns), then upsampled bilinearly to the input as HF's loss and post-processing do.

The input is not padded (`pad_multiple = 1`): every tap is resized here, and zero padding would enter each
attention of a transformer encoder, so that MiT + SegFormer equals HF's model at any input size.
Variable names follow HF's keys (nets/segformer_weights.py converts them): decoder/linear_c/<i>/proj,
decoder/linear_fuse, decoder/batch_norm, decoder/classifier.
"""
import dataclasses

from decoders.base import BaseFcnArch, Options, register
from utils.compat import slim, tf
from utils.flags import setting

# decoder_hidden_size of nvidia/segformer-b<n>-finetuned-*: 256 for B0 / B1, 768 for B2 and larger.
PAPER_CHANNELS = {"mit_b0": 256, "mit_b1": 256, "mit_b2": 768}
DEFAULT_CHANNELS = 256
TAPS = (4, 8, 16, 32)
PAPER = "Xie et al. 2021, Table 2 (ADE20K, 150 classes)"


@register("SegFormer")
class SegFormer(BaseFcnArch):
    pad_multiple = 1
    published = {"mit_b0": (3.8, PAPER), "mit_b1": (13.7, PAPER), "mit_b2": (27.5, PAPER)}

    @dataclasses.dataclass(frozen=True)
    class Options(Options):
        segformer_channels: int = setting(0, "width of SegFormer's all-MLP head (0: the paper's for the encoder, "
                                             "768 over mit_b2, else 256)")

    @property
    def channels(self):
        return self.options.segformer_channels or PAPER_CHANNELS.get(self.spec.encoder, DEFAULT_CHANNELS)

    def skip_strides(self):
        return ()

    def decode_top(self, top):
        """The whole head: every tap is read from self.features, so the skeleton's loop has nothing to do."""
        taps = [self.features.taps[stride] for stride in TAPS if stride <= self.encoder_stride]
        size = self.spatial_size(taps[0])
        projected = []
        for i, tap in enumerate(taps):
            net = slim.conv2d(tap, self.channels, 1, activation_fn=None, normalizer_fn=None,
                              biases_initializer=tf.zeros_initializer(), scope="linear_c/%d/proj" % i)
            projected.append(self.resize(net, size))
        net = slim.conv2d(tf.concat(projected[::-1], axis=-1), self.channels, 1, activation_fn=None,
                          normalizer_fn=None, biases_initializer=None, scope="linear_fuse")
        net = tf.nn.relu(slim.batch_norm(net, scope="batch_norm"))
        net = self.dropout(net, keep_prob=0.9)
        self.stride4_logits = self.classifier(net, scope="classifier")
        return self.stride4_logits

    def combine(self, net, skip, stride):  # pragma: no cover - no skips: decode_top reads every tap
        return net

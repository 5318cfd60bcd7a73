"""LR-ASPP (Howard et al., "Searching for MobileNetV3", 2019, sec. 6.4): the light MobileNetV3 segmentation head.

High-level branch on the top features, which the paper takes at stride 16 (the encoder's last stage
dilated, hence `default_output_stride = 16`): a 1x1 conv + BN + ReLU (`--lraspp_channels`, the paper's
128) times a gate from the whole image: global average pool -> 1x1 conv -> sigmoid (the paper pools with
a large strided kernel; torchvision and we pool globally, which also fits any input size).  Its 1x1 class
scores are upsampled to the stride-8 tap and added to a 1x1 class projection of those low-level features;
bilinear upsampling to the input.  Scoring before the x2 upsampling (torchvision scores after) is the same
function, both being linear with weights summing to one, at a quarter of the classifier's MACs.
Works over any encoder: it reads only the top and the stride-8 taps.
"""
import dataclasses

from decoders.base import BaseFcnArch, Options, register
from utils.compat import slim, tf
from utils.flags import setting


@register("LRASPP")
class LRASPP(BaseFcnArch):
    default_output_stride = 16

    @dataclasses.dataclass(frozen=True)
    class Options(Options):
        lraspp_channels: int = setting(128, "channels of LR-ASPP's gated 1x1 conv on the top features "
                                            "(the MobileNetV3 paper's 128)")

    def skip_strides(self):
        return (8,)

    def decode_top(self, top):
        """Class scores of the gated high-level features (at the top's stride)."""
        channels = self.options.lraspp_channels
        with tf.variable_scope("lraspp"):
            features = slim.conv2d(top, channels, 1, scope="conv")
            pooled = tf.reduce_mean(top, [1, 2], keepdims=True, name="image_pooling")
            gate = slim.conv2d(pooled, channels, 1, normalizer_fn=None, activation_fn=tf.sigmoid, scope="gate")
            return self.classifier(features * gate, scope="logits")

    def combine(self, net, skip, stride):
        return net + self.classifier(skip, scope="low_level_logits")

"""DeepLab v3 (Chen et al., 2017) and v3+ (Chen et al., 2018) heads over a dilated encoder.

ASPP on the top features: a 1x1 branch, three 3x3 atrous branches and an
image-pooling branch, concatenated and projected to 256 channels by a 1x1 conv.
The atrous rates (6, 12, 18) are defined for output stride 16 and scaled to the
encoder's true output stride (12, 24, 36 at 8; 3, 6, 9 at 32).  DeepLab wants a
dilated encoder, so without `--output_stride` it uses 16.

v3 classifies the ASPP output and upsamples bilinearly.  v3+ adds the decoder:
ASPP output upsampled to stride 4, concatenated with the stride-4 features
reduced to 48 channels, two 3x3 convs (256), classifier, bilinear upsampling;
as in the v3+ paper its 3x3 convs (ASPP and decoder) are depthwise separable,
which is what keeps a stride-4 decoder affordable (2.4 instead of 21 GMACs at
512x512).
"""
from decoders.base import BaseFcnArch, register
from utils.compat import slim, tf

ASPP_DEPTH = 256
BASE_RATES = (6, 12, 18)  # at output stride 16


class _DeepLabBase(BaseFcnArch):
    separable = False  # depthwise-separable 3x3 convs (v3+)
    default_output_stride = 16
    needs_static_shapes = True  # the atrous rates follow the true output stride, read off static shapes

    def atrous_rates(self):
        stride = self.features.true_stride(32)
        return tuple(max(1, rate * 16 // stride) for rate in BASE_RATES)

    def decode_top(self, top):
        return self.aspp(top)

    def aspp(self, net):
        """Atrous spatial pyramid pooling with image-level features."""
        with tf.variable_scope("aspp"):
            branches = [slim.conv2d(net, ASPP_DEPTH, 1, scope="conv_1x1")]
            for rate in self.atrous_rates():
                branches.append(self.conv3x3(net, ASPP_DEPTH, rate=rate, scope="conv_3x3_rate%d" % rate))
            pooled = tf.reduce_mean(net, axis=[1, 2], keepdims=True, name="image_pooling")
            pooled = slim.conv2d(pooled, ASPP_DEPTH, 1, scope="image_pooling_conv")
            branches.append(self.resize(pooled, self.spatial_size(net)))  # 1x1 -> HxW: the same value everywhere
            net = slim.conv2d(tf.concat(branches, axis=-1), ASPP_DEPTH, 1, scope="projection")
            return self.dropout(net, keep_prob=0.9)

    def conv3x3(self, net, depth, rate=1, scope=None):
        if self.separable:
            return slim.separable_conv2d(net, depth, 3, depth_multiplier=1, rate=rate, scope=scope)
        return slim.conv2d(net, depth, 3, rate=rate, scope=scope)

    def final_upsample(self, net, size):
        return self.resize(self.classifier(net), size)


@register("DeepLabV3")
class DeepLabV3(_DeepLabBase):

    def skip_strides(self):
        return ()

    def combine(self, net, skip, stride):  # pragma: no cover - v3 has no skips
        return net


@register("DeepLabV3Plus")
class DeepLabV3Plus(_DeepLabBase):
    separable = True

    def skip_strides(self):
        return (4,)

    def combine(self, net, skip, stride):
        low_level = slim.conv2d(skip, 48, 1, scope="low_level")
        net = tf.concat([net, low_level], axis=-1)
        net = self.conv3x3(net, ASPP_DEPTH, scope="conv1")
        return self.conv3x3(net, ASPP_DEPTH, scope="conv2")

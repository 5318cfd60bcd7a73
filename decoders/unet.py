"""U-Net (Ronneberger et al., 2015) over a pretrained encoder.

Per stage: upsample x2 to the tap's size, concatenate the encoder tap, two
3x3 conv + BN + ReLU.  Decoder widths 256/128/64 at strides 16/8/4, then two
more stages without a skip (32 at stride 2, 16 at stride 1) and a 1x1
classifier at full resolution, the layout of segmentation_models' U-Net so the
two can be compared like for like.  `--trainable_upsampling` swaps the
bilinear x2 for a bilinear-initialised transposed conv.
"""
import dataclasses

from decoders.base import BaseFcnArch, UpsamplingOptions, register
from utils.compat import slim, tf

WIDTHS = {16: 256, 8: 128, 4: 64}
HEAD_WIDTHS = (32, 16)


@register("UNet")
class UNet(BaseFcnArch):

    @dataclasses.dataclass(frozen=True)
    class Options(UpsamplingOptions):
        pass

    def skip_strides(self):
        return (16, 8, 4)

    def combine(self, net, skip, stride):
        return self.double_conv(tf.concat([net, skip], axis=-1), WIDTHS[stride])

    def final_upsample(self, net, size):
        for width in HEAD_WIDTHS:
            with tf.variable_scope("stage%d" % width):
                net = self.double_conv(self.upsample_by(net, 2), width)
        return self.resize(self.classifier(net), size)

    @staticmethod
    def double_conv(net, width):
        net = slim.conv2d(net, width, 3, scope="conv1")
        return slim.conv2d(net, width, 3, scope="conv2")

"""SegNet (Badrinarayanan et al., 2017): VGG-16's 13 convolutions and their mirror image, upsampled by unpooling.

The encoder is VGG-16 without fc6/fc7 whose five max pools record where they
took each maximum (`encoder_args`: Features.pool_indices); its variables keep
their slim names, so the ImageNet checkpoint restores into it.  The decoder
walks back up: at each stride, max unpooling with the indices of the pool that
left that stride (values back at the argmax positions, zeros elsewhere, no
weights to learn), then the 3x3 conv + batch norm + ReLU layers that mirror
the encoder's block there, widths 512-512-512 | 512-512-256 | 256-256-128 |
128-64 | 64; the last layer is a 3x3 conv to the classes, as in the paper.
The paper's encoder has batch norm too; the slim checkpoint has none, so
this one keeps VGG-16's biases instead.
"""
from decoders.base import BaseFcnArch, IncompatibleEncoderError, register
from nets.pooling import unpool
from utils.compat import slim

WIDTHS = {16: (512, 512, 512), 8: (512, 512, 256), 4: (256, 256, 128), 2: (128, 64), 1: (64,)}


@register("SegNet")
class SegNet(BaseFcnArch):
    encoders = ("vgg_16",)
    encoder_args = {"pool_indices": True, "fc_layers": False}
    published = {"vgg_16": (29.5, "Badrinarayanan et al. 2017, Table 6")}

    @classmethod
    def check_spec(cls, spec):
        super().check_spec(spec)
        if spec.output_stride not in (None, 32):
            raise IncompatibleEncoderError("SegNet unpools with the encoder's strided pools: leave --output_stride "
                                           "out (got %s)" % spec.output_stride)

    def skip_strides(self):
        return (16, 8, 4, 2, 1)

    def upsample(self, net, skip, stride):
        return unpool(net, self.features.pool_indices[stride])

    def combine(self, net, skip, stride):
        for i, width in enumerate(WIDTHS[stride]):
            net = slim.conv2d(net, width, 3, scope="conv%d" % (len(WIDTHS[stride]) - i))
        return net

    def final_upsample(self, net, size):
        return self.resize(self.classifier(net, kernel_size=3), size)

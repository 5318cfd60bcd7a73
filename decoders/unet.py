"""U-Net (Ronneberger et al., 2015) over a pretrained encoder.

Per stage: upsample x2 to the tap's size, concatenate the encoder tap, two
3x3 conv + BN + ReLU.  Decoder widths 256/128/64 at strides 16/8/4, then two
more stages without a skip (32 at stride 2, 16 at stride 1) and a 1x1
classifier at full resolution, the layout of segmentation_models' U-Net so the
two can be compared like for like.  `--trainable_upsampling` swaps the
bilinear x2 for a bilinear-initialised transposed conv.
"""
from arch import BaseFcnArch, register
from utils.tf1 import slim, tf

WIDTHS = {16: 256, 8: 128, 4: 64}
HEAD_WIDTHS = (32, 16)


@register("UNet")
class UNet(BaseFcnArch):

    def skip_strides(self):
        return (16, 8, 4)

    def combine(self, net, skip, stride):
        return self.double_conv(tf.concat([net, skip], axis=-1), WIDTHS[stride])

    def final_upsample(self, net, size):
        for width in HEAD_WIDTHS:
            with tf.variable_scope("stage%d" % width):
                net = self.double_conv(self.upsample_x2(net), width)
        logits = slim.conv2d(net, self.num_classes, 1, activation_fn=None, normalizer_fn=None,
                             biases_initializer=tf.zeros_initializer(), scope="logits")
        return self.resize(logits, size) if tf.is_tensor(size) or logits.shape[1:3].as_list() != list(size) \
            else logits

    def upsample_x2(self, net):
        if self.trainable_upsampling:
            return self.learnable_upsample(net, 2)
        shape = net.shape[1:3].as_list()
        size = [2 * d for d in shape] if None not in shape else tf.shape(net)[1:3] * 2
        return self.resize(net, size)

    @staticmethod
    def double_conv(net, width):
        net = slim.conv2d(net, width, 3, scope="conv1")
        return slim.conv2d(net, width, 3, scope="conv2")

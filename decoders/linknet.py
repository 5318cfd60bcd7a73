"""LinkNet (Chaurasia & Culurciello, 2017): decoder blocks summed with encoder laterals.

Per stage: 1x1 conv to in/4 channels, 3x3 transposed conv x2, 1x1 conv to the
lateral's channels, then add the encoder tap (the "link").  From stride 4 two
more decoder blocks (x2 each, to 64 and 32 channels) reach full resolution and a
1x1 conv classifies, as in segmentation_models' LinkNet (the paper's encoder
downsamples once more, so its head has one stride fewer to recover).  All
blocks use the decoder arg_scope (BN + ReLU).  LinkNet always links the 16, 8
and 4 taps and has no options of its own.
"""
from decoders.base import BaseFcnArch, register
from utils.compat import slim, tf


@register("LinkNet")
class LinkNet(BaseFcnArch):

    def skip_strides(self):
        return (16, 8, 4)

    def upsample(self, net, skip, stride):
        return self.decoder_block(net, int(skip.shape[-1]), upsample=self._needs_x2(net, skip))

    def combine(self, net, skip, stride):
        return net + skip

    def final_upsample(self, net, size):
        net = self.decoder_block(net, int(net.shape[-1]), upsample=True, scope="block_stride2")
        net = self.decoder_block(net, 32, upsample=True, scope="block_stride1")
        return self.resize(self.classifier(net), size)

    def decoder_block(self, net, out_channels, upsample=True, scope="block"):
        """1x1 reduce to in/4 -> 3x3 full conv (x2 when `upsample`) -> 1x1 expand to out_channels."""
        mid = max(int(net.shape[-1]) // 4, 1)
        with tf.variable_scope(scope):
            net = slim.conv2d(net, mid, 1, scope="reduce")
            if upsample:
                net = slim.conv2d_transpose(net, mid, 3, stride=2, scope="full_conv")
            else:  # dilated encoder (output_stride < 32): the lateral is already this size
                net = slim.conv2d(net, mid, 3, scope="conv")
            return slim.conv2d(net, out_channels, 1, scope="expand")

    @staticmethod
    def _needs_x2(net, skip):
        a, b = net.shape[1:3].as_list(), skip.shape[1:3].as_list()
        return None in a + b or a != b

"""RefineNet (Lin et al., 2017): multi-path refinement of the encoder taps, from stride 32 down to 4.

One RefineNet block per tap (RefineNet-4 on the top alone, then -3, -2, -1
each on a tap and the block before it):
  adaptation     a 3x3 conv brings the tap to the block's width, two residual conv units (RCU:
                 ReLU, 3x3 conv, ReLU, 3x3 conv, plus the input) on each input path
  fusion         (two inputs) a 3x3 conv on each to the block's width, the coarser upsampled
                 bilinearly to the finer, summed
  chained residual pooling  ReLU, then twice: 5x5 stride-1 max pool and 3x3 conv, each result
                 added to the sum (the CVPR paper's two pooling blocks)
  output         one more RCU
The stride-4 block's output passes two RCUs and a 1x1 classifier, upsampled
bilinearly to the input.  Widths: `--refinenet_features` (256) everywhere but
the stride-32 block, which has twice as many (the paper's 512 and 256).  As
in the paper, no batch norm inside the blocks; the RCUs' first conv has a bias.
"""
import dataclasses

from decoders.base import BaseFcnArch, register
from utils.compat import slim, tf
from utils.flags import setting

CRP_BLOCKS = 2
CRP_POOL = 5


@register("RefineNet")
class RefineNet(BaseFcnArch):

    @dataclasses.dataclass(frozen=True)
    class Options(BaseFcnArch.Options):
        refinenet_features: int = setting(256, "width of the RefineNet blocks at strides 4-16; the stride-32 "
                                               "block has twice as many (Lin et al.: 256 and 512)")

    def skip_strides(self):
        return (16, 8, 4)

    def width(self, stride):
        return self.options.refinenet_features * (2 if stride == 32 else 1)

    def decode_top(self, top):
        with tf.variable_scope("refine%d" % self.encoder_stride):
            return self.refine_block([self.adapt(top, self.width(self.encoder_stride))],
                                     self.width(self.encoder_stride))

    def upsample(self, net, skip, stride):
        return net  # the fusion convolves before upsampling

    def combine(self, net, skip, stride):
        width = self.width(stride)
        with tf.variable_scope("refine%d" % stride):
            return self.refine_block([self.adapt(skip, width, "adapt_skip"), self.rcus(net, 2, "adapt_coarse")],
                                     width)

    def final_upsample(self, net, size):
        net = self.rcus(net, 2, "output")
        return self.resize(self.classifier(net), size)

    # ------------------------------------------------------------- building blocks
    def adapt(self, tap, width, scope="adapt"):
        with tf.variable_scope(scope):
            return self.rcus(slim.conv2d(tap, width, 3, activation_fn=None, normalizer_fn=None,
                                         biases_initializer=None, scope="conv"), 2)

    def refine_block(self, paths, width):
        """Fusion (when two paths), chained residual pooling, output RCU."""
        if len(paths) == 1:
            net = paths[0]
        else:
            with tf.variable_scope("fusion"):
                finest = paths[0]
                fused = [self.plain_conv(path, width, "conv%d" % i) for i, path in enumerate(paths)]
                net = tf.add_n([self.resize(path, self.spatial_size(finest)) for path in fused])
        net = self.chained_residual_pooling(net, width)
        return self.rcus(net, 1, "output_rcu")

    def chained_residual_pooling(self, net, width):
        with tf.variable_scope("crp"):
            net = tf.nn.relu(net)
            path = net
            for i in range(1, CRP_BLOCKS + 1):
                path = tf.nn.max_pool2d(path, CRP_POOL, 1, "SAME")
                path = self.plain_conv(path, width, "conv%d" % i)
                net = net + path
            return net

    def rcus(self, net, count, scope="rcu"):
        """`count` residual conv units (ReLU, 3x3 conv with bias, ReLU, 3x3 conv, plus the input)."""
        with tf.variable_scope(scope):
            for i in range(1, count + 1):
                with tf.variable_scope("rcu%d" % i):
                    width = int(net.shape[-1])
                    residual = slim.conv2d(tf.nn.relu(net), width, 3, activation_fn=tf.nn.relu, normalizer_fn=None,
                                           biases_initializer=tf.zeros_initializer(), scope="conv1")
                    net = net + self.plain_conv(residual, width, "conv2")
            return net

    @staticmethod
    def plain_conv(net, width, scope):
        return slim.conv2d(net, width, 3, activation_fn=None, normalizer_fn=None, biases_initializer=None,
                           scope=scope)

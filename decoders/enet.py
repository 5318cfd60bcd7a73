"""ENet's decoder (Paszke et al., 2016): stages 4 and 5 and the final full convolution, over ENet's encoder.

    stage 4   upsampling bottleneck4_0 to 64 maps @ /4, bottleneck4_1, 4_2
    stage 5   upsampling bottleneck5_0 to 16 maps @ /2, bottleneck5_1
    final     2x2/2 transposed conv to the classes @ /1

An upsampling bottleneck: main branch 1x1 conv + batch norm to the output
depth, then max unpooling with the indices of the encoder's downsampling pool
at that stride (`encoder_args`: Features.pool_indices); extension 1x1
projection to depth/4, 3x3/2 transposed conv, 1x1 expansion, batch norm after
each; ReLU after the first two and after the sum.  The decoder is small and
has no dropout, as in the authors' Torch code (ReLU, not PReLU, there too).
"""
from decoders.base import BaseFcnArch, register
from nets.pooling import unpool
from utils.compat import slim, tf

STAGES = {4: (64, 2), 2: (16, 1)}  # stride -> (depth, regular bottlenecks after the upsampling one)


@register("ENet")
class ENet(BaseFcnArch):
    encoders = ("enet",)
    encoder_args = {"pool_indices": True}
    published = {"enet": (0.37, "Paszke et al. 2016, Table 3")}
    default_batch_norm_decay = 0.9  # as its encoder (Torch's batch-norm momentum 0.1)

    def skip_strides(self):
        return (4, 2)

    def upsample(self, net, skip, stride):
        depth = STAGES[stride][0]
        with tf.variable_scope("bottleneck_up"):
            main = slim.conv2d(net, depth, 1, activation_fn=None, scope="main")
            main = unpool(main, self.features.pool_indices[stride])
            ext = slim.conv2d(net, depth // 4, 1, scope="reduce")
            ext = slim.conv2d_transpose(ext, depth // 4, 3, stride=2, scope="full_conv")
            ext = self.resize_to(ext, main)
            ext = slim.conv2d(ext, depth, 1, activation_fn=None, scope="expand")
            return tf.nn.relu(main + ext)

    def combine(self, net, skip, stride):
        depth, repeats = STAGES[stride]
        for i in range(1, repeats + 1):
            with tf.variable_scope("bottleneck%d" % i):
                ext = slim.conv2d(net, depth // 4, 1, scope="reduce")
                ext = slim.conv2d(ext, depth // 4, 3, scope="conv")
                ext = slim.conv2d(ext, depth, 1, activation_fn=None, scope="expand")
                net = tf.nn.relu(net + ext)
        return net

    def final_upsample(self, net, size):
        logits = slim.conv2d_transpose(net, self.num_classes, 2, stride=2, activation_fn=None, normalizer_fn=None,
                                       biases_initializer=tf.zeros_initializer(), scope="full_conv")
        return self.resize(logits, size)

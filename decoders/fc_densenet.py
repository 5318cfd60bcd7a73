"""FC-DenseNet's up path (Jegou et al., 2017), over the FC-DenseNet down paths (nets/fc_densenet.py).

At each stride from 16 to 1: a transition up (3x3/2 transposed conv of the
previous dense block's *new* maps, as many maps as it has), concatenated with
the down path's stack at that stride (the skip), then a dense block with the
mirrored layer count (FC-DenseNet103: 12, 10, 7, 5, 4).  The last block's whole
stack is classified by a 1x1 conv at full resolution.  Trained from scratch,
like the down path.
"""
from decoders.base import BaseFcnArch, register
from nets import fc_densenet
from utils.compat import slim, tf


@register("FCDenseNet")
class FCDenseNet(BaseFcnArch):
    encoders = tuple(fc_densenet.CONFIGS)
    published = {"fc_densenet_56": (1.5, "Jegou et al. 2017, Table 2"),
                 "fc_densenet_67": (3.5, "Jegou et al. 2017, Table 2"),
                 "fc_densenet_103": (9.4, "Jegou et al. 2017, Table 2")}

    @property
    def config(self):
        return fc_densenet.CONFIGS[self.spec.encoder]

    def skip_strides(self):
        return (16, 8, 4, 2, 1)

    def upsample(self, net, skip, stride):
        """Transition up (x2; a 3x3 conv where the down path was dilated and the skip is this size already)."""
        depth = int(net.shape[-1])
        with tf.variable_scope("transition_up"):
            if net.shape[1:3].as_list() == skip.shape[1:3].as_list() and None not in skip.shape[1:3].as_list():
                return slim.conv2d(net, depth, 3, activation_fn=None, normalizer_fn=None, scope="conv")
            net = slim.conv2d_transpose(net, depth, 3, stride=2, activation_fn=None, normalizer_fn=None,
                                        biases_initializer=tf.zeros_initializer(), scope="full_conv")
            return self.resize_to(net, skip)

    def combine(self, net, skip, stride):
        """Dense block over [transition up, skip]: its new maps feed the next transition, the finest its stack."""
        layers = self.config.down[(1, 2, 4, 8, 16).index(stride)]
        stack, new = fc_densenet.dense_block(tf.concat([net, skip], axis=3), layers, self.config.growth,
                                             self.is_training, scope="denseblock")
        return stack if stride == min(self.active_skip_strides()) else new

    def final_upsample(self, net, size):
        return self.resize(self.classifier(net), size)

    def decoder_arg_scope(self):
        """The down path's layer conventions (pre-activation batch norm, linear convs with biases)."""
        decay = 0.9 if self.spec.batch_norm_decay is None else self.spec.batch_norm_decay
        return fc_densenet.fc_densenet_arg_scope(self.spec.weight_decay, batch_norm_decay=decay)

"""FC-DenseNet's down path (Jegou et al., 2017, "The One Hundred Layers Tiramisu"), trained from scratch.

    first_conv     3x3 conv, 48 maps, full resolution
    denseblockN    N = 1..5: layers of batch norm, ReLU, 3x3 conv (`growth` maps), dropout 0.2, each
                   concatenated to the block's stack; the stack is the skip at strides 1, 2, 4, 8, 16
    transition_downN  batch norm, ReLU, 1x1 conv (as many maps), dropout 0.2, 2x2 max pool
    bottleneck     one more dense block at stride 32; its *new* maps (not its input) are the top

    FC-DenseNet56:  4 layers per block, growth 12, bottleneck 4
    FC-DenseNet67:  5 layers per block, growth 16, bottleneck 5
    FC-DenseNet103: 4, 5, 7, 10, 12 layers, growth 16, bottleneck 15

Layer for layer the authors' Lasagne code (SimJeg/FC-DenseNet), biases on
every conv.  The up path is decoders/fc_densenet.py, whose dense blocks are
`dense_block` here.  `output_stride` (8, 16) turns the last transitions' pools
into stride-1 pools and dilates the 3x3 convs after them, like the other
encoders.  The down path alone with `num_classes` (not base_only) ends in a
1x1 `logits` conv on the top.
"""
import collections

from utils.compat import slim, tf
from nets import resnet_utils
from nets.dropout import dropout
from nets.resnet_utils import max_pool2d_dense

Config = collections.namedtuple("Config", "down bottleneck growth")
CONFIGS = {
    "fc_densenet_56": Config(down=(4, 4, 4, 4, 4), bottleneck=4, growth=12),
    "fc_densenet_67": Config(down=(5, 5, 5, 5, 5), bottleneck=5, growth=16),
    "fc_densenet_103": Config(down=(4, 5, 7, 10, 12), bottleneck=15, growth=16),
}
FIRST_CONV_DEPTH = 48
DROP_RATE = 0.2


def fc_densenet_arg_scope(weight_decay=1e-4, batch_norm_decay=0.9, batch_norm_epsilon=1e-4):
    """Pre-activation layers: batch norm with ReLU on its own, convs linear with biases (Lasagne's defaults:
    BN epsilon 1e-4, moving averages over ~10 batches)."""
    batch_norm_params = {"decay": batch_norm_decay, "epsilon": batch_norm_epsilon, "scale": True, "fused": True,
                         "updates_collections": resnet_utils.batch_norm_updates()}
    with slim.arg_scope([slim.conv2d, slim.conv2d_transpose],
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        weights_initializer=slim.variance_scaling_initializer(),
                        activation_fn=None, normalizer_fn=None, biases_initializer=tf.zeros_initializer()):
        with slim.arg_scope([slim.batch_norm], activation_fn=tf.nn.relu, **batch_norm_params) as scope:
            return scope


def bn_relu_conv(net, depth, kernel, is_training, rate=1, scope=None):
    """Batch norm -> ReLU -> conv (linear, bias) -> dropout: one layer of a dense block or a transition."""
    with tf.variable_scope(scope):
        net = slim.batch_norm(net, activation_fn=tf.nn.relu, is_training=is_training)
        net = slim.conv2d(net, depth, kernel, rate=rate, activation_fn=None, normalizer_fn=None,
                          biases_initializer=tf.zeros_initializer())
        return dropout(net, 1.0 - DROP_RATE, is_training)  # stateless: nets/dropout.py


def dense_block(net, layers, growth, is_training, rate=1, scope=None):
    """`layers` layers, each reading the whole stack so far; returns (the stack, the new maps only)."""
    new = []
    with tf.variable_scope(scope):
        for i in range(1, layers + 1):
            new.append(bn_relu_conv(net, growth, 3, is_training, rate=rate, scope="layer%d" % i))
            net = tf.concat([net, new[-1]], axis=3)
        return net, tf.concat(new, axis=3)


def fc_densenet(inputs, config, num_classes=None, is_training=True, base_only=False, output_stride=None,
                reuse=None, scope="fc_densenet"):
    """The down path and bottleneck of `config`; returns (the bottleneck's new maps, end_points)."""
    resnet_utils.check_output_stride(output_stride, scope)
    with tf.variable_scope(scope, "fc_densenet", [inputs], reuse=reuse) as sc:
        end_points = {}
        net = slim.conv2d(inputs, FIRST_CONV_DEPTH, 3, activation_fn=None, normalizer_fn=None,
                          biases_initializer=tf.zeros_initializer(), scope="first_conv")
        current_stride, rate = 1, 1
        for i, layers in enumerate(config.down, start=1):
            net, _ = dense_block(net, layers, config.growth, is_training, rate=rate, scope="denseblock%d" % i)
            end_points["%s/denseblock%d" % (sc.name, i)] = net
            net = bn_relu_conv(net, int(net.shape[-1]), 1, is_training, scope="transition_down%d" % i)
            if output_stride is not None and current_stride == output_stride:
                net = max_pool2d_dense(net, 2, 2, rate=rate, scope="transition_down%d/pool" % i)
                rate *= 2
            else:
                net = slim.max_pool2d(net, 2, stride=2, padding="SAME", scope="transition_down%d/pool" % i)
                current_stride *= 2
        _, net = dense_block(net, config.bottleneck, config.growth, is_training, rate=rate, scope="bottleneck")
        end_points["%s/bottleneck" % sc.name] = net
        if not base_only and num_classes:
            net = slim.conv2d(net, num_classes, 1, scope="logits")
            end_points["%s/logits" % sc.name] = net
        return net, end_points


def _variant(name):
    def net_fn(inputs, num_classes=None, is_training=True, base_only=False, output_stride=None, reuse=None,
               scope=name):
        return fc_densenet(inputs, CONFIGS[name], num_classes, is_training, base_only, output_stride, reuse, scope)
    net_fn.__name__ = name
    net_fn.__doc__ = "FC-DenseNet%s's down path (%s)." % (name.rsplit("_", 1)[1], CONFIGS[name])
    net_fn.default_image_size = 224
    return net_fn


fc_densenet_56 = _variant("fc_densenet_56")
fc_densenet_67 = _variant("fc_densenet_67")
fc_densenet_103 = _variant("fc_densenet_103")

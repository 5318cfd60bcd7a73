"""MobileNet v2 (depth multiplier 1.0), variable-compatible with the public slim checkpoint.

`Conv` (3x3/2) -> 17 inverted-residual blocks `expanded_conv[_i]`
(1x1 `expand` x6, ReLU6 | 3x3 `depthwise`, ReLU6 | linear 1x1 `project`,
residual when shape allows) -> `Conv_1` (1x1, 1280).  The first block has
expansion 1 and therefore no `expand` layer.  base_only returns Conv_1.

End points follow models/research: `layer_<n>` is the output of the n-th op
(1-based: layer_1 = Conv, layer_19 = Conv_1), plus `layer_<n>/expansion_output`
and `layer_<n>/depthwise_output` inside blocks.
"""
import collections
import contextlib

from utils.compat import slim, tf
from nets import heads, resnet_utils

Block = collections.namedtuple("Block", ["stride", "depth", "expansion"])

# (stride, output depth, expansion factor) of the 17 expanded_conv blocks.
BLOCKS = (
    Block(1, 16, 1),
    Block(2, 24, 6), Block(1, 24, 6),
    Block(2, 32, 6), Block(1, 32, 6), Block(1, 32, 6),
    Block(2, 64, 6), Block(1, 64, 6), Block(1, 64, 6), Block(1, 64, 6),
    Block(1, 96, 6), Block(1, 96, 6), Block(1, 96, 6),
    Block(2, 160, 6), Block(1, 160, 6), Block(1, 160, 6),
    Block(1, 320, 6),
)
STEM_DEPTH = 32
HEAD_DEPTH = 1280


def make_divisible(value, divisor=8, min_value=None):
    """Round a channel count to a multiple of `divisor`, never dropping more than 10%."""
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return int(new_value)


def expanded_conv(inputs, depth, expansion, stride=1, rate=1, end_points=None, prefix=None, scope=None):
    """Inverted residual block: expand (1x1) -> depthwise 3x3 (strided/atrous) -> linear project (1x1)."""
    with tf.variable_scope(scope, "expanded_conv", [inputs]):
        depth_in = inputs.shape[3]
        inner = make_divisible(depth_in * expansion)
        net = inputs
        if inner > depth_in:
            net = slim.conv2d(net, inner, [1, 1], scope="expand")
            net = tf.identity(net, name="expansion_output")
            if end_points is not None:
                end_points[prefix + "/expansion_output"] = net
        net = slim.separable_conv2d(net, None, [3, 3], depth_multiplier=1, stride=stride, rate=rate,
                                    scope="depthwise")
        net = tf.identity(net, name="depthwise_output")
        if end_points is not None:
            end_points[prefix + "/depthwise_output"] = net
        net = slim.conv2d(net, depth, [1, 1], activation_fn=None, scope="project")
        if stride == 1 and depth == depth_in:
            net = net + inputs
        return tf.identity(net, name="output")


def mobilenet_v2_base(inputs, output_stride=None, scope="MobilenetV2"):
    """Conv .. Conv_1 with output_stride handling as in models/research mobilenet.py."""
    end_points = {}
    # scope=None: build in the current scope (the full net already opened it).
    with tf.variable_scope(scope, "MobilenetV2", [inputs]) if scope else contextlib.nullcontext():
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d], padding="SAME"):
            net = end_points["layer_1"] = slim.conv2d(inputs, STEM_DEPTH, [3, 3], stride=2, scope="Conv")
            current_stride, rate = 2, 1
            for i, block in enumerate(BLOCKS):
                if output_stride is not None and current_stride == output_stride:
                    layer_stride, layer_rate = 1, rate
                    rate *= block.stride
                else:
                    layer_stride, layer_rate = block.stride, 1
                    current_stride *= block.stride
                key = "layer_%d" % (i + 2)
                net = expanded_conv(net, block.depth, block.expansion, stride=layer_stride,
                                    rate=layer_rate, end_points=end_points, prefix=key,
                                    scope="expanded_conv" + ("_%d" % i if i else ""))
                end_points[key] = net
            net = slim.conv2d(net, HEAD_DEPTH, [1, 1], stride=1, scope="Conv_1")
            end_points["layer_%d" % (len(BLOCKS) + 2)] = net
    return net, end_points


def mobilenet_v2(inputs, num_classes=1001, is_training=True, base_only=False, output_stride=None,
                 dropout_keep_prob=0.8, spatial_squeeze=True, reuse=None, scope="MobilenetV2"):
    """MobileNet v2.  base_only: Conv_1 (1280 channels), no Logits variables; else global
    average pool, dropout, `Logits/Conv2d_1c_1x1`."""
    resnet_utils.check_output_stride(output_stride, scope)
    with tf.variable_scope(scope, "MobilenetV2", [inputs], reuse=reuse):
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = mobilenet_v2_base(inputs, output_stride, scope=None)
            if base_only:
                return net, end_points
            return heads.pooled_conv_classifier(net, end_points, num_classes, dropout_keep_prob, spatial_squeeze,
                                                "global_pool", "Dropout", "Conv2d_1c_1x1")


mobilenet_v2.default_image_size = 224


def mobilenet_v2_arg_scope(weight_decay=0.00004, stddev=0.09, batch_norm_decay=0.997, batch_norm_epsilon=0.001):
    """models/research `training_scope` defaults: ReLU6, BN with gamma, fused; no L2 on depthwise kernels."""
    batch_norm_params = resnet_utils.batch_norm_params(batch_norm_decay, batch_norm_epsilon, center=True)
    with slim.arg_scope([slim.conv2d, slim.fully_connected, slim.separable_conv2d],
                        weights_initializer=tf.truncated_normal_initializer(stddev=stddev),
                        normalizer_fn=slim.batch_norm, activation_fn=tf.nn.relu6), \
            slim.arg_scope([slim.batch_norm], **batch_norm_params), \
            slim.arg_scope([slim.conv2d], weights_regularizer=slim.l2_regularizer(weight_decay)), \
            slim.arg_scope([slim.separable_conv2d], weights_regularizer=None) as sc:
        return sc

"""MobileNet v3 Large and Small (Howard et al., 2019), variable-compatible with the TF-Slim zoo checkpoints.

Built as research/slim/nets/mobilenet/mobilenet_v3.py (V3_LARGE, V3_SMALL) builds them:
`Conv` (3x3/2, hard-swish) -> inverted-residual blocks `expanded_conv[_i]`
(1x1 `expand` | kxk `depthwise` | optional `squeeze_excite` | linear 1x1 `project`,
residual when shape allows) -> `Conv_1` (1x1, hard-swish).  base_only returns
Conv_1; the classifier adds a global pool, `Conv_2` (1x1, hard-swish, no BN) and
`Logits/Conv2d_1c_1x1`.

Squeeze-excite (on the depthwise output): global average pool -> 1x1 `Conv` to
a quarter of the channels (ReLU) -> 1x1 `Conv_1` back (hard sigmoid, the zoo's
relu6(x + 3) * 0.16667) -> channel gate.  The zoo pools with avg_pool over the
static size; a mean over H, W is the same number and also builds for unknown sizes.

End points follow models/research: `layer_<n>` is the output of the n-th op
(layer_1 = Conv, Conv_1 = layer_17 (Large) / layer_13 (Small)), plus
`layer_<n>/expansion_output` and `layer_<n>/depthwise_output` inside blocks.
"""
import collections

from utils.compat import slim, tf
from nets import heads, resnet_utils
from nets.mobilenet_v2 import make_divisible, mobilenet_v2_arg_scope

SCOPE = "MobilenetV3"
Block = collections.namedtuple("Block", ["kernel", "expansion", "depth", "stride", "squeeze_excite", "hard_swish"])

# (depthwise kernel, expansion factor of the input depth, output depth, stride, squeeze-excite, hard-swish)
LARGE_BLOCKS = (
    Block(3, 1, 16, 1, False, False),
    Block(3, 4, 24, 2, False, False), Block(3, 3, 24, 1, False, False),
    Block(5, 3, 40, 2, True, False), Block(5, 3, 40, 1, True, False), Block(5, 3, 40, 1, True, False),
    Block(3, 6, 80, 2, False, True), Block(3, 2.5, 80, 1, False, True),
    Block(3, 184 / 80., 80, 1, False, True), Block(3, 184 / 80., 80, 1, False, True),
    Block(3, 6, 112, 1, True, True), Block(3, 6, 112, 1, True, True),
    Block(5, 6, 160, 2, True, True), Block(5, 6, 160, 1, True, True), Block(5, 6, 160, 1, True, True),
)
SMALL_BLOCKS = (
    Block(3, 1, 16, 2, True, False),
    Block(3, 72 / 16., 24, 2, False, False), Block(3, 88 / 24., 24, 1, False, False),
    Block(5, 4, 40, 2, True, True), Block(5, 6, 40, 1, True, True), Block(5, 6, 40, 1, True, True),
    Block(5, 3, 48, 1, True, True), Block(5, 3, 48, 1, True, True),
    Block(5, 6, 96, 2, True, True), Block(5, 6, 96, 1, True, True), Block(5, 6, 96, 1, True, True),
)
Variant = collections.namedtuple("Variant", ["blocks", "last_depth", "head_depth"])
LARGE = Variant(LARGE_BLOCKS, 960, 1280)
SMALL = Variant(SMALL_BLOCKS, 576, 1024)
STEM_DEPTH = 16
SQUEEZE_FACTOR = 4


def hard_swish(x):
    """x * relu6(x + 3) / 6, written as the zoo writes it (same float rounding)."""
    with tf.name_scope("hard_swish"):
        return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def hard_sigmoid(x):
    """The zoo's squeeze-excite gate: relu6(x + 3) * 0.16667 (its constant, not 1/6)."""
    return tf.nn.relu6(x + 3.0) * 0.16667


def squeeze_excite(net):
    """Channel gate from the globally pooled map (two 1x1 convs with biases, no BN)."""
    with tf.variable_scope("squeeze_excite"):
        channels = int(net.shape[-1])
        pooled = tf.reduce_mean(net, [1, 2], keepdims=True, name="pool")
        squeezed = slim.conv2d(pooled, make_divisible(channels / SQUEEZE_FACTOR), [1, 1], normalizer_fn=None,
                               activation_fn=tf.nn.relu, scope="Conv")
        gate = slim.conv2d(squeezed, channels, [1, 1], normalizer_fn=None, activation_fn=hard_sigmoid, scope="Conv_1")
        return net * gate


def expanded_conv(inputs, block, depth, stride, rate, end_points, prefix, scope):
    """Inverted residual: expand (1x1) -> depthwise kxk (strided/atrous) -> [squeeze-excite] -> linear project."""
    activation = hard_swish if block.hard_swish else tf.nn.relu
    with tf.variable_scope(scope), slim.arg_scope([slim.conv2d, slim.separable_conv2d], activation_fn=activation):
        depth_in = int(inputs.shape[3])
        inner = make_divisible(depth_in * block.expansion)
        net = inputs
        if inner > depth_in:
            net = slim.conv2d(net, inner, [1, 1], scope="expand")
            net = end_points[prefix + "/expansion_output"] = tf.identity(net, name="expansion_output")
        net = slim.separable_conv2d(net, None, [block.kernel, block.kernel], depth_multiplier=1, stride=stride,
                                    rate=rate, scope="depthwise")
        net = end_points[prefix + "/depthwise_output"] = tf.identity(net, name="depthwise_output")
        if block.squeeze_excite:
            net = squeeze_excite(net)
        net = slim.conv2d(net, depth, [1, 1], activation_fn=None, scope="project")
        if stride == 1 and depth == depth_in:
            net = net + inputs
        return tf.identity(net, name="output")


def strides_and_rates(strides, output_stride):
    """Per op (stride, rate): once `output_stride` is reached, strides become dilation (models/research rule)."""
    current_stride, rate, plan = 1, 1, []
    for stride in strides:
        if output_stride is not None and current_stride == output_stride:
            plan.append((1, rate))
            rate *= stride
        else:
            plan.append((stride, 1))
            current_stride *= stride
    return plan


def mobilenet_v3_base(inputs, variant, output_stride=None, depth_multiplier=1.0):
    """Conv .. Conv_1 in the current variable scope; returns (Conv_1, end_points)."""
    def scaled(depth):
        return make_divisible(depth * depth_multiplier)

    end_points = {}
    blocks = variant.blocks
    plan = strides_and_rates([2] + [block.stride for block in blocks] + [1], output_stride)
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d], padding="SAME"):
        net = slim.conv2d(inputs, scaled(STEM_DEPTH), [3, 3], stride=2, activation_fn=hard_swish, scope="Conv")
        end_points["layer_1"] = net
        for i, (block, (stride, rate)) in enumerate(zip(blocks, plan[1:])):
            key = "layer_%d" % (i + 2)
            net = end_points[key] = expanded_conv(net, block, scaled(block.depth), stride, rate, end_points, key,
                                                  scope="expanded_conv" + ("_%d" % i if i else ""))
        net = slim.conv2d(net, scaled(variant.last_depth), [1, 1], activation_fn=hard_swish, scope="Conv_1")
        end_points["layer_%d" % (len(blocks) + 2)] = net
    return net, end_points


def _mobilenet_v3(variant, inputs, num_classes, is_training, base_only, output_stride, dropout_keep_prob,
                  spatial_squeeze, reuse, scope, depth_multiplier):
    resnet_utils.check_output_stride(output_stride, scope)
    with tf.variable_scope(scope, SCOPE, [inputs], reuse=reuse):
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = mobilenet_v3_base(inputs, variant, output_stride, depth_multiplier)
            if base_only:
                return net, end_points
            layer = len(variant.blocks) + 3
            net = end_points["layer_%d" % layer] = tf.reduce_mean(net, [1, 2], keepdims=True, name="pool")
            net = slim.conv2d(net, make_divisible(variant.head_depth * depth_multiplier), [1, 1], normalizer_fn=None,
                              activation_fn=hard_swish, scope="Conv_2")
            end_points["layer_%d" % (layer + 1)] = net
            return heads.pooled_conv_classifier(net, end_points, num_classes, dropout_keep_prob, spatial_squeeze,
                                                "global_pool", "Dropout", "Conv2d_1c_1x1")


def mobilenet_v3_large(inputs, num_classes=1001, is_training=True, base_only=False, output_stride=None,
                       dropout_keep_prob=0.8, spatial_squeeze=True, reuse=None, scope=SCOPE, depth_multiplier=1.0):
    """MobileNet v3 Large.  base_only: Conv_1 (960 x depth_multiplier channels), no Conv_2 / Logits variables."""
    return _mobilenet_v3(LARGE, inputs, num_classes, is_training, base_only, output_stride, dropout_keep_prob,
                         spatial_squeeze, reuse, scope, depth_multiplier)


def mobilenet_v3_small(inputs, num_classes=1001, is_training=True, base_only=False, output_stride=None,
                       dropout_keep_prob=0.8, spatial_squeeze=True, reuse=None, scope=SCOPE, depth_multiplier=1.0):
    """MobileNet v3 Small.  base_only: Conv_1 (576 x depth_multiplier channels), no Conv_2 / Logits variables."""
    return _mobilenet_v3(SMALL, inputs, num_classes, is_training, base_only, output_stride, dropout_keep_prob,
                         spatial_squeeze, reuse, scope, depth_multiplier)


mobilenet_v3_large.default_image_size = mobilenet_v3_small.default_image_size = 224


def mobilenet_v3_arg_scope(weight_decay=0.00004, stddev=0.09, batch_norm_decay=0.997, batch_norm_epsilon=0.001):
    """MobileNet v2's training scope (BN, no L2 on depthwise kernels) with the v3 default activation, ReLU."""
    with slim.arg_scope(mobilenet_v2_arg_scope(weight_decay, stddev, batch_norm_decay, batch_norm_epsilon)):
        with slim.arg_scope([slim.conv2d, slim.fully_connected, slim.separable_conv2d],
                            activation_fn=tf.nn.relu) as sc:
            return sc

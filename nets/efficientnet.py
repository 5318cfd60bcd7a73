"""EfficientNet-B0..B3 and EfficientNet-Lite0, variable-compatible with the TensorFlow TPU repository's checkpoints.

tensorflow/tpu models/official/efficientnet builds Keras layers inside TF1 variable scopes, so its checkpoints
name variables by layer class and call order inside each block: `<model>/stem/conv2d/kernel`,
`<model>/blocks_<i>/{conv2d[_n],depthwise_conv2d,tpu_batch_normalization[_n]}/...`, `.../se/conv2d[_1]/{kernel,
bias}`, `<model>/head/{conv2d,tpu_batch_normalization,dense}/...`.  The layers here are written out with those
names (slim model variables, slim's fused batch norm), so a published checkpoint restores by name; the lists
in tests/fixtures/efficientnet_vars/ are the reference code's own variables.

stem (3x3/2) -> 7 stages of MBConv blocks (1x1 expand | kxk depthwise | squeeze-excite | linear 1x1 project,
residual when shape allows; in training, stochastic depth drops a residual block's branch per example, block
i of n for a share drop_connect_rate * i / n) -> head (1x1 to 1280, pool, dense).  base_only stops after the
last block (the TPU repository's `features_only`): the head, 1280-wide, is the classifier's.  Lite: ReLU6, no squeeze-excite, stem
and head (and the first and last stage's repeats) not scaled.
"""
import collections
import math

import numpy as np

from utils.compat import add_arg_scope, slim, tf
from nets import resnet_utils
from nets.dropout import dropout

Stage = collections.namedtuple("Stage", ["kernel_size", "repeats", "stride", "expansion", "depth_in", "depth"])
Variant = collections.namedtuple("Variant", ["scope", "width", "depth", "resolution", "dropout", "lite"])

# efficientnet_builder._DEFAULT_BLOCKS_ARGS ('r1_k3_s11_e1_i32_o16_se0.25', ...); every stage has SE ratio 0.25.
STAGES = (
    Stage(3, 1, 1, 1, 32, 16), Stage(3, 2, 2, 6, 16, 24), Stage(5, 2, 2, 6, 24, 40), Stage(3, 3, 2, 6, 40, 80),
    Stage(5, 3, 1, 6, 80, 112), Stage(5, 4, 2, 6, 112, 192), Stage(3, 1, 1, 6, 192, 320),
)
SE_RATIO = 0.25
# efficientnet_builder / efficientnet_lite_builder: survival_prob=0.8 for every variant (drop_connect_rate 0.2).
DROP_CONNECT_RATE = 0.2
STEM_DEPTH, HEAD_DEPTH = 32, 1280
# (width, depth, resolution, dropout) of efficientnet_builder.efficientnet_params / efficientnet_lite_params.
VARIANTS = {
    "efficientnet_b0": Variant("efficientnet-b0", 1.0, 1.0, 224, 0.2, False),
    "efficientnet_b1": Variant("efficientnet-b1", 1.0, 1.1, 240, 0.2, False),
    "efficientnet_b2": Variant("efficientnet-b2", 1.1, 1.2, 260, 0.3, False),
    "efficientnet_b3": Variant("efficientnet-b3", 1.2, 1.4, 300, 0.3, False),
    "efficientnet_lite0": Variant("efficientnet-lite0", 1.0, 1.0, 224, 0.2, True),
}


def round_filters(filters, width, divisor=8):
    """efficientnet_model.round_filters: scale by width, round to a multiple of 8, never lose more than 10%."""
    filters *= width
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * filters:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats, depth):
    return int(math.ceil(depth * repeats))


def fan_out_normal(shape, dtype=None, partition_info=None):
    """efficientnet_model.conv_kernel_initializer: N(0, 2 / (k * k * output channels)); depthwise: 2 / (k * k).

    dtype None is float32 (no tf.float32 default: importing this module must not import TensorFlow)."""
    del partition_info
    return tf.random_normal(shape, stddev=float(np.sqrt(2.0 / (shape[0] * shape[1] * shape[3]))),
                            dtype=dtype or tf.float32)


class LayerNames:
    """Keras-style unique names in one block: conv2d, conv2d_1, ...; tpu_batch_normalization, ..._1."""

    def __init__(self):
        self.counts = collections.Counter()

    def __call__(self, base):
        count = self.counts[base]
        self.counts[base] += 1
        return base if count == 0 else "%s_%d" % (base, count)


@add_arg_scope
def conv2d(inputs, filters, kernel_size, scope, stride=1, rate=1, use_bias=False,
           weights_initializer=fan_out_normal, weights_regularizer=None):
    """Keras Conv2D's variables (`kernel`, `bias`), TF 'SAME' padding, atrous by `rate`."""
    with tf.variable_scope(scope):
        kernel = slim.model_variable("kernel", [kernel_size, kernel_size, int(inputs.shape[-1]), filters],
                                     initializer=weights_initializer, regularizer=weights_regularizer)
        net = tf.nn.conv2d(inputs, kernel, [1, stride, stride, 1], "SAME", dilations=[1, rate, rate, 1])
        if use_bias:
            net = tf.nn.bias_add(net, slim.model_variable("bias", [filters], initializer=tf.zeros_initializer()))
    return net


@add_arg_scope
def depthwise_conv2d(inputs, kernel_size, scope, stride=1, rate=1, weights_initializer=fan_out_normal,
                     weights_regularizer=None):
    """Keras DepthwiseConv2D's `depthwise_kernel` [k, k, channels, 1], no bias."""
    with tf.variable_scope(scope):
        kernel = slim.model_variable("depthwise_kernel", [kernel_size, kernel_size, int(inputs.shape[-1]), 1],
                                     initializer=weights_initializer, regularizer=weights_regularizer)
        return tf.nn.depthwise_conv2d(inputs, kernel, [1, stride, stride, 1], "SAME", rate=[rate, rate])


def squeeze_excite(inputs, reduced, activation):
    """Global mean -> 1x1 (bias) -> activation -> 1x1 (bias) -> sigmoid gate on `inputs` (scope `se`)."""
    with tf.variable_scope("se"):
        names = LayerNames()
        gate = tf.reduce_mean(inputs, [1, 2], keepdims=True)
        gate = activation(conv2d(gate, reduced, 1, names("conv2d"), use_bias=True))
        gate = conv2d(gate, int(inputs.shape[-1]), 1, names("conv2d"), use_bias=True)
        return tf.sigmoid(gate) * inputs


def mbconv_block(inputs, depth, kernel_size, expansion, stride, rate, activation, use_se, residual,
                 end_points, prefix, keep_prob=1.0, is_training=False):
    """efficientnet_model.MBConvBlock in the current variable scope (`blocks_<i>`).

    keep_prob < 1 with a residual: utils.drop_connect while training, the branch kept (scaled by 1 / keep_prob)
    or dropped per example; through nets.dropout's stateless seeds, so a resumed run draws the same masks."""
    names = LayerNames()
    depth_in = int(inputs.shape[-1])
    net = inputs
    if expansion != 1:
        net = conv2d(net, depth_in * expansion, 1, names("conv2d"))
        net = activation(slim.batch_norm(net, scope=names("tpu_batch_normalization")))
    net = depthwise_conv2d(net, kernel_size, "depthwise_conv2d", stride=stride, rate=rate)
    net = activation(slim.batch_norm(net, scope=names("tpu_batch_normalization")))
    if use_se:
        net = squeeze_excite(net, max(1, int(depth_in * SE_RATIO)), activation)
    end_points[prefix + "/expansion_output"] = net
    net = conv2d(net, depth, 1, names("conv2d"))
    net = slim.batch_norm(net, scope=names("tpu_batch_normalization"))
    if residual:
        net = dropout(net, keep_prob, is_training, whole_examples=True, scope="drop_connect")
        net = tf.add(net, inputs)
    return tf.identity(net, name="output")


def block_list(variant):
    """[(depth, kernel_size, expansion, stride)] of every block of `variant`, in order."""
    blocks = []
    for i, stage in enumerate(STAGES):
        fixed = variant.lite and i in (0, len(STAGES) - 1)  # Lite's fix_head_stem keeps these repeats
        repeats = stage.repeats if fixed else round_repeats(stage.repeats, variant.depth)
        depth = round_filters(stage.depth, variant.width)
        blocks += [(depth, stage.kernel_size, stage.expansion, stage.stride if r == 0 else 1) for r in range(repeats)]
    return blocks


def efficientnet_base(inputs, variant, output_stride=None, drop_connect_rate=0.0, is_training=False):
    """stem .. last block in the current scope; end points as the TPU model's (`stem`, `block_<i>`,
    `reduction_<n>` = last block before the n-th stride-2 change; the output stride counts as if undilated).

    drop_connect_rate: block i of n keeps its residual branch with probability 1 - rate * i / n in training
    (efficientnet_model.Model.call's survival_prob)."""
    end_points = {}
    activation = tf.nn.relu6 if variant.lite else tf.nn.swish
    stem_depth = STEM_DEPTH if variant.lite else round_filters(STEM_DEPTH, variant.width)
    with tf.variable_scope("stem"):
        net = conv2d(inputs, stem_depth, 3, "conv2d", stride=2)
        net = end_points["stem"] = activation(slim.batch_norm(net, scope="tpu_batch_normalization"))
    blocks = block_list(variant)
    current_stride, rate, reduction = 2, 1, 0
    for i, (depth, kernel_size, expansion, stride) in enumerate(blocks):
        residual = stride == 1 and depth == int(net.shape[-1])
        if output_stride is not None and current_stride * stride > output_stride:
            layer_stride, layer_rate = 1, rate
            rate *= stride
        else:
            layer_stride, layer_rate = stride, rate
            current_stride *= stride
        key = "block_%d" % i
        with tf.variable_scope("blocks_%d" % i):
            net = mbconv_block(net, depth, kernel_size, expansion, layer_stride, layer_rate, activation,
                               not variant.lite, residual, end_points, key,
                               keep_prob=1.0 - drop_connect_rate * float(i) / len(blocks), is_training=is_training)
        end_points[key] = net
        if i == len(blocks) - 1 or blocks[i + 1][3] > 1:
            reduction += 1
            end_points["reduction_%d" % reduction] = net
    end_points["features"] = net
    return net, end_points


def classifier_head(net, end_points, variant, num_classes, dropout_keep_prob):
    """head/conv2d (1280) -> BN -> activation -> global mean -> dropout -> head/dense (the ImageNet classifier)."""
    activation = tf.nn.relu6 if variant.lite else tf.nn.swish
    head_depth = HEAD_DEPTH if variant.lite else round_filters(HEAD_DEPTH, variant.width)
    with tf.variable_scope("head"):
        net = conv2d(net, head_depth, 1, "conv2d")
        net = end_points["head_1x1"] = activation(slim.batch_norm(net, scope="tpu_batch_normalization"))
        net = end_points["pooled_features"] = tf.reduce_mean(net, [1, 2])
        if not num_classes:
            return net, end_points
        net = slim.dropout(net, keep_prob=dropout_keep_prob, scope="dropout")
        kernel = slim.model_variable("dense/kernel", [head_depth, num_classes],
                                     initializer=tf.random_uniform_initializer(-1 / np.sqrt(num_classes),
                                                                               1 / np.sqrt(num_classes)))
        bias = slim.model_variable("dense/bias", [num_classes], initializer=tf.zeros_initializer())
        logits = end_points["head"] = tf.nn.bias_add(tf.matmul(net, kernel), bias, name="logits")
    end_points["Predictions"] = tf.nn.softmax(logits)
    return logits, end_points


def check_drop_connect_rate(rate):
    """The rate, or ValueError: a share of examples dropped must lie in [0, 1)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError("--drop_connect_rate must be in [0, 1), got %r" % (rate,))
    return rate


def _efficientnet(name, inputs, num_classes=1000, is_training=True, base_only=False, output_stride=None,
                  dropout_keep_prob=None, reuse=None, scope=None, drop_connect_rate=None):
    variant = VARIANTS[name]
    resnet_utils.check_output_stride(output_stride, name)
    if dropout_keep_prob is None:
        dropout_keep_prob = 1.0 - variant.dropout
    drop_connect_rate = check_drop_connect_rate(DROP_CONNECT_RATE if drop_connect_rate is None else drop_connect_rate)
    with tf.variable_scope(scope or variant.scope, variant.scope, [inputs], reuse=reuse):
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = efficientnet_base(inputs, variant, output_stride, drop_connect_rate, is_training)
            if base_only:
                return net, end_points
            return classifier_head(net, end_points, variant, num_classes, dropout_keep_prob)


def _net_function(name):
    def net(inputs, num_classes=1000, is_training=True, base_only=False, output_stride=None,
            dropout_keep_prob=None, reuse=None, scope=None, drop_connect_rate=None):
        return _efficientnet(name, inputs, num_classes, is_training, base_only, output_stride,
                             dropout_keep_prob, reuse, scope, drop_connect_rate)
    net.__name__ = net.__qualname__ = name
    net.__doc__ = ("%s (tensorflow/tpu models/official/efficientnet).  base_only: the last block's output "
                   "(no head variables); else head conv, pool, dropout, `head/dense`.  drop_connect_rate: "
                   "stochastic depth in training (None: the reference's %s; 0: off)." % (name, DROP_CONNECT_RATE))
    net.default_image_size = VARIANTS[name].resolution
    return net


efficientnet_b0 = _net_function("efficientnet_b0")
efficientnet_b1 = _net_function("efficientnet_b1")
efficientnet_b2 = _net_function("efficientnet_b2")
efficientnet_b3 = _net_function("efficientnet_b3")
efficientnet_lite0 = _net_function("efficientnet_lite0")


def efficientnet_arg_scope(weight_decay=1e-5, batch_norm_decay=0.99, batch_norm_epsilon=1e-3):
    """The TPU repository's training defaults: BN momentum 0.99, epsilon 1e-3; L2 1e-5 on conv kernels
    (its loss adds it to every non-BN weight: the SE and dense biases are left out here)."""
    batch_norm_params = resnet_utils.batch_norm_params(batch_norm_decay, batch_norm_epsilon, center=True)
    with slim.arg_scope([conv2d, depthwise_conv2d], weights_regularizer=slim.l2_regularizer(weight_decay)), \
            slim.arg_scope([slim.batch_norm], **batch_norm_params) as sc:
        return sc

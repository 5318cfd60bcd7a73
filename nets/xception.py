"""Xception-65 as DeepLab builds it, variable-compatible with DeepLab's ImageNet checkpoint.

The "aligned" Xception of tensorflow/models research/deeplab/core/xception.py
(MSRA's deeper Xception, every max pool replaced by a strided separable conv so
that atrous convolution reaches any output stride):

    entry_flow/conv1_1 (3x3/2, 32) -> entry_flow/conv1_2 (3x3, 64)
    entry_flow/block1..3   1 unit each, depths 128 / 256 / 728, stride 2, 1x1 conv shortcut
    middle_flow/block1     16 units of 728, identity shortcut
    exit_flow/block1       728, 1024, 1024, stride 2, 1x1 conv shortcut
    exit_flow/block2       1536, 1536, 2048, no shortcut, ReLU inside each separable conv

A unit (`<block>/unit_<i>/xception_module`) is three separable convs, each a
depthwise 3x3 (`separable_conv<k>_depthwise`, BN) and a pointwise 1x1
(`separable_conv<k>_pointwise`, BN); the stride is in the third.  Outside
exit_flow/block2 the ReLU comes *before* each separable conv, so unit outputs
and the taps are pre-activation, as in DeepLab.  Strided convs pad explicitly
and symmetrically (DeepLab's `fixed_padding`), so the dense (dilated) net
sampled every 32/output_stride pixels equals the strided one.

End points are keyed like DeepLab's (slim output collections): e.g.
`xception_65/entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise`,
the stride-4 map DeepLab v3+'s decoder reads.
"""
import collections

from nets import resnet_utils
from utils.compat import add_arg_scope, slim, tf

Block = collections.namedtuple("Block", ["scope", "depths", "skip", "units", "stride", "activation_inside"])

# (scope, depths of the 3 separable convs, shortcut, units, stride of each unit's last conv, ReLU inside)
XCEPTION_65_BLOCKS = (
    Block("entry_flow/block1", (128, 128, 128), "conv", 1, 2, False),
    Block("entry_flow/block2", (256, 256, 256), "conv", 1, 2, False),
    Block("entry_flow/block3", (728, 728, 728), "conv", 1, 2, False),
    Block("middle_flow/block1", (728, 728, 728), "sum", 16, 1, False),
    Block("exit_flow/block1", (728, 1024, 1024), "conv", 1, 2, False),
    Block("exit_flow/block2", (1536, 1536, 2048), "none", 1, 1, True),
)
DEFAULT_MULTI_GRID = (1, 1, 1)  # atrous rate multipliers of exit_flow/block2's three convs


def separable_conv2d_same(inputs, depth, stride, rate, activation_fn, scope):
    """Depthwise 3x3 (`<scope>_depthwise`) + pointwise 1x1 (`<scope>_pointwise`), both batch-normed.

    Strided: symmetric explicit padding then 'VALID' (DeepLab's fixed_padding); else 'SAME'."""
    padding = "SAME"
    if stride > 1:
        inputs = resnet_utils.symmetric_pad(inputs, 3, rate)
        padding = "VALID"
    net = slim.separable_conv2d(inputs, None, 3, depth_multiplier=1, stride=stride, rate=rate, padding=padding,
                                activation_fn=activation_fn, scope=scope + "_depthwise")
    return slim.conv2d(net, depth, 1, activation_fn=activation_fn, scope=scope + "_pointwise")


@add_arg_scope
def xception_module(inputs, depths, skip, stride, rate=1, unit_rates=DEFAULT_MULTI_GRID, activation_inside=False,
                    outputs_collections=None, scope=None):
    """Three separable convs (stride in the last) plus a 1x1-conv, identity or no shortcut."""
    with tf.variable_scope(scope, "xception_module", [inputs]) as sc:
        residual = inputs
        for i, depth in enumerate(depths):
            if not activation_inside:
                residual = tf.nn.relu(residual)
            residual = separable_conv2d_same(residual, depth, stride if i == 2 else 1, rate * unit_rates[i],
                                             tf.nn.relu if activation_inside else None,
                                             scope="separable_conv%d" % (i + 1))
        if skip == "conv":
            outputs = residual + slim.conv2d(inputs, depths[-1], 1, stride=stride, activation_fn=None,
                                             scope="shortcut")
        elif skip == "sum":
            outputs = residual + inputs
        else:
            outputs = residual
        return slim.utils.collect_named_outputs(outputs_collections, sc.name, outputs)


def stack_blocks_dense(net, blocks, output_stride=None, multi_grid=None, outputs_collections=None):
    """Blocks as `<scope>/unit_<i>`; once `output_stride` (relative to `net`) is reached, strides turn into
    atrous rates, exactly as DeepLab's stack_blocks_dense (the unit that drops its stride keeps the rate so far)."""
    current_stride, rate = 1, 1
    for block in blocks:
        unit_rates = tuple(multi_grid or DEFAULT_MULTI_GRID) if block.activation_inside else DEFAULT_MULTI_GRID
        with tf.variable_scope(block.scope, "block", [net]) as sc:
            for i in range(block.units):
                with tf.variable_scope("unit_%d" % (i + 1), values=[net]):
                    unit = dict(depths=block.depths, skip=block.skip, unit_rates=unit_rates,
                                activation_inside=block.activation_inside)
                    if output_stride is not None and current_stride == output_stride:
                        net = xception_module(net, stride=1, rate=rate, **unit)
                        rate *= block.stride
                    else:
                        net = xception_module(net, stride=block.stride, rate=1, **unit)
                        current_stride *= block.stride
            net = slim.utils.collect_named_outputs(outputs_collections, sc.name, net)
    return net


def xception_65(inputs, num_classes=1001, is_training=True, base_only=False, output_stride=None,
                multi_grid=None, dropout_keep_prob=0.5, spatial_squeeze=True, reuse=None, scope="xception_65"):
    """Xception-65.  base_only: exit_flow/block2 (2048 channels), no `logits` variables; else global average
    pool, dropout, `logits` (1x1 conv with biases), as DeepLab's ImageNet classifier.

    output_stride: None/32, 16 or 8 (DeepLab: 16 for training, 8 for its best evaluation).
    multi_grid: atrous rate multipliers of exit_flow/block2's three convs (DeepLab's --multi_grid).
    """
    resnet_utils.check_output_stride(output_stride, scope)
    with tf.variable_scope(scope, "xception", [inputs], reuse=reuse) as sc:
        collection = sc.original_name_scope + "end_points"
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d, xception_module], outputs_collections=collection), \
                slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net = resnet_utils.conv2d_same(inputs, 32, 3, stride=2, scope="entry_flow/conv1_1")
            net = resnet_utils.conv2d_same(net, 64, 3, stride=1, scope="entry_flow/conv1_2")
            blocks_stride = output_stride // 2 if output_stride else None  # the root already halved the input
            net = stack_blocks_dense(net, XCEPTION_65_BLOCKS, blocks_stride, multi_grid, collection)
            end_points = slim.utils.convert_collection_to_dict(collection, clear_collection=True)
            if base_only:
                return net, end_points
            net = end_points["global_pool"] = tf.reduce_mean(net, [1, 2], name="global_pool", keepdims=True)
            if not num_classes:
                return net, end_points
            net = slim.dropout(net, keep_prob=dropout_keep_prob, scope="prelogits_dropout")
            logits = slim.conv2d(net, num_classes, 1, activation_fn=None, normalizer_fn=None, scope="logits")
            if spatial_squeeze:
                logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
            end_points[sc.name + "/logits"] = logits
            end_points["predictions"] = slim.softmax(logits, scope="predictions")
            return logits, end_points


xception_65.default_image_size = 299


def xception_arg_scope(weight_decay=0.00004, batch_norm_decay=0.9997, batch_norm_epsilon=0.001, stddev=0.09):
    """DeepLab's xception_arg_scope defaults: ReLU, BN with gamma (fused), L2 on every conv but the depthwise."""
    batch_norm_params = resnet_utils.batch_norm_params(batch_norm_decay, batch_norm_epsilon)
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                        weights_initializer=tf.truncated_normal_initializer(stddev=stddev),
                        activation_fn=tf.nn.relu, normalizer_fn=slim.batch_norm), \
            slim.arg_scope([slim.batch_norm], **batch_norm_params), \
            slim.arg_scope([slim.conv2d], weights_regularizer=slim.l2_regularizer(weight_decay)), \
            slim.arg_scope([slim.separable_conv2d], weights_regularizer=None) as sc:
        return sc

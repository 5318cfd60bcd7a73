"""Building blocks shared by the ResNets (and the dense-pooling helper VGG and Inception use).

The point of this module is *dense prediction*: every net in nets/ takes an
`output_stride` ("dilation as a parameter").  Once the requested stride is
reached, later strides are dropped and later 3x3 kernels are dilated instead,
so the same (checkpoint-compatible) weights see the same neighbourhoods on a
finer grid.  `stack_blocks_dense` does that for ResNet blocks, the
`*_same`/`*_dense` ops make the strided and the dense versions of a layer look
at the same pixels, so that, for inputs divisible by 32, the dense ResNet /
Inception output taken every `32 / output_stride` pixels equals the strided
output (tests check this).  The MobileNets keep TF 'SAME' strided convs, as
their checkpoints were trained with, so for them it holds only approximately.
"""
import collections

from utils.compat import add_arg_scope, slim, tf

OUTPUT_STRIDES = (None, 8, 16, 32)

# Batch norm update ops still go to tf.GraphKeys.UPDATE_OPS, but passed as a
# *list*: tf_slim.batch_norm checks `updates_collections is not UPDATE_OPS`,
# and only then takes its own fused path (`_fused_batch_norm`, FusedBatchNormV3,
# is_training may be a tensor).  With the bare string it goes through the Keras
# BatchNormalization layer instead, whose add_weight scans all global variables
# for every weight: graph building becomes quadratic (~3x slower for ResNet-101).
def batch_norm_updates():
    """[tf.GraphKeys.UPDATE_OPS], the list that takes tf-slim's fused path (a function: read at build time)."""
    return [tf.GraphKeys.UPDATE_OPS]


class Block(collections.namedtuple("Block", ["scope", "unit_fn", "args"])):
    """One ResNet block: a variable scope, a unit function and one kwargs dict per unit.

    Each dict holds the unit's arguments (depth, stride, ...); `stack_blocks_dense`
    adds `rate` (and `output_rate`) to them.
    """


def batch_norm_params(decay, epsilon, scale=True, **more):
    """The fused slim.batch_norm arguments every encoder's arg_scope shares (moving averages updated through
    batch_norm_updates()); `more` adds a net's own (MobileNet's explicit center=True)."""
    return dict(decay=decay, epsilon=epsilon, scale=scale, fused=True, updates_collections=batch_norm_updates(),
                **more)


def check_output_stride(output_stride, net_name):
    """Only None (= 32), 8, 16 and 32 are meaningful for seg-mentor's decoders."""
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError("%s: output_stride must be one of %s, got %r"
                         % (net_name, OUTPUT_STRIDES, output_stride))


def symmetric_pad(inputs, kernel_size, rate, value=0.0):
    """Pad (k_eff - 1) // 2 before and the rest after, like Caffe/PyTorch do."""
    kernel_effective = kernel_size + (kernel_size - 1) * (rate - 1)
    pad_total = kernel_effective - 1
    pad_beg = pad_total // 2
    pad_end = pad_total - pad_beg
    return tf.pad(inputs, [[0, 0], [pad_beg, pad_end], [pad_beg, pad_end], [0, 0]],
                  constant_values=value)


def conv2d_same(inputs, num_outputs, kernel_size, stride, rate=1, scope=None):
    """Strided conv with symmetric explicit padding.

    TF's 'SAME' pads a strided conv asymmetrically on even inputs (0 before, 1
    after for 3x3/2), which shifts the grid by half a pixel and breaks the
    equivalence with the stride-1 (dense) version.  Padding symmetrically and
    convolving 'VALID' keeps the strided output equal to every second pixel of
    the dense one, and matches torchvision's `padding=k//2` convolutions.
    """
    if stride == 1:
        return slim.conv2d(inputs, num_outputs, kernel_size, stride=1, rate=rate,
                           padding="SAME", scope=scope)
    padded = symmetric_pad(inputs, kernel_size, rate)
    return slim.conv2d(padded, num_outputs, kernel_size, stride=stride, rate=rate,
                       padding="VALID", scope=scope)


@add_arg_scope
def max_pool2d_same(inputs, kernel_size, stride, outputs_collections=None, scope=None):
    """Max pool with symmetric padding (torchvision's `MaxPool2d(k, s, padding=k//2)`).

    Padded with the dtype's minimum, so the padding never wins the max.
    """
    with tf.name_scope(scope, "MaxPool2D", [inputs]) as sc:
        padded = symmetric_pad(inputs, kernel_size, 1, value=inputs.dtype.min)
        net = tf.nn.max_pool2d(padded, kernel_size, stride, "VALID")
        return slim.utils.collect_named_outputs(outputs_collections, sc.rstrip("/"), net)


@add_arg_scope
def max_pool2d_dense(inputs, kernel_size, stride, rate=1, outputs_collections=None, scope=None):
    """Stride-1 max pool that evaluates a 'SAME' `kernel_size`/`stride` max pool densely.

    The input lives on a grid dilated by `rate`; the window is dilated alike and
    padded like TF's 'SAME' pads the strided pool on inputs divisible by the
    stride (`(k - s) // 2` taps before), so the windows are exactly the strided
    pool's windows, evaluated at every pixel.  With stride=1 and rate=1 it is a
    plain 'SAME' pool.
    """
    with tf.name_scope(scope, "MaxPool2D", [inputs]) as sc:
        pad_beg = (max(kernel_size - stride, 0) // 2) * rate
        pad_end = (kernel_size - 1) * rate - pad_beg
        padded = tf.pad(inputs, [[0, 0], [pad_beg, pad_end], [pad_beg, pad_end], [0, 0]],
                        constant_values=inputs.dtype.min)
        net = tf.nn.pool(padded, [kernel_size, kernel_size], "MAX", padding="VALID",
                         dilation_rate=[rate, rate])
        return slim.utils.collect_named_outputs(outputs_collections, sc.rstrip("/"), net)


def subsample(inputs, factor, scope=None):
    """Every `factor`-th pixel (the identity shortcut of a strided unit)."""
    if factor == 1:
        return inputs
    return slim.max_pool2d(inputs, [1, 1], stride=factor, scope=scope)


@add_arg_scope
def stack_blocks_dense(net, blocks, output_stride=None, outputs_collections=None):
    """Stack ResNet blocks, switching to atrous convolution once `output_stride` is reached.

    Units are called as `unit_fn(net, rate=r, output_rate=r_out, **unit)`:
    `rate` is the dilation of the unit's strided conv (and everything before it
    in the unit), `output_rate` the dilation of convs after the stride point
    (they differ only when a unit's stride was dropped).  `output_stride` is
    relative to `net` (the root block's stride already divided out).
    """
    current_stride = 1
    rate = 1
    for block in blocks:
        with tf.variable_scope(block.scope, "block", [net]) as sc:
            for i, unit in enumerate(block.args):
                if output_stride is not None and current_stride > output_stride:
                    raise ValueError("The target output_stride cannot be reached.")
                with tf.variable_scope("unit_%d" % (i + 1), values=[net]):
                    stride = unit.get("stride", 1)
                    if output_stride is not None and current_stride == output_stride:
                        net = block.unit_fn(net, rate=rate, output_rate=rate * stride,
                                            **dict(unit, stride=1))
                        rate *= stride
                    else:
                        net = block.unit_fn(net, rate=1, output_rate=1, **unit)
                        current_stride *= stride
            net = slim.utils.collect_named_outputs(outputs_collections, sc.name, net)
    if output_stride is not None and current_stride != output_stride:
        raise ValueError("The target output_stride cannot be reached.")
    return net


def resnet_arg_scope(weight_decay=0.0001, batch_norm_decay=0.997, batch_norm_epsilon=1e-5,
                     batch_norm_scale=True, use_batch_norm=True):
    """slim's ResNet defaults (BN after every conv, no conv biases), with fused BN.

    'SAME' max pooling keeps feature maps aligned for dense prediction.
    """
    bn_params = batch_norm_params(batch_norm_decay, batch_norm_epsilon, scale=batch_norm_scale)
    with slim.arg_scope(
            [slim.conv2d],
            weights_regularizer=slim.l2_regularizer(weight_decay),
            weights_initializer=slim.variance_scaling_initializer(),
            activation_fn=tf.nn.relu,
            normalizer_fn=slim.batch_norm if use_batch_norm else None,
            normalizer_params=bn_params):
        with slim.arg_scope([slim.batch_norm], **bn_params):
            with slim.arg_scope([slim.max_pool2d], padding="SAME") as arg_sc:
                return arg_sc

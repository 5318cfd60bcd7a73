"""VGG-16 as FCN uses it: conv1-5, then fc6/fc7 kept as convolutions (7x7 and 1x1).

Variables match TF-Slim's vgg_16 (and its public checkpoint): no batch norm,
biases everywhere, fc6 a 7x7 conv applied 'VALID' by default.

base_only output, and why it is re-aligned: FCN runs fc6 'VALID' on pool5,
which costs seg-mentor ~92 GMACs at 512x512 (fc6 on 10x10 positions instead
of 16x16 with 'SAME') but leaves an fc7 map 6 pixels smaller than pool5 whose
pixel i sits over pool5 pixel i+3.  We keep the cheap 'VALID' fc6 and then
replicate fc7's border by 3 pixels on each side (3*rate when dilated), so the
stride-32 output has pool5's size and grid: decoders can add it to skips
without FCN's crop offsets.  The replication is done by concatenation, so it
works for any map, even 1x1 (tf.pad's SYMMETRIC/REFLECT modes cannot pad a
1-pixel map by 3).  Inputs whose pool5 is smaller than fc6's window are
replicate-padded before fc6 too, so any input size builds.

SegNet's encoder is the 13 convolutions alone, whose pools record their
argmax: `fc_layers=False` stops at pool5 (no fc6/fc7 variables), and a
`pool_indices` dict receives each pool's PoolIndices (nets/pooling.py); the
variables keep their names, so the slim checkpoint restores either way.
"""
from utils.compat import slim, tf
from nets import resnet_utils
from nets.pooling import max_pool_2x2
from nets.resnet_utils import max_pool2d_dense

_CONV_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (depth, number of 3x3 convs)
_FC6_KERNEL = 7


def vgg_arg_scope(weight_decay=0.0005):
    """slim's VGG defaults: ReLU, L2 on weights, zero biases, 'SAME' convs."""
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        activation_fn=tf.nn.relu,
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        biases_initializer=tf.zeros_initializer()):
        with slim.arg_scope([slim.conv2d], padding="SAME") as arg_sc:
            return arg_sc


def replicate_border(net, axis, before, after):
    """Edge-replication padding of `net` along `axis` (1 or 2), by concatenating its first/last row."""
    if before == 0 and after == 0:
        return net
    if axis == 1:
        first, last = net[:, :1], net[:, -1:]
    elif axis == 2:
        first, last = net[:, :, :1], net[:, :, -1:]
    else:
        raise ValueError("axis must be 1 (height) or 2 (width), got %r" % axis)
    return tf.concat([first] * before + [net] + [last] * after, axis=axis)


def _valid_fc6_paddings(size, rate):
    """(pre, post) replication pads for one axis of a 'VALID' fc6, so fc7 lands on pool5's grid.

    pre: only when pool5 (`size`, static or None) is smaller than fc6's window.
    post: half the window on each side, minus what `pre` already added.
    """
    extent = (_FC6_KERNEL - 1) * rate + 1
    half = (_FC6_KERNEL - 1) // 2 * rate
    deficit = max(extent - size, 0) if size is not None else 0
    pre = (deficit // 2, deficit - deficit // 2)
    post = (half - pre[0], half - pre[1])
    return pre, post


def vgg_16(inputs, num_classes=1000, is_training=True, base_only=False, output_stride=None,
           dropout_keep_prob=0.5, spatial_squeeze=True, fc_conv_padding="VALID",
           fc_layers=True, pool_indices=None, reuse=None, scope="vgg_16"):
    """VGG-16 (configuration D).

    base_only: return fc7 (stride `output_stride`, on pool5's grid, see module
      doc) and create no fc8.  Otherwise slim's classifier: fc8 after dropout,
      squeezed to [N, num_classes] (a 224x224 input gives a 1x1 fc8).
    output_stride: 8, 16 or 32 (None).  Pools past it keep their window but get
      stride 1 (max_pool2d_dense), later 3x3 convs and fc6 get dilated.
    fc_layers: False (with base_only) returns pool5 and creates no fc6/fc7.
    pool_indices: a dict to receive {stride of the pool's input: PoolIndices} of the five pools
      (strided pools only: not with an output_stride).
    """
    resnet_utils.check_output_stride(output_stride, scope)
    if fc_conv_padding not in ("VALID", "SAME"):
        raise ValueError("fc_conv_padding must be 'VALID' or 'SAME', got %r" % fc_conv_padding)
    if not (fc_layers or base_only):
        raise ValueError("fc_layers=False builds the convolutions only: it needs base_only=True")
    if pool_indices is not None and output_stride not in (None, 32):
        raise ValueError("pool indices come from strided pools: output_stride must be None, got %r" % output_stride)
    with tf.variable_scope(scope, "vgg_16", [inputs], reuse=reuse) as sc:
        end_points_collection = sc.original_name_scope + "_end_points"
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, max_pool2d_dense, max_pool_2x2],
                            outputs_collections=end_points_collection):
            net = inputs
            current_stride, rate = 1, 1
            for i, (depth, repeats) in enumerate(_CONV_BLOCKS, start=1):
                net = slim.repeat(net, repeats, slim.conv2d, depth, [3, 3], rate=rate,
                                  scope="conv%d" % i)
                if output_stride is not None and current_stride == output_stride:
                    net = max_pool2d_dense(net, 2, 2, rate=rate, scope="pool%d" % i)
                    rate *= 2
                elif pool_indices is not None:
                    net = max_pool_2x2(net, "pool%d" % i, record=pool_indices, stride=current_stride)
                    current_stride *= 2
                else:
                    # 'SAME' = Caffe's ceil-mode pooling (FCN): slim's default 'VALID'
                    # would drop the last row/column of odd-sized maps (45 -> 22).
                    net = slim.max_pool2d(net, [2, 2], stride=2, padding="SAME", scope="pool%d" % i)
                    current_stride *= 2
            if not fc_layers:
                return net, slim.utils.convert_collection_to_dict(end_points_collection)

            realign = base_only and fc_conv_padding == "VALID"
            if realign:
                pads = [_valid_fc6_paddings(net.shape[axis], rate) for axis in (1, 2)]
                with tf.name_scope("fc6_pre_pad"):
                    for axis, (pre, _) in zip((1, 2), pads):
                        net = replicate_border(net, axis, *pre)
            net = slim.conv2d(net, 4096, [_FC6_KERNEL, _FC6_KERNEL], rate=rate,
                              padding=fc_conv_padding, scope="fc6")
            net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout6")
            net = slim.conv2d(net, 4096, [1, 1], scope="fc7")
            if realign:
                with tf.name_scope("fc7_aligned"):
                    for axis, (_, post) in zip((1, 2), pads):
                        net = replicate_border(net, axis, *post)
            if not base_only:
                net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout7")
                if num_classes:
                    net = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                      normalizer_fn=None, scope="fc8")
                    if spatial_squeeze:
                        net = tf.squeeze(net, [1, 2], name="fc8/squeezed")
            end_points = slim.utils.convert_collection_to_dict(end_points_collection)
            if realign:
                end_points[sc.name + "/fc7_aligned"] = net
            elif not base_only and num_classes:
                end_points[sc.name + "/fc8"] = net
            return net, end_points


vgg_16.default_image_size = 224

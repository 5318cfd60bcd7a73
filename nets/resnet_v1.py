"""ResNet v1 feature extractors: slim's bottleneck ResNet-50/101 and a torchvision-layout ResNet-18.

ResNet-50/101 follow TF-Slim exactly (variables, and numerics: tests compare
with tf_slim.nets.resnet_v1), so the public slim checkpoints restore: stride 2
sits in the LAST unit of blocks 1-3, unit scope `bottleneck_v1`.

ResNet-18 follows torchvision (basic blocks, stride 2 in the FIRST unit of
blocks 2-4, symmetric padding everywhere) so that PyTorch-converted weights
and seg-mentor's released `resnet_v1_18` checkpoint (unit scope
`res_block_v1`, from its hailo fork) restore and compute what they computed
in PyTorch.

All of them take `output_stride` (8, 16, 32): see resnet_utils.stack_blocks_dense.
"""
from utils.compat import add_arg_scope, slim, tf
from nets import resnet_utils
from nets.resnet_utils import conv2d_same, max_pool2d_same, stack_blocks_dense

resnet_arg_scope = resnet_utils.resnet_arg_scope


@add_arg_scope
def bottleneck(inputs, depth, depth_bottleneck, stride, rate=1, output_rate=1,
               outputs_collections=None, scope=None):
    """slim's bottleneck unit: 1x1 -> 3x3 (strided, atrous) -> 1x1, BN after each, projection only when depth changes.

    `output_rate` is unused: nothing after the strided 3x3 has a spatial extent.
    """
    del output_rate
    with tf.variable_scope(scope, "bottleneck_v1", [inputs]) as sc:
        depth_in = slim.utils.last_dimension(inputs.get_shape(), min_rank=4)
        if depth == depth_in:
            shortcut = resnet_utils.subsample(inputs, stride, "shortcut")
        else:
            shortcut = slim.conv2d(inputs, depth, [1, 1], stride=stride, activation_fn=None,
                                   scope="shortcut")
        residual = slim.conv2d(inputs, depth_bottleneck, [1, 1], stride=1, scope="conv1")
        residual = conv2d_same(residual, depth_bottleneck, 3, stride, rate=rate, scope="conv2")
        residual = slim.conv2d(residual, depth, [1, 1], stride=1, activation_fn=None, scope="conv3")
        output = tf.nn.relu(shortcut + residual)
        return slim.utils.collect_named_outputs(outputs_collections, sc.name, output)


@add_arg_scope
def basic_block(inputs, depth, stride, rate=1, output_rate=1, outputs_collections=None, scope=None):
    """torchvision's BasicBlock: 3x3 (strided) -> 3x3, BN after each, 1x1 projection on depth change.

    The stride is in conv1, so when it is dropped for output_stride, conv2 must
    be dilated by the stride (`output_rate`) to see what it saw before.
    """
    with tf.variable_scope(scope, "res_block_v1", [inputs]) as sc:
        depth_in = slim.utils.last_dimension(inputs.get_shape(), min_rank=4)
        if depth == depth_in:
            shortcut = resnet_utils.subsample(inputs, stride, "shortcut")
        else:
            shortcut = slim.conv2d(inputs, depth, [1, 1], stride=stride, activation_fn=None,
                                   scope="shortcut")
        residual = conv2d_same(inputs, depth, 3, stride, rate=rate, scope="conv1")
        residual = slim.conv2d(residual, depth, [3, 3], stride=1, rate=output_rate,
                               activation_fn=None, scope="conv2")
        output = tf.nn.relu(shortcut + residual)
        return slim.utils.collect_named_outputs(outputs_collections, sc.name, output)


def resnet_v1(inputs, blocks, num_classes=None, is_training=True, base_only=False,
              output_stride=None, spatial_squeeze=True, torchvision_pool=False,
              reuse=None, scope=None):
    """Generic ResNet v1: root block (7x7/2 conv, 3x3/2 max pool), `blocks`, optional head.

    base_only: return the last block's output (stride `output_stride`) and
      create no head variables.  Otherwise: global average pool, then (if
      num_classes) a 1x1 `logits` conv, squeezed to [N, num_classes].
    torchvision_pool: pad the root max pool symmetrically (torchvision)
      instead of slim's 'SAME' (which pads only after on even inputs).
    """
    resnet_utils.check_output_stride(output_stride, scope or "resnet_v1")
    with tf.variable_scope(scope, "resnet_v1", [inputs], reuse=reuse) as sc:
        end_points_collection = sc.original_name_scope + "_end_points"
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, max_pool2d_same, bottleneck,
                             basic_block, stack_blocks_dense],
                            outputs_collections=end_points_collection), \
                slim.arg_scope([slim.batch_norm], is_training=is_training):
            net = conv2d_same(inputs, 64, 7, stride=2, scope="conv1")
            if torchvision_pool:
                net = max_pool2d_same(net, 3, 2, scope="pool1")
            else:
                net = slim.max_pool2d(net, [3, 3], stride=2, scope="pool1")
            # The root block already strides by 4.
            block_stride = None if output_stride is None else output_stride // 4
            net = stack_blocks_dense(net, blocks, block_stride)
            pooled = None
            if not base_only:
                net = pooled = tf.reduce_mean(net, [1, 2], keepdims=True, name="pool5")
                if num_classes:
                    net = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                      normalizer_fn=None, scope="logits")
                    if spatial_squeeze:
                        net = tf.squeeze(net, [1, 2], name="SpatialSqueeze")
            end_points = slim.utils.convert_collection_to_dict(end_points_collection)
            if pooled is not None:
                end_points[sc.name + "/global_pool"] = pooled
                if num_classes:
                    end_points["predictions"] = slim.softmax(net, scope="predictions")
            return net, end_points


def bottleneck_block(scope, base_depth, num_units, stride):
    """slim layout: `num_units` bottlenecks of depth 4*base_depth, the stride in the LAST one."""
    unit = {"depth": base_depth * 4, "depth_bottleneck": base_depth}
    return resnet_utils.Block(scope, bottleneck,
                              [dict(unit, stride=1)] * (num_units - 1) + [dict(unit, stride=stride)])


def basic_block_group(scope, depth, num_units, stride):
    """torchvision layout: `num_units` basic blocks, the stride in the FIRST one."""
    return resnet_utils.Block(scope, basic_block,
                              [{"depth": depth, "stride": stride}]
                              + [{"depth": depth, "stride": 1}] * (num_units - 1))


def resnet_v1_18(inputs, num_classes=1000, is_training=True, base_only=False, output_stride=None,
                 spatial_squeeze=True, reuse=None, scope="resnet_v1_18"):
    """ResNet-18 (torchvision layout, seg-mentor naming); blocks end at strides 4/8/16/32."""
    blocks = [
        basic_block_group("block1", 64, 2, stride=1),
        basic_block_group("block2", 128, 2, stride=2),
        basic_block_group("block3", 256, 2, stride=2),
        basic_block_group("block4", 512, 2, stride=2),
    ]
    return resnet_v1(inputs, blocks, num_classes, is_training, base_only, output_stride,
                     spatial_squeeze, torchvision_pool=True, reuse=reuse, scope=scope)


def resnet_v1_34(inputs, num_classes=1000, is_training=True, base_only=False, output_stride=None,
                 spatial_squeeze=True, reuse=None, scope="resnet_v1_34"):
    """ResNet-34 (torchvision layout, the conventions of resnet_v1_18): [3, 4, 6, 3] basic blocks."""
    blocks = [
        basic_block_group("block1", 64, 3, stride=1),
        basic_block_group("block2", 128, 4, stride=2),
        basic_block_group("block3", 256, 6, stride=2),
        basic_block_group("block4", 512, 3, stride=2),
    ]
    return resnet_v1(inputs, blocks, num_classes, is_training, base_only, output_stride,
                     spatial_squeeze, torchvision_pool=True, reuse=reuse, scope=scope)


def resnet_v1_50(inputs, num_classes=1000, is_training=True, base_only=False, output_stride=None,
                 spatial_squeeze=True, reuse=None, scope="resnet_v1_50"):
    """slim ResNet-50: [3, 4, 6, 3] bottleneck units."""
    blocks = [
        bottleneck_block("block1", 64, 3, stride=2),
        bottleneck_block("block2", 128, 4, stride=2),
        bottleneck_block("block3", 256, 6, stride=2),
        bottleneck_block("block4", 512, 3, stride=1),
    ]
    return resnet_v1(inputs, blocks, num_classes, is_training, base_only, output_stride,
                     spatial_squeeze, reuse=reuse, scope=scope)


def resnet_v1_101(inputs, num_classes=1000, is_training=True, base_only=False, output_stride=None,
                  spatial_squeeze=True, reuse=None, scope="resnet_v1_101"):
    """slim ResNet-101: [3, 4, 23, 3] bottleneck units."""
    blocks = [
        bottleneck_block("block1", 64, 3, stride=2),
        bottleneck_block("block2", 128, 4, stride=2),
        bottleneck_block("block3", 256, 23, stride=2),
        bottleneck_block("block4", 512, 3, stride=1),
    ]
    return resnet_v1(inputs, blocks, num_classes, is_training, base_only, output_stride,
                     spatial_squeeze, reuse=reuse, scope=scope)


for _fn in (resnet_v1_18, resnet_v1_34, resnet_v1_50, resnet_v1_101):
    _fn.default_image_size = 224

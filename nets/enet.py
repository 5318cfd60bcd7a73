"""ENet's encoder (Paszke et al., 2016): initial block and bottleneck stages 1-3, trained from scratch.

    initial        3x3/2 conv (13 maps) next to a 2x2/2 max pool of the image (3), batch norm, PReLU: 16 @ /2
    stage 1        bottleneck1_0 downsamples to 64 @ /4, bottleneck1_1..1_4 regular (spatial dropout 0.01)
    stage 2        bottleneck2_0 downsamples to 128 @ /8, then regular / dilated 2 / asymmetric 5 /
                   dilated 4 / regular / dilated 8 / asymmetric 5 / dilated 16 (spatial dropout 0.1)
    stage 3        stage 2 again without bottleneck2_0

A bottleneck: main branch identity (downsampling: 2x2 max pool, zero channels
appended); extension 1x1 projection to depth/4 (downsampling: 2x2/2 conv),
the main conv (3x3, dilated 3x3, or 5x1 then 1x5), 1x1 expansion, each with
batch norm, PReLU after the first two, spatial dropout; PReLU after the sum.
Layer for layer the authors' Torch model (e-lab/ENet-training), without the
conv biases it keeps in front of batch norms (they change nothing; ~700 parameters).

ENet never downsamples beyond stride 8: the taps at nominal strides 16 and 32
(ends of stages 2 and 3) are at stride 8, as a dilated encoder's are, so any
`output_stride` (8, 16, 32) gives the same net.  The downsampling pools can
record their argmax (`pool_indices`), which ENet's decoder unpools with
(decoders/enet.py).  The encoder alone with `num_classes` (not base_only) ends
in a 1x1 `logits` conv at stride 8, the paper's encoder-only training stage.
"""
from utils.compat import add_arg_scope, slim, tf
from nets import resnet_utils
from nets.dropout import dropout
from nets.pooling import max_pool_2x2

STAGE_2 = (("regular", 1), ("dilated", 2), ("asymmetric", 5), ("dilated", 4),
           ("regular", 1), ("dilated", 8), ("asymmetric", 5), ("dilated", 16))
INITIAL_CONV_DEPTH = 13


def enet_arg_scope(weight_decay=2e-4, batch_norm_decay=0.9, batch_norm_epsilon=1e-3):
    """Convs without activation (PReLU is applied by hand) and batch norm; Torch's BN momentum and epsilon."""
    batch_norm_params = {"decay": batch_norm_decay, "epsilon": batch_norm_epsilon, "scale": True, "fused": True,
                         "updates_collections": resnet_utils.batch_norm_updates()}
    with slim.arg_scope([slim.conv2d, slim.conv2d_transpose],
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        weights_initializer=slim.variance_scaling_initializer(),
                        activation_fn=None, normalizer_fn=slim.batch_norm, normalizer_params=batch_norm_params):
        with slim.arg_scope([slim.batch_norm], **batch_norm_params) as scope:
            return scope


def prelu(net, scope="prelu"):
    """Parametric ReLU, one slope per channel initialised to 0.25 (He et al., 2015), no weight decay."""
    with tf.variable_scope(scope):
        alpha = slim.model_variable("alpha", shape=[int(net.shape[-1])], initializer=tf.constant_initializer(0.25))
        return tf.nn.relu(net) - alpha * tf.nn.relu(-net)


def spatial_dropout(net, drop_rate, is_training, scope="spatial_dropout"):
    """Drops whole channels (one mask value per image and channel); stateless, as nets/dropout.py says why."""
    return dropout(net, 1.0 - drop_rate, is_training, whole_channels=True, scope=scope)


@add_arg_scope
def initial_block(inputs, pool_indices, outputs_collections=None, scope="initial"):
    with tf.variable_scope(scope) as sc:
        conv = slim.conv2d(inputs, INITIAL_CONV_DEPTH, 3, stride=2, normalizer_fn=None, biases_initializer=None,
                           scope="conv")
        pooled = max_pool_2x2(inputs, "pool", record=pool_indices, stride=1)
        net = prelu(slim.batch_norm(tf.concat([conv, pooled], axis=3)))
        return slim.utils.collect_named_outputs(outputs_collections, sc.name, net)


@add_arg_scope
def bottleneck(net, depth, is_training, drop_rate, kind="regular", size=1, downsample=False, pool_indices=None,
               stride=None, outputs_collections=None, scope=None):
    """One ENet bottleneck; `size` is the dilation (dilated) or the kernel length (asymmetric).

    downsample: halve the resolution, recording the main branch's pool in `pool_indices[stride]`.
    """
    internal = depth // 4
    with tf.variable_scope(scope) as sc:
        main = net
        if downsample:
            main = max_pool_2x2(net, "pool", record=pool_indices, stride=stride)
            extra = depth - int(net.shape[-1])
            main = tf.pad(main, [[0, 0], [0, 0], [0, 0], [0, extra]]) if extra else main
            ext = slim.conv2d(net, internal, 2, stride=2, scope="reduce")
        else:
            ext = slim.conv2d(net, internal, 1, scope="reduce")
        ext = prelu(ext, "reduce_prelu")
        if kind == "asymmetric":
            ext = slim.conv2d(ext, internal, [size, 1], normalizer_fn=None, biases_initializer=None,
                              scope="conv_%dx1" % size)
            ext = slim.conv2d(ext, internal, [1, size], scope="conv_1x%d" % size)
        else:
            ext = slim.conv2d(ext, internal, 3, rate=size if kind == "dilated" else 1, scope="conv")
        ext = prelu(ext, "conv_prelu")
        ext = slim.conv2d(ext, depth, 1, scope="expand")
        ext = spatial_dropout(ext, drop_rate, is_training)
        net = prelu(main + ext, "out_prelu")
        return slim.utils.collect_named_outputs(outputs_collections, sc.name, net)


def enet(inputs, num_classes=None, is_training=True, base_only=False, output_stride=None, pool_indices=None,
         reuse=None, scope="enet"):
    """ENet's encoder; returns (stage 3's output at stride 8 or, with num_classes, its logits, end_points).

    pool_indices: a dict to receive {1, 2, 4: PoolIndices} of the initial block's and the two
    downsampling bottlenecks' pools.
    """
    resnet_utils.check_output_stride(output_stride, scope)
    with tf.variable_scope(scope, "enet", [inputs], reuse=reuse) as sc:
        collection = sc.original_name_scope + "_end_points"
        with slim.arg_scope([initial_block, bottleneck], outputs_collections=collection), \
                slim.arg_scope([slim.batch_norm], is_training=is_training):
            net = initial_block(inputs, pool_indices)
            net = bottleneck(net, 64, is_training, 0.01, downsample=True, pool_indices=pool_indices, stride=2,
                             scope="bottleneck1_0")
            for i in range(1, 5):
                net = bottleneck(net, 64, is_training, 0.01, scope="bottleneck1_%d" % i)
            net = bottleneck(net, 128, is_training, 0.1, downsample=True, pool_indices=pool_indices, stride=4,
                             scope="bottleneck2_0")
            for stage in (2, 3):
                for i, (kind, size) in enumerate(STAGE_2, start=1):
                    net = bottleneck(net, 128, is_training, 0.1, kind, size, scope="bottleneck%d_%d" % (stage, i))
            if not base_only and num_classes:
                net = slim.conv2d(net, num_classes, 1, normalizer_fn=None, biases_initializer=tf.zeros_initializer(),
                                  scope="logits")
            return net, slim.utils.convert_collection_to_dict(collection)


enet.default_image_size = 512

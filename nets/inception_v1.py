"""Inception v1 (GoogLeNet with batch norm), variable-compatible with TF-Slim's checkpoint.

Written table-driven: each Mixed block is four branches (1x1 | 1x1->3x3 |
1x1->3x3 | 3x3 max pool->1x1) whose depths are listed in _MIXED.  The
checkpoint calls the 3x3 conv of Mixed_5b/Branch_2 `Conv2d_0a_3x3` (every
other block says `Conv2d_0b_3x3`); the quirk is kept so the checkpoint restores.

output_stride 8/16: MaxPool_4a_3x3 / MaxPool_5a_2x2 lose their stride
(max_pool2d_dense keeps their windows), and every later 3x3 conv and 3x3
branch pool is dilated, so the weights see the same neighbourhoods.
"""
import contextlib

from utils.compat import slim, tf
from nets import heads, resnet_utils
from nets.resnet_utils import max_pool2d_dense

# name: (branch_0 1x1, (branch_1 1x1, 3x3), (branch_2 1x1, 3x3), branch_3 1x1 after pool)
_MIXED = {
    "Mixed_3b": (64, (96, 128), (16, 32), 32),
    "Mixed_3c": (128, (128, 192), (32, 96), 64),
    "Mixed_4b": (192, (96, 208), (16, 48), 64),
    "Mixed_4c": (160, (112, 224), (24, 64), 64),
    "Mixed_4d": (128, (128, 256), (24, 64), 64),
    "Mixed_4e": (112, (144, 288), (32, 64), 64),
    "Mixed_4f": (256, (160, 320), (32, 128), 128),
    "Mixed_5b": (256, (160, 320), (32, 128), 128),
    "Mixed_5c": (384, (192, 384), (48, 128), 128),
}
# Layers after the stem (Conv2d_1a .. MaxPool_3a, stride 8): pools are (name, kernel), blocks are names.
_LAYERS = (
    "Mixed_3b", "Mixed_3c",
    ("MaxPool_4a_3x3", 3),
    "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f",
    ("MaxPool_5a_2x2", 2),
    "Mixed_5b", "Mixed_5c",
)


def _mixed(net, depths, rate, scope):
    """One Inception module; `rate` dilates its 3x3 convs and its 3x3 pool."""
    d0, (d1a, d1b), (d2a, d2b), d3 = depths
    branch_2_3x3 = "Conv2d_0a_3x3" if scope == "Mixed_5b" else "Conv2d_0b_3x3"  # checkpoint quirk
    with tf.variable_scope(scope):
        with tf.variable_scope("Branch_0"):
            branch_0 = slim.conv2d(net, d0, [1, 1], scope="Conv2d_0a_1x1")
        with tf.variable_scope("Branch_1"):
            branch_1 = slim.conv2d(net, d1a, [1, 1], scope="Conv2d_0a_1x1")
            branch_1 = slim.conv2d(branch_1, d1b, [3, 3], rate=rate, scope="Conv2d_0b_3x3")
        with tf.variable_scope("Branch_2"):
            branch_2 = slim.conv2d(net, d2a, [1, 1], scope="Conv2d_0a_1x1")
            branch_2 = slim.conv2d(branch_2, d2b, [3, 3], rate=rate, scope=branch_2_3x3)
        with tf.variable_scope("Branch_3"):
            if rate == 1:
                branch_3 = slim.max_pool2d(net, [3, 3], scope="MaxPool_0a_3x3")
            else:
                branch_3 = max_pool2d_dense(net, 3, 1, rate=rate, scope="MaxPool_0a_3x3")
            branch_3 = slim.conv2d(branch_3, d3, [1, 1], scope="Conv2d_0b_1x1")
        return tf.concat([branch_0, branch_1, branch_2, branch_3], 3)


def inception_v1_base(inputs, output_stride=None, scope="InceptionV1"):
    """Conv2d_1a_7x7 .. Mixed_5c; returns (net, end_points) with slim's bare end-point names."""
    end_points = {}
    # scope=None: build in the current scope (the full net already opened it).
    with tf.variable_scope(scope, "InceptionV1", [inputs]) if scope else contextlib.nullcontext():
        with slim.arg_scope([slim.conv2d], weights_initializer=tf.truncated_normal_initializer(stddev=0.01)), \
                slim.arg_scope([slim.conv2d, slim.max_pool2d], stride=1, padding="SAME"):
            net = end_points["Conv2d_1a_7x7"] = slim.conv2d(inputs, 64, [7, 7], stride=2, scope="Conv2d_1a_7x7")
            net = end_points["MaxPool_2a_3x3"] = slim.max_pool2d(net, [3, 3], stride=2, scope="MaxPool_2a_3x3")
            net = end_points["Conv2d_2b_1x1"] = slim.conv2d(net, 64, [1, 1], scope="Conv2d_2b_1x1")
            net = end_points["Conv2d_2c_3x3"] = slim.conv2d(net, 192, [3, 3], scope="Conv2d_2c_3x3")
            net = end_points["MaxPool_3a_3x3"] = slim.max_pool2d(net, [3, 3], stride=2, scope="MaxPool_3a_3x3")
            current_stride, rate = 8, 1
            for layer in _LAYERS:
                if isinstance(layer, str):
                    net = _mixed(net, _MIXED[layer], rate, layer)
                    name = layer
                else:
                    name, kernel = layer
                    if output_stride is not None and current_stride == output_stride:
                        net = max_pool2d_dense(net, kernel, 2, rate=rate, scope=name)
                        rate *= 2
                    else:
                        net = slim.max_pool2d(net, [kernel, kernel], stride=2, scope=name)
                        current_stride *= 2
                end_points[name] = net
    return net, end_points


def inception_v1(inputs, num_classes=1001, is_training=True, base_only=False, output_stride=None,
                 dropout_keep_prob=0.8, spatial_squeeze=True, reuse=None, scope="InceptionV1"):
    """Inception v1.  base_only: Mixed_5c (1024 channels, no Logits variables); else
    global average pool, dropout and the `Logits/Conv2d_0c_1x1` classifier."""
    resnet_utils.check_output_stride(output_stride, scope)
    with tf.variable_scope(scope, "InceptionV1", [inputs], reuse=reuse):
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v1_base(inputs, output_stride, scope=None)
            if base_only:
                return net, end_points
            return heads.pooled_conv_classifier(net, end_points, num_classes, dropout_keep_prob, spatial_squeeze,
                                                "AvgPool_0a_7x7", "Dropout_0b", "Conv2d_0c_1x1")


inception_v1.default_image_size = 224


def inception_v1_arg_scope(weight_decay=0.00004, use_batch_norm=True,
                           batch_norm_var_collection="moving_vars", batch_norm_decay=0.9997):
    """slim's Inception v1 defaults: BN (decay 0.9997, eps 1e-3, no gamma: scale=False), fused."""
    batch_norm_params = {
        "decay": batch_norm_decay,
        "epsilon": 0.001,
        "fused": True,
        "updates_collections": resnet_utils.batch_norm_updates(),
        "variables_collections": {
            "beta": None,
            "gamma": None,
            "moving_mean": [batch_norm_var_collection],
            "moving_variance": [batch_norm_var_collection],
        },
    }
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(weight_decay)):
        with slim.arg_scope([slim.conv2d],
                            weights_initializer=slim.variance_scaling_initializer(),
                            activation_fn=tf.nn.relu,
                            normalizer_fn=slim.batch_norm if use_batch_norm else None,
                            normalizer_params=batch_norm_params if use_batch_norm else {}):
            with slim.arg_scope([slim.batch_norm], **batch_norm_params) as arg_sc:
                return arg_sc

"""MobileNet v1 (depth multiplier 1.0), variable-compatible with the public slim checkpoint.

A 3x3/2 conv then 13 depthwise-separable layers `Conv2d_<i>_depthwise`
(3x3, BN, ReLU6) + `Conv2d_<i>_pointwise` (1x1, BN, ReLU6).  Depthwise layers
are slim.separable_conv2d with num_outputs=None, which is what names their
kernel `depthwise_weights` with shape [3, 3, in, 1].

output_stride 8/16 works as in the original models/research code: once
reached, depthwise layers get stride 1 and a growing atrous rate.
"""
import collections
import contextlib

from utils.compat import slim, tf
from nets import heads, resnet_utils

Conv = collections.namedtuple("Conv", ["kernel", "stride", "depth"])
DepthSepConv = collections.namedtuple("DepthSepConv", ["kernel", "stride", "depth"])

MOBILENET_V1_CONV_DEFS = (
    Conv([3, 3], 2, 32),
    DepthSepConv([3, 3], 1, 64),
    DepthSepConv([3, 3], 2, 128),
    DepthSepConv([3, 3], 1, 128),
    DepthSepConv([3, 3], 2, 256),
    DepthSepConv([3, 3], 1, 256),
    DepthSepConv([3, 3], 2, 512),
    DepthSepConv([3, 3], 1, 512),
    DepthSepConv([3, 3], 1, 512),
    DepthSepConv([3, 3], 1, 512),
    DepthSepConv([3, 3], 1, 512),
    DepthSepConv([3, 3], 1, 512),
    DepthSepConv([3, 3], 2, 1024),
    DepthSepConv([3, 3], 1, 1024),
)


def mobilenet_v1_base(inputs, output_stride=None, conv_defs=MOBILENET_V1_CONV_DEFS,
                      scope="MobilenetV1"):
    """Conv2d_0 .. Conv2d_13_pointwise; end points keyed by layer name (slim's bare names)."""
    end_points = {}
    # scope=None: build in the current scope (the full net already opened it).
    with tf.variable_scope(scope, "MobilenetV1", [inputs]) if scope else contextlib.nullcontext():
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d], padding="SAME"):
            current_stride, rate = 1, 1
            net = inputs
            for i, conv_def in enumerate(conv_defs):
                if output_stride is not None and current_stride == output_stride:
                    layer_stride, layer_rate = 1, rate
                    rate *= conv_def.stride
                else:
                    layer_stride, layer_rate = conv_def.stride, 1
                    current_stride *= conv_def.stride
                name = "Conv2d_%d" % i
                if isinstance(conv_def, Conv):
                    net = slim.conv2d(net, conv_def.depth, conv_def.kernel, stride=layer_stride,
                                      rate=layer_rate, scope=name)
                    end_points[name] = net
                else:
                    net = slim.separable_conv2d(net, None, conv_def.kernel, depth_multiplier=1,
                                                stride=layer_stride, rate=layer_rate,
                                                scope=name + "_depthwise")
                    end_points[name + "_depthwise"] = net
                    net = slim.conv2d(net, conv_def.depth, [1, 1], stride=1, scope=name + "_pointwise")
                    end_points[name + "_pointwise"] = net
    return net, end_points


def mobilenet_v1(inputs, num_classes=1001, is_training=True, base_only=False, output_stride=None,
                 dropout_keep_prob=0.999, spatial_squeeze=True, reuse=None, scope="MobilenetV1"):
    """MobileNet v1.  base_only: Conv2d_13_pointwise (1024 channels), no Logits variables;
    else global average pool, dropout, `Logits/Conv2d_1c_1x1`."""
    resnet_utils.check_output_stride(output_stride, scope)
    with tf.variable_scope(scope, "MobilenetV1", [inputs], reuse=reuse):
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = mobilenet_v1_base(inputs, output_stride, scope=None)
            if base_only:
                return net, end_points
            return heads.pooled_conv_classifier(net, end_points, num_classes, dropout_keep_prob, spatial_squeeze,
                                                "global_pool", "Dropout_1b", "Conv2d_1c_1x1")


mobilenet_v1.default_image_size = 224


def mobilenet_v1_arg_scope(weight_decay=0.00004, stddev=0.09, regularize_depthwise=False,
                           batch_norm_decay=0.9997, batch_norm_epsilon=0.001):
    """models/research defaults: ReLU6, BN with gamma, fused; no L2 on depthwise kernels by default."""
    batch_norm_params = resnet_utils.batch_norm_params(batch_norm_decay, batch_norm_epsilon, center=True)
    regularizer = slim.l2_regularizer(weight_decay)
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                        weights_initializer=tf.truncated_normal_initializer(stddev=stddev),
                        activation_fn=tf.nn.relu6, normalizer_fn=slim.batch_norm):
        with slim.arg_scope([slim.batch_norm], **batch_norm_params):
            with slim.arg_scope([slim.conv2d], weights_regularizer=regularizer):
                with slim.arg_scope([slim.separable_conv2d],
                                    weights_regularizer=regularizer if regularize_depthwise else None) as sc:
                    return sc

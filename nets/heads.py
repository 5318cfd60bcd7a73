"""The ImageNet classifier head shared by Inception v1 and the MobileNets (left out by base_only).

Global average pool -> dropout -> 1x1 conv `Logits/<conv_scope>` (the
checkpoint's name) -> optional squeeze; the caller's variable scope must be
the net's top scope.  Kept in one place because only the scope names differ.
"""
from utils.compat import slim, tf


def pooled_conv_classifier(net, end_points, num_classes, dropout_keep_prob, spatial_squeeze,
                           pool_name, dropout_scope, conv_scope, biases_initializer=None):
    """Returns (logits, end_points); with num_classes falsy, the pooled features instead."""
    with tf.variable_scope("Logits"):
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name=pool_name)
        end_points[pool_name] = net
        if not num_classes:
            return net, end_points
        net = slim.dropout(net, keep_prob=dropout_keep_prob, scope=dropout_scope)
        logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                             biases_initializer=biases_initializer or tf.zeros_initializer(), scope=conv_scope)
        if spatial_squeeze:
            logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
    end_points["Logits"] = logits
    end_points["Predictions"] = slim.softmax(logits, scope="Predictions")
    return logits, end_points

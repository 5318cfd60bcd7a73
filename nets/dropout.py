"""Dropout whose masks a resumed run draws again: stateless, seeded by (graph seed, layer, global step, replica).

Encoders trained from scratch (ENet, FC-DenseNet), EfficientNet's stochastic depth and decoders
(decoders/base.py `BaseFcnArch.dropout`) drop through `dropout` here, so `train.py --resume` reproduces the
uninterrupted seeded run.  The layer enters the seed as the CRC-32 of its name scope: the same in every build
of the same graph, different between layers.
"""
import zlib

from utils.compat import slim, tf


def dropout(net, keep_prob, is_training, whole_channels=False, scope="dropout", whole_examples=False):
    """Dropout while training (`is_training`: bool or scalar bool tensor), identity otherwise.

    whole_channels: drop whole feature maps, one draw per image and channel (PyTorch's Dropout2d,
    ENet's spatial dropout).  whole_examples: one draw per image, the whole tensor kept (scaled by
    1 / keep_prob) or zeroed: stochastic depth's dropped residual branch (MiT's drop path, EfficientNet's
    drop connect).
    """
    if is_training is False or keep_prob >= 1.0:
        return net
    with tf.name_scope(scope) as name:
        shape = tf.shape(net)
        noise_shape = tf.stack([shape[0], 1, 1, shape[3]]) if whole_channels else None
        if whole_examples:
            noise_shape = tf.concat([shape[:1], tf.ones_like(shape[1:])], 0)
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context is not None else 0
        layer = (tf.get_default_graph().seed or 0) * 2 ** 32 + zlib.crc32(name.encode())
        step = tf.cast(global_step(), tf.int64)
        seed = tf.stack([tf.constant(layer, tf.int64), step * 16 + tf.cast(replica, tf.int64)])
        dropped = tf.nn.experimental.stateless_dropout(net, rate=1.0 - keep_prob, seed=seed, noise_shape=noise_shape)
        return slim.utils.smart_cond(is_training, lambda: dropped, lambda: net)


def global_step():
    """The training step counter (made at the root variable scope, where training makes it, if a test builds a
    model before it exists)."""
    step = tf.train.get_global_step()
    if step is None:
        with tf.variable_scope(tf.VariableScope(reuse=tf.AUTO_REUSE, name=""), auxiliary_name_scope=False):
            step = tf.train.get_or_create_global_step()
    return step

"""Max pooling that remembers where each maximum came from, and the unpooling that puts values back there.

SegNet and ENet upsample in their decoders by *max unpooling*: every value of
a coarse map goes back to the position its encoder's 2x2 max pool took the
maximum from, the rest of the finer map is zero.  An encoder that can record
its pools (`pool_indices` argument of its net function, a dict it fills) uses
`max_pool_2x2` for each 2x2/2 pool; a decoder reads them from
`Features.pool_indices` and calls `unpool`.

    pooled = max_pool_2x2(net, "pool1", record=pool_indices, stride=1)  # pool_indices[1] = PoolIndices(...)
    finer = unpool(coarse, features.pool_indices[1])                      # the shape of net, zeros elsewhere

Keys are the stride of the pool's *input*: the stride the unpooled map has again.
"""
import dataclasses

from utils.compat import add_arg_scope, slim, tf


@dataclasses.dataclass(frozen=True)
class PoolIndices:
    """Where a 2x2 max pool took its maxima.

    argmax: int64 [N, h, w, C], flat positions in the pool's input, batch included
            (`tf.nn.max_pool_with_argmax(..., include_batch_in_index=True)`).
    input_shape: int64 tensor [N, H, W, C], the shape of the pool's input.
    static_shape: the same as far as it is known statically (a list, None where unknown).
    """
    argmax: object
    input_shape: object
    static_shape: list


@add_arg_scope
def max_pool_2x2(net, scope, record=None, stride=None, outputs_collections=None):
    """2x2/2 'SAME' max pool (Caffe's ceil mode, as slim.max_pool2d with padding 'SAME').

    record: None for a plain pool; a dict to receive `record[stride] = PoolIndices(...)`, `stride`
    being the stride of `net` w.r.t. the encoder's input.  The pooled map joins
    `outputs_collections` under the scope's name, as slim's pools do.
    """
    with tf.name_scope(scope) as name:
        if record is None:
            pooled = tf.nn.max_pool2d(net, 2, 2, "SAME")
        else:
            if stride in record:
                raise ValueError("two pools recorded at stride %s (%s)" % (stride, name))
            pooled, argmax = tf.nn.max_pool_with_argmax(net, [1, 2, 2, 1], [1, 2, 2, 1], "SAME",
                                                        include_batch_in_index=True)
            record[stride] = PoolIndices(argmax, tf.shape(net, out_type=tf.int64), net.shape.as_list())
        return slim.utils.collect_named_outputs(outputs_collections, name.rstrip("/"), pooled)


def unpool(net, indices, scope="unpool"):
    """Max unpooling: `net` (the pooled map's shape, any channels equal to the pool's) scattered back to
    the argmax positions of `indices` (a PoolIndices), zeros elsewhere.  Differentiable in `net`."""
    with tf.name_scope(scope):
        static = indices.static_shape
        shape = indices.input_shape if None in static else tf.constant(static, tf.int64)
        flat = tf.scatter_nd(tf.reshape(indices.argmax, [-1, 1]), tf.reshape(net, [-1]),
                             tf.reshape(tf.reduce_prod(shape), [1]))
        out = tf.reshape(flat, shape)
        out.set_shape(static)
        return out

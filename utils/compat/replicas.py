"""tf-slim and tf.distribute patches for building data-parallel replicas in TF1 graph mode.

What is patched, and why (utils/training/replicas.py builds the replicated step with these):
  * `all_sum` / `all_sum_no_gradient`: `ReplicaContext.all_reduce`'s custom
    gradient, in graph mode, walks from the reduced tensor back into the other
    replicas' subgraphs and fails to find their variable copies by name; these
    cut that walk with stop_gradient and supply the gradient themselves.
  * `replica_batch_norm`: swaps `tf_slim.batch_norm` for a replica-aware one
    while replicas are built (per-replica statistics with mirrored moving
    averages, or `global_moments`, the statistics of the global batch).
  * `per_thread_arg_scopes`: tf-slim keeps its arg-scope stack in one
    process-wide list; MirroredStrategy builds replicas in threads.
These are the same kind of fix as utils/compat/tf1.py's import shim: they
reach into tf-slim / TensorFlow internals, so they live together here.
"""
import contextlib
import threading

from utils.compat.tf1 import lazy_import, slim, tf

moving_averages = lazy_import("tensorflow.python.training.moving_averages")
slim_utils = lazy_import("tf_slim.layers.utils")
arg_scope_module = lazy_import("tf_slim.ops.arg_scope")

# tf.nn.fused_batch_norm raises smaller epsilons to this (a cuDNN limit); synchronised batch norm does the same.
FUSED_MIN_EPSILON = 1.001e-5


# ----------------------------------------------------------------------------- all-reduce
def _sum_across(strategy, *values):
    destinations = [v.device if isinstance(v, tf.Tensor) else v for v in values]
    return strategy.extended.batch_reduce_to(tf.distribute.ReduceOp.SUM, list(zip(values, destinations)))


def all_sum_no_gradient(tensors):
    """Sum of each tensor over all replicas, in replica context; every replica gets the totals."""
    context = tf.distribute.get_replica_context()
    return [tf.stop_gradient(t) for t in context.merge_call(_sum_across, args=tuple(tensors))]


def all_sum(tensors):
    """all_sum_no_gradient whose gradient is the all-sum of the incoming gradients (d total / d own part)."""
    @tf.custom_gradient
    def summed(*parts):
        def gradient(*upstream):
            return all_sum_no_gradient([tf.zeros_like(p) if g is None else g for p, g in zip(parts, upstream)])
        return all_sum_no_gradient(parts), gradient
    return list(summed(*tensors))


# ----------------------------------------------------------------------------- synchronised batch norm
def global_moments(x):
    """Mean and (biased) variance per channel over every replica's batch, and the global count.

    Stable in one all-reduce: each replica fills its row of an R x 2C table
    with its own mean and sum of squared deviations (zeros elsewhere), the
    all-sum gathers the table, and Chan et al.'s formula merges it.  Replicas
    hold equally many values (equal slices of one global batch).
    """
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync
    axes = list(range(x.shape.ndims - 1))
    channels = int(x.shape[-1])
    count = tf.cast(tf.size(x) // channels, tf.float32)
    local_mean = tf.reduce_mean(x, axes)
    local_m2 = tf.reduce_sum(tf.square(x - local_mean), axes)
    row = tf.one_hot(context.replica_id_in_sync_group, replicas)[:, None]
    table, = all_sum([row * tf.concat([local_mean, local_m2], 0)[None, :]])
    means, m2s = table[:, :channels], table[:, channels:]
    mean = tf.reduce_mean(means, 0)
    m2 = tf.reduce_sum(m2s, 0) + count * tf.reduce_sum(tf.square(means - mean), 0)
    total = count * replicas
    return mean, m2 / total, total


_UNSUPPORTED = {"batch_weights": None, "renorm": False, "adjustment": None, "zero_debias_moving_mean": False,
                "data_format": "NHWC"}
_IGNORED = ("fused", "renorm_clipping", "renorm_decay", "is_training")


def _replica_batch_norm(inputs, original, synchronised, **kwargs):
    """slim.batch_norm as a replica trains it; anything but training goes to slim itself.

    tf-slim takes its own fused path when updates_collections is a list (the
    nets), and a Keras layer when it is the UPDATE_OPS string (the decoders'
    arg scope).  That layer keeps its moving averages in on-read variables,
    whose every read outside the replicas (the chief's monitor, its Saver) is
    an all-reduce the other workers never join; so per-replica batch norm
    takes the fused path for both, with mirrored (locally read) averages, and
    synchronised batch norm mirrors them too.  Both paths average the unbiased
    batch variance, and so does `_batch_norm_training`.
    """
    if kwargs.get("is_training", True) is not True:
        return original(inputs, **kwargs)
    if not synchronised:
        if kwargs.get("updates_collections", tf.GraphKeys.UPDATE_OPS) is tf.GraphKeys.UPDATE_OPS:
            kwargs["updates_collections"] = [tf.GraphKeys.UPDATE_OPS]
        return original(inputs, **kwargs)
    for name, default in _UNSUPPORTED.items():
        if kwargs.get(name, default) != default:
            raise NotImplementedError("synchronised batch norm does not support %s=%r" % (name, kwargs[name]))
    return _batch_norm_training(inputs, **{k: v for k, v in kwargs.items() if k not in _UNSUPPORTED
                                          and k not in _IGNORED})


def _batch_norm_training(inputs, decay=0.999, center=True, scale=False, epsilon=0.001, activation_fn=None,
                         param_initializers=None, param_regularizers=None,
                         updates_collections="update_ops",  # = tf.GraphKeys.UPDATE_OPS
                         reuse=None, variables_collections=None, outputs_collections=None, trainable=True, scope=None):
    """Batch norm over all replicas' batches, with the variables (names, initialisers, collections)
    of tf-slim's batch norm."""
    inputs = tf.convert_to_tensor(inputs)
    initializers, regularizers = param_initializers or {}, param_regularizers or {}
    with tf.variable_scope(scope, "BatchNorm", [inputs], reuse=reuse) as sc:
        shape = inputs.shape[-1:]

        def parameter(name, default_initializer, is_trainable):
            return slim.model_variable(name, shape=shape, dtype=tf.float32,
                                       initializer=initializers.get(name, default_initializer),
                                       regularizer=regularizers.get(name), trainable=is_trainable,
                                       collections=slim_utils.get_variable_collections(variables_collections, name))

        beta = parameter("beta", tf.zeros_initializer(), trainable) if center else None
        gamma = parameter("gamma", tf.ones_initializer(), trainable) if scale else None
        with tf.variable_scope(tf.get_variable_scope()) as local_scope:
            local_scope.set_partitioner(None)
            moving_mean = parameter("moving_mean", tf.zeros_initializer(), False)
            moving_variance = parameter("moving_variance", tf.ones_initializer(), False)
        x = tf.cast(inputs, tf.float32)
        mean, variance, count = global_moments(x)
        outputs = tf.nn.batch_normalization(x, mean, variance, beta, gamma, max(epsilon, FUSED_MIN_EPSILON))
        outputs = tf.cast(outputs, inputs.dtype)
        unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
        updates = [moving_averages.assign_moving_average(moving_mean, mean, decay, zero_debias=False),
                   moving_averages.assign_moving_average(moving_variance, unbiased, decay, zero_debias=False)]
        if updates_collections is None:
            with tf.control_dependencies(updates):
                outputs = tf.identity(outputs)
        else:
            for update in updates:
                tf.add_to_collections(updates_collections, update)
        if activation_fn is not None:
            outputs = activation_fn(outputs)
        return slim_utils.collect_named_outputs(outputs_collections, sc.name, outputs)


@contextlib.contextmanager
def replica_batch_norm(synchronised):
    """While open, `slim.batch_norm` with is_training=True is `_replica_batch_norm`: synchronised
    (statistics of all replicas' batches) or per replica, always with mirrored moving averages.

    The nets and decoders look `slim.batch_norm` up when they build (as
    normalizer_fn and in their arg scopes), so swapping the module attribute
    for a function under the same arg-scope key reaches every batch norm with
    its scoped settings and its usual variable names.  Build-time only.
    """
    original = slim.batch_norm
    key = arg_scope_module.arg_scope_func_key(original)

    def batch_norm(*args, **kwargs):
        scoped = dict(arg_scope_module.current_arg_scope().get(key, {}))
        scoped.update(kwargs)
        return _replica_batch_norm(*args, original=original, synchronised=synchronised, **scoped)

    batch_norm._key_op = key
    slim.batch_norm = batch_norm
    try:
        yield
    finally:
        slim.batch_norm = original


# ----------------------------------------------------------------------------- thread-safe arg scopes
class _PerThreadStack(threading.local):
    """A list per thread (the list protocol tf-slim uses); every thread starts from the creator's items."""

    def __init__(self, initial):  # threading.local runs __init__ again, with these arguments, in each thread
        self.items = list(initial)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    def append(self, item):
        self.items.append(item)

    def pop(self, *index):
        return self.items.pop(*index)


@contextlib.contextmanager
def per_thread_arg_scopes():
    """Give each thread its own tf-slim arg-scope stack while the replicas are built.

    tf-slim keeps the stack in one process-wide list, and MirroredStrategy builds
    the replicas in threads that take turns at every merge_call (each batch norm
    has one): a replica would resume under another replica's arg scopes (its
    end-point collections, for one).  Variable and name scopes are per thread
    in TensorFlow already.
    """
    original = arg_scope_module._ARGSTACK
    arg_scope_module._ARGSTACK = _PerThreadStack(original)
    try:
        yield
    finally:
        arg_scope_module._ARGSTACK = original

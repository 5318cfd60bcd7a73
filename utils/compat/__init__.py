"""The compatibility floor: TF 1.x graph mode on TensorFlow 2.21, and every patch of TensorFlow / tf-slim internals.

    from utils.compat import slim, tf

tf1            the one place TensorFlow is imported (tf.compat.v1, graph mode), the tf-slim #24 import
               shim, quiet start-up
native_atrous  dilated 2-D convolutions as one native Conv2D (patched into nn_ops)
replicas       what building data-parallel replicas in graph mode needs patched (all-reduce gradients,
               replica batch norm, per-thread arg scopes)
session        the Session configuration every graph here runs with (threads, XLA, mixed precision)

Nothing here imports project code above this floor.
"""
from utils.compat.tf1 import slim, tf

__all__ = ["slim", "tf"]

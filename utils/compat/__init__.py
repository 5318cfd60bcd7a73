"""The compatibility floor: TF 1.x graph mode on TensorFlow 2.21, and every patch of TensorFlow / tf-slim internals.

    from utils.compat import slim, tf

tf1            the one place TensorFlow is imported (tf.compat.v1, graph mode; at first use), the tf-slim #24 import
               shim, quiet start-up, `lazy_import` and `add_arg_scope` for TensorFlow used at a module's top
backend        which CPU kernels run (oneDNN, asked for before TensorFlow loads, or Eigen) and who decided
native_atrous  dilated 2-D convolutions: one native Conv2D where the kernels run it, space-to-batch elsewhere,
               the centre tap alone when the rate reaches past the map (patched into nn_ops)
replicas       what building data-parallel replicas in graph mode needs patched (all-reduce gradients,
               replica batch norm, per-thread arg scopes)
session        the Session configuration every graph here runs with (threads, XLA, mixed precision)
machine        the CPU this runs on: model, cores, instruction-set flags and caps (no TensorFlow)
precision      the arithmetic a graph runs in (fp32, bf16, fp16), resolved from the request, CPU and kernels
software       what made a run: the project's git commit, Python / TensorFlow / tf-slim / numpy versions

Nothing here imports project code above this floor.
"""
from utils.compat.tf1 import add_arg_scope, lazy_import, slim, tf

__all__ = ["slim", "tf", "lazy_import", "add_arg_scope"]

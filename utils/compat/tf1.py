"""The one TensorFlow entry point: TF1 graph mode (`tf.compat.v1`) plus `tf_slim`.

Every other module does `from utils.compat import slim, tf`, so graph mode, the
tf-slim import shim and the log level are decided in exactly one place.

Why a shim: tf-slim 1.1.0's `batch_norm` reaches its Keras layer through
`tensorflow.python.layers.normalization`, which on TF >= 2.17 lazily imports
`tf_keras.legacy_tf_layers.normalization`.  tf_keras keeps that module under
`tf_keras.src.legacy_tf_layers`, so the first `slim.batch_norm` call dies with
ModuleNotFoundError (tf-slim issue #24, fixed upstream but never released).
We alias the module under the name TensorFlow expects before tf_slim is used.
The same kind of break hits names tf-slim takes from TensorFlow internals that
TF 2.21 moved: `framework.ops.Tensor` (now `framework.tensor`) and
`control_flow_ops.cond/case/while_loop/Assert` (now their own modules), used by
tf-slim's `smart_cond` on the fused batch-norm path among others; we restore
those aliases (`_MOVED_NAMES`) when, and only when, they are missing.

TF 1.x tensor semantics: `disable_tensor_equality` (part of TF 1.x's
`disable_v2_behavior`) makes tensors and variables hash and compare by
identity without asking "eager outside functions?" each time.  Graph mode
already answers identity, so nothing computes differently; but Keras's legacy
layers (under every slim conv and batch norm) put all global variables in a
set for each new weight, so with the check a graph's build time grew with the
square of its variable count (a ResNet-101 with seven decoders: twice as long).
And TF 1.x control flow (`disable_control_flow_v2`, also part of it): the
`tf.cond` on the is_training placeholder inside every batch norm becomes
Switch/Merge, which is what TensorFlow lowers a functional `If` to before it
runs anyway on CPUs; built directly, without two branch functions per batch
norm and their gradient functions, a training graph builds and starts faster.

oneDNN on every CPU that TensorFlow ships it for: `backend.prefer_onednn()` sets
TF_ENABLE_ONEDNN_OPTS=1 before the import unless the user set it (see backend.py).

Quiet by default: TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) and
its Python deprecation warnings are hidden.  Set SEGMENTOR_VERBOSE=1 or pass
--verbose on the command line to bring them back.
"""
import importlib
import logging
import os
import sys
import warnings

VERBOSE = os.environ.get("SEGMENTOR_VERBOSE", "") not in ("", "0") or "--verbose" in sys.argv

if not VERBOSE:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"tensorflow\..*|tf_keras\..*|tf_slim\..*|keras\..*")
    warnings.filterwarnings("ignore", message=r".*layer\.apply.*is deprecated.*")



def _import_tensorflow_quietly():
    """Import TensorFlow with stderr muted at the file-descriptor level.

    TensorFlow's C++ runtime logs through absl before absl is initialised, so
    TF_CPP_MIN_LOG_LEVEL cannot silence it; muting fd 2 for the import can.
    A failing import still raises normally once stderr is back.
    """
    if VERBOSE:
        return importlib.import_module("tensorflow.compat.v1")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        return importlib.import_module("tensorflow.compat.v1")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras = the Keras 2 that tf-slim uses (Keras 3 has no graph mode)
from utils.compat import backend  # noqa: E402  (no TensorFlow import of its own)

backend.prefer_onednn()  # oneDNN wherever TensorFlow ships it, unless the user set it (see there)
tf = _import_tensorflow_quietly()

tf.disable_eager_execution()
tf.disable_tensor_equality()
tf.disable_control_flow_v2()

if not VERBOSE:
    tf.get_logger().setLevel(logging.ERROR)
    tf.logging.set_verbosity(tf.logging.ERROR)
    try:  # absl prints "WARNING: All log messages before absl::InitializeLog()..." otherwise
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TensorFlow
        pass

# (module tf-slim imports, name it uses) -> (module that has it now, name there)
_MOVED_NAMES = {
    ("tensorflow.python.framework.ops", "Tensor"): ("tensorflow.python.framework.tensor", "Tensor"),
    ("tensorflow.python.ops.control_flow_ops", "cond"): ("tensorflow.python.ops.cond", "cond"),
    ("tensorflow.python.ops.control_flow_ops", "case"): ("tensorflow.python.ops.control_flow_case", "case"),
    ("tensorflow.python.ops.control_flow_ops", "while_loop"): ("tensorflow.python.ops.while_loop", "while_loop"),
    ("tensorflow.python.ops.control_flow_ops", "Assert"): ("tensorflow.python.ops.control_flow_assert", "Assert"),
}
_LEGACY_NAME = "tf_keras.legacy_tf_layers"
_LEGACY_HOME = "tf_keras.src.legacy_tf_layers"


def install_tf_slim_shim():
    """Make `tf_keras.legacy_tf_layers[.normalization]` importable (tf-slim issue #24), alias `ops.Tensor`.

    Returns True when an alias had to be installed, False when everything
    already imports (older or fixed TensorFlow / tf_keras), so it is a no-op there.
    """
    installed = False
    for (module_name, name), (home_name, home_attr) in _MOVED_NAMES.items():
        module = importlib.import_module(module_name)
        if not hasattr(module, name):
            setattr(module, name, getattr(importlib.import_module(home_name), home_attr))
            installed = True
    try:
        importlib.import_module(_LEGACY_NAME + ".normalization")
        return installed
    except ModuleNotFoundError:
        pass
    package = importlib.import_module(_LEGACY_HOME)
    normalization = importlib.import_module(_LEGACY_HOME + ".normalization")
    sys.modules[_LEGACY_NAME] = package
    sys.modules[_LEGACY_NAME + ".normalization"] = normalization
    return True


SHIM_INSTALLED = install_tf_slim_shim()

from utils.compat import native_atrous  # noqa: E402  (dilated convs as one native Conv2D: a fast path, see there)

native_atrous.install()

import tf_slim as slim  # noqa: E402

__all__ = ["tf", "slim", "VERBOSE", "SHIM_INSTALLED", "install_tf_slim_shim"]

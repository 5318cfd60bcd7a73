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

Imported at first use: `tf` and `slim` are stand-ins (`LazyModule`) that import
TensorFlow, with all of the above, when code first reads an attribute of
either, so importing any project module costs no TensorFlow and every command
answers `--help` and a usage error in a fraction of a second.  Modules that
need a TensorFlow module of their own (`tensor_util`, tf2onnx) take it from
`lazy_import(name)`, and net modules decorate with `add_arg_scope` instead of
`@slim.add_arg_scope`, so that those imports, too, wait for the first use and
go through this one entry point.  `load()` does it at once.
"""
import functools
import importlib
import logging
import os
import sys
import threading
import types
import warnings

from utils.compat import quiet
from utils.compat.quiet import VERBOSE

if not VERBOSE:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning,
                            module=r"tensorflow\..*|tf_keras\..*|tf_slim\..*|keras\..*")
    warnings.filterwarnings("ignore", message=r".*layer\.apply.*is deprecated.*")

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras = the Keras 2 that tf-slim uses (Keras 3 has no graph mode)
from utils.compat import backend  # noqa: E402  (no TensorFlow import of its own)

backend.prefer_onednn()  # decided now, before any import of TensorFlow, and inherited by child processes

_LOCK = threading.RLock()
_STATE = {"started": False, "done": False}
_PENDING_ARG_SCOPES = []  # (function, its stand-in) decorated by add_arg_scope before TensorFlow loaded


class LazyModule(types.ModuleType):
    """A module imported, after `load()`, when code first reads (or sets) one of its attributes.

    Setting an attribute sets it on the real module (the patches of utils/compat/replicas.py).  Dunder names
    other than __version__ do not import: introspection (pytest, inspect, pickle) must not load TensorFlow.
    """

    def __init__(self, name):
        super().__init__(name)
        self.__dict__["_lazy_module"] = None

    def _real(self):
        module = self.__dict__["_lazy_module"]
        if module is None:
            load()
            module = importlib.import_module(self.__name__)
            self.__dict__["_lazy_module"] = module
        return module

    def __getattr__(self, name):
        module = self.__dict__["_lazy_module"]
        if module is None:
            if name.startswith("__") and name.endswith("__") and name != "__version__":
                raise AttributeError(name)
            module = self._real()
        return getattr(module, name)

    def __setattr__(self, name, value):
        setattr(self._real(), name, value)

    def __delattr__(self, name):
        delattr(self._real(), name)

    def __dir__(self):
        return dir(self._real())

    def __repr__(self):
        state = "imported" if self.__dict__["_lazy_module"] is not None else "not imported yet"
        return "<lazy module %r (%s)>" % (self.__name__, state)


def lazy_import(name):
    """A TensorFlow module (or one that imports TensorFlow, like tf2onnx) imported through this entry point at
    its first use: `tensor_util = lazy_import("tensorflow.python.framework.tensor_util")`."""
    return LazyModule(name)


tf = lazy_import("tensorflow.compat.v1")
slim = lazy_import("tf_slim")


def add_arg_scope(func):
    """`@slim.add_arg_scope` for a module's top level, applied when TensorFlow loads.

    The module holds a stand-in that calls the decorated function and carries tf-slim's marks (the arg-scope
    key), so `slim.arg_scope([stand_in], ...)` works as with the original decorator.
    """
    with _LOCK:
        if _STATE["done"]:
            return slim.add_arg_scope(func)

        @functools.wraps(func)
        def scoped(*args, **kwargs):
            return scoped.arg_scoped(*args, **kwargs)

        _PENDING_ARG_SCOPES.append((func, scoped))
        return scoped


def _decorate_pending(add):
    while _PENDING_ARG_SCOPES:
        func, scoped = _PENDING_ARG_SCOPES.pop(0)
        decorated = add(func)
        scoped.__dict__.update(vars(decorated))
        scoped.arg_scoped = decorated


def load():
    """Import TensorFlow as this project uses it (graph mode, tf-slim's shim, native atrous, quiet), once.

    Runs at the first attribute read of `tf`, `slim` or a `lazy_import` module; commands that are sure to
    build a graph may call it, nothing else has to.
    """
    with _LOCK:
        if _STATE["started"]:  # done, or under way in this thread (a stand-in read while loading)
            return
        _STATE["started"] = True
        try:
            _load()
        except BaseException:
            _STATE["started"] = False  # the next use raises the same error again, not a half-made TensorFlow
            raise
        _STATE["done"] = True


def _load():
    """load()'s work: TensorFlow in TF 1.x graph mode and quiet, the shims, the pending arg scopes."""
    real_tf = _import_tensorflow_quietly()
    real_tf.disable_eager_execution()
    real_tf.disable_tensor_equality()
    real_tf.disable_control_flow_v2()
    if not VERBOSE:
        real_tf.get_logger().setLevel(logging.ERROR)
        real_tf.logging.set_verbosity(real_tf.logging.ERROR)
        try:  # absl prints "WARNING: All log messages before absl::InitializeLog()..." otherwise
            from absl import logging as absl_logging  # deferred: absl comes with TensorFlow, loaded here
            absl_logging.set_verbosity(absl_logging.ERROR)
        except ImportError:  # pragma: no cover - absl ships with TensorFlow
            pass
    global SHIM_INSTALLED
    SHIM_INSTALLED = install_tf_slim_shim()
    from utils.compat import native_atrous  # deferred: it patches TensorFlow, which is imported only now
    native_atrous.install()  # dilated convs as one native Conv2D: a fast path, see there
    _decorate_pending(importlib.import_module("tf_slim").add_arg_scope)


backend.import_tensorflow_with(load)  # backend's queries (oneDNN on? GPUs?) import TensorFlow through load()


def loaded():
    """True once TensorFlow has been imported through load()."""
    return _STATE["done"]


def __getattr__(name):
    """SHIM_INSTALLED: known once TensorFlow is loaded (PEP 562 module attribute)."""
    if name == "SHIM_INSTALLED":
        load()
        return globals()[name]
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def _import_tensorflow_quietly():
    """Import TensorFlow with stderr muted at the file-descriptor level.

    TensorFlow's C++ runtime logs through absl before absl is initialised, so
    TF_CPP_MIN_LOG_LEVEL cannot silence it; muting fd 2 for the import can.
    A failing import still raises normally, after what it logged.
    """
    with quiet.stderr_hidden():
        return importlib.import_module("tensorflow.compat.v1")


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


__all__ = ["tf", "slim", "VERBOSE", "SHIM_INSTALLED", "install_tf_slim_shim", "load", "loaded", "lazy_import",
           "add_arg_scope", "LazyModule"]

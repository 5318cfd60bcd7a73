"""Which kernels TensorFlow runs on this machine: oneDNN or Eigen on the CPU, and why.

TensorFlow 2.21 turns oneDNN on by itself only on CPUs with AVX512-VNNI,
AVX512-BF16 or AMX; elsewhere (an AVX2 CPU) Eigen's kernels run, which are
slower for training here and lack the backward pass of dilated convolutions.
So seg-mentor asks for oneDNN wherever TensorFlow ships it: `prefer_onednn()`
sets TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is first imported (utils/compat/tf1.py
calls it), unless the user set the variable, whose choice wins.

    state()     {"onednn": True, "setting": "default", "env": "1", "bf16_kernels": True, "gpus": 0}
    describe()  "oneDNN on (seg-mentor's default TF_ENABLE_ONEDNN_OPTS=1)"

Children inherit the variable; SEGMENTOR_ONEDNN_DEFAULT records that its value
is seg-mentor's default, so a child (train.py under study.py, a test's script)
still reports "default", not "your setting".

The queries (onednn_enabled, onednn_has_bf16, gpu_count) ask TensorFlow, which
utils/compat/tf1.py imports at first use: tf1 registers its `load` here
(`import_tensorflow_with`), so a query that comes first imports it the same way.
"""
import os

ENV = "TF_ENABLE_ONEDNN_OPTS"
DEFAULT = "1"
MARK = "SEGMENTOR_ONEDNN_DEFAULT"  # = the value seg-mentor set ENV to
# oneDNN instruction-set caps below its bfloat16 kernels (AVX-512 core, or AVX2 with AVX-NE-CONVERT): TensorFlow
# asks the CPU, not the cap, so under one of these its bfloat16 rewrite would meet no kernel and abort.
ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
CAPS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI")
_LOADERS = []  # utils/compat/tf1.py's load(), registered by tf1 (which imports this module, not the reverse)


def import_tensorflow_with(load):
    """Register how TensorFlow is imported (tf1.load: quiet, graph mode, the shims) before a query runs."""
    _LOADERS[:] = [load]


def _tensorflow_loaded():
    for load in _LOADERS:
        load()


def prefer_onednn(environ=os.environ):
    """Set ENV to DEFAULT unless the user set it; call before TensorFlow's C++ library loads."""
    if ENV not in environ:
        environ[ENV] = DEFAULT
        environ[MARK] = DEFAULT


def setting(environ=os.environ):
    """("default" | "user", the variable's value or None): who decided TF_ENABLE_ONEDNN_OPTS."""
    value = environ.get(ENV)
    if value is None:
        return "unset", None
    return ("default" if environ.get(MARK) == value else "user"), value


def onednn_enabled():
    """TensorFlow's own answer: are oneDNN's CPU kernels (and its graph rewrites) in use in this process?"""
    _tensorflow_loaded()
    from tensorflow.python.util import _pywrap_util_port  # deferred: TensorFlow is imported by tf1's load(), above
    return bool(_pywrap_util_port.IsMklEnabled())


def onednn_has_bf16(environ=os.environ):
    """Does TensorFlow's oneDNN run bfloat16 on this CPU (natively or emulated)?  It needs AVX-512 or
    AVX-NE-CONVERT, and no ONEDNN_MAX_CPU_ISA cap below them; without, the bfloat16 rewrite does nothing."""
    if any(environ.get(name, "").upper() in CAPS_WITHOUT_BF16 for name in ISA_CAP_VARIABLES):
        return False
    _tensorflow_loaded()
    from tensorflow.python.util import _pywrap_utils  # deferred, as above
    from tensorflow.python.framework import dtypes  # deferred, as above
    return bool(_pywrap_utils.IsDataTypeSupportedByOneDNNOnThisCPU(dtypes.bfloat16.as_datatype_enum))


def gpu_count():
    _tensorflow_loaded()
    from tensorflow.python.framework import config  # deferred, as above
    return len(config.list_physical_devices("GPU"))


def state():
    """What runargs, results.json and the benchmarks record."""
    who, value = setting()
    return {"onednn": onednn_enabled(), "setting": who, "env": value, "bf16_kernels": onednn_has_bf16(),
            "gpus": gpu_count()}


def record():
    """state() with its one-line summary: what runargs, results.json and benchmark records store."""
    current = state()
    return dict(current, summary=describe(current))


def describe_setting(current=None):
    """Who decided oneDNN: "seg-mentor's default TF_ENABLE_ONEDNN_OPTS=1", "your setting ...", or TensorFlow."""
    who, value = (current["setting"], current["env"]) if current else setting()
    if who == "default":
        return "seg-mentor's default %s=%s" % (ENV, value)
    if who == "user":
        return "your setting %s=%s" % (ENV, value)
    return "TensorFlow's own default, %s unset" % ENV


def describe(current=None):
    """One line for runlogs and benchmark output: oneDNN on or off, and who decided."""
    current = current or state()
    why = describe_setting(current)
    if current["onednn"]:
        return "oneDNN on (%s)" % why
    if current["env"] not in (None, "0", "false", "False", "FALSE"):
        why += ": this TensorFlow build or CPU has no oneDNN"
    return "oneDNN off, Eigen kernels (%s)" % why

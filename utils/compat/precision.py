"""Which arithmetic training runs in: `--mixed_precision auto|bf16|fp16|fp32`, resolved once per run.

    choice = resolve("auto")          # Precision(mode="bf16", reason="auto: the CPU has avx512_bf16 ...")

auto picks the fastest arithmetic this machine has natively, and nothing emulated:
  fp16  a visible GPU with tensor cores (compute capability >= 7.0): float16 with dynamic loss scaling
  bf16  no GPU, and the CPU reports native bfloat16 (AVX512-BF16 or AMX-BF16): oneDNN's bfloat16 rewrite
  fp32  otherwise (bfloat16 would be emulated, float16 without tensor cores gains nothing)
An explicit bf16 runs wherever TensorFlow's oneDNN has bfloat16 kernels, emulated (slower than fp32) on a CPU
without native bfloat16, and is refused in one line where it would do nothing: oneDNN off
(TF_ENABLE_ONEDNN_OPTS=0), or a CPU on which oneDNN has no bfloat16 (no AVX-512 nor AVX-NE-CONVERT: the
rewrite would silently leave the graph in float32).
Variables, the loss and the optimizer stay float32 in every mode (float32 master weights).
"""
import collections

from utils.compat import machine
from utils.compat import backend, tf

MODES = ("auto", "bf16", "fp16", "fp32")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
TENSOR_CORES = (7, 0)

Precision = collections.namedtuple("Precision", "mode reason")


def native_bf16(cpuinfo_text):
    """The flags of `cpuinfo_text` (/proc/cpuinfo) that give native bfloat16 dot products, in NATIVE_BF16_FLAGS
    order; [] when the CPU has none (oneDNN then emulates bfloat16, slower than float32)."""
    flags = machine.parse_cpuinfo(cpuinfo_text)[1]
    return [flag for flag in NATIVE_BF16_FLAGS if flag in flags]


def visible_gpus():
    """[(name, (major, minor) compute capability)] of the GPUs TensorFlow sees."""
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append((details.get("device_name", device.name), tuple(details.get("compute_capability") or (0, 0))))
    return gpus


def resolve(requested, cpuinfo_text=None, gpus=None, onednn=None, onednn_bf16=None):
    """Precision(mode in bf16/fp16/fp32, reason) for `--mixed_precision requested` on this machine (or on the
    given cpuinfo text, [(name, capability)] GPUs, oneDNN state and whether its bfloat16 kernels run on the
    CPU).  ValueError for a mode the machine cannot run.

    requested True / False are runargs written when the flag was a boolean: False is fp32, True the 16-bit
    mode of the device (fp16 on a GPU, bf16 on a CPU), as it was then."""
    if requested is False or requested == "fp32":
        return Precision("fp32", "--mixed_precision fp32")
    cpuinfo_text = machine.read_cpuinfo() if cpuinfo_text is None else cpuinfo_text
    gpus = visible_gpus() if gpus is None else list(gpus)
    if requested is True:
        requested = "fp16" if gpus else "bf16"
    if requested == "fp16":
        if not gpus:
            raise ValueError("--mixed_precision fp16 needs a GPU (TensorFlow's float16 CPU path crashes); "
                             "on a CPU use bf16, or auto")
        return Precision("fp16", "--mixed_precision fp16 on %s, with dynamic loss scaling" % _gpu_text(gpus[0]))
    native = native_bf16(cpuinfo_text)
    onednn = backend.onednn_enabled() if onednn is None else onednn
    onednn_bf16 = backend.onednn_has_bf16() if onednn_bf16 is None else onednn_bf16
    if requested == "bf16":
        if gpus:
            raise ValueError("--mixed_precision bf16 is oneDNN's CPU rewrite; on the GPU (%s) use fp16, or auto"
                             % _gpu_text(gpus[0]))
        if not onednn:
            raise ValueError("--mixed_precision bf16 is oneDNN's rewrite, and oneDNN is off here (%s): set %s=1 "
                             "(or unset it), or use fp32" % (backend.describe_setting(), backend.ENV))
        if not onednn_bf16:
            raise ValueError("--mixed_precision bf16: TensorFlow's oneDNN has no bfloat16 kernels on this CPU (they "
                             "need AVX-512 or AVX-NE-CONVERT, and no ONEDNN_MAX_CPU_ISA cap below them), so the "
                             "graph would stay float32; use fp32, or auto")
        return Precision("bf16", "--mixed_precision bf16, %s" % (
            "native: the CPU has %s" % " and ".join(native) if native
            else "emulated: the CPU has neither %s (slower than fp32)" % " nor ".join(NATIVE_BF16_FLAGS)))
    if requested != "auto":
        raise ValueError("--mixed_precision must be one of %s, got %r" % ("|".join(MODES), requested))
    if gpus:
        cores = [gpu for gpu in gpus if gpu[1] >= TENSOR_CORES]
        if cores:
            return Precision("fp16", "auto: %s has tensor cores; float16 with dynamic loss scaling"
                             % _gpu_text(cores[0]))
        return Precision("fp32", "auto: %s has no tensor cores (compute capability < %d.%d)"
                         % ((_gpu_text(gpus[0]),) + TENSOR_CORES))
    if native and onednn and onednn_bf16:
        return Precision("bf16", "auto: the CPU has %s (native bfloat16)" % " and ".join(native))
    if native:
        return Precision("fp32", "auto: the CPU has %s, but oneDNN, which runs bfloat16, is off (%s)"
                         % (" and ".join(native), backend.describe_setting()))
    return Precision("fp32", "auto: the CPU has neither %s, so bfloat16 would be emulated"
                     % " nor ".join(NATIVE_BF16_FLAGS))


def _gpu_text(gpu):
    name, capability = gpu
    return "GPU %s (compute capability %d.%d)" % ((name,) + tuple(capability[:2]))

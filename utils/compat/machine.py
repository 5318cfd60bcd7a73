"""What machine a measurement ran on: CPU model, core count and the instruction-set flags that decide speed.

Every benchmark prints this line and stores it with its numbers, so a claim about "this CPU" names the
CPU (AVX-512, AVX512-BF16 and AMX change which fast path pays off).
"""
import os
import platform

SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
# Variables that cap the instruction sets the kernels use (oneDNN in TensorFlow and PyTorch; PyTorch's own
# kernels): a measurement under a cap stands in for a CPU of that class and must say so.
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def parse_cpuinfo(text):
    """(model name, set of flags) of the first processor in /proc/cpuinfo text ("Features" on ARM)."""
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


def read_cpuinfo(path="/proc/cpuinfo"):
    """The text of /proc/cpuinfo, "" where there is none (macOS, Windows)."""
    if not os.path.isfile(path):
        return ""
    with open(path) as handle:
        return handle.read()


def cpu_info(path="/proc/cpuinfo", environ=os.environ):
    """{"model", "cores", "flags": [the SPEED_FLAGS present], "isa_caps": {cap variable: value}} (model from
    platform when /proc is absent)."""
    model, flags = parse_cpuinfo(read_cpuinfo(path))
    return {"model": model or platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "flags": [flag for flag in SPEED_FLAGS if flag in flags],
            "isa_caps": {name: environ[name] for name in ISA_CAPS if environ.get(name)}}


def describe(info=None):
    info = info or cpu_info()
    caps = info.get("isa_caps") or {}
    return "CPU: %s, %d cores, flags: %s%s" % (
        info["model"], info["cores"], " ".join(info["flags"]) or "none of %s" % ", ".join(SPEED_FLAGS),
        "; capped to stand in for another CPU class: %s" % " ".join("%s=%s" % kv for kv in sorted(caps.items()))
        if caps else "")

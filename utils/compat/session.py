"""The Session configuration every graph here runs with: training, testing, inference and benchmarks.

One function so that `--threads`, `--xla` and `--mixed_precision` mean the
same thing in train.py, test.py and bench/ (which mode `--mixed_precision auto`
becomes on a machine is decided in utils/compat/precision.py).
"""
import os

from utils.compat.tf1 import lazy_import, tf

rewriter_config_pb2 = lazy_import("tensorflow.core.protobuf.rewriter_config_pb2")


def session_config(threads=0, xla=False, precision="fp32"):
    """ConfigProto shared by training, testing and benchmarks.

    xla: XLA JIT auto-clustering, on GPUs and CPUs alike.  On the 2-core CPUs
    measured so far it was slower (README, "Performance"), so it is off by
    default; it is there for GPUs.

    precision: a resolved mode of utils/compat/precision.py.  Both 16-bit modes are
    Grappler rewrites with float32 master weights (the variables are
    untouched): "fp16" is the automatic mixed precision rewrite for GPUs (the
    dynamic loss scaling is `train_op`'s), "bf16" oneDNN's bfloat16 rewrite
    for CPUs, which pays off where the CPU has AVX512-BF16 or AMX and is
    emulated (slower) elsewhere.  TF 2.21's float16 CPU emulation
    (auto_mixed_precision_cpu) crashes, so it is not used.

    Without a GPU, Grappler's layout and memory passes are off: they rewrite
    graphs for GPUs (NCHW convolutions, swapping to host memory) and leave a
    CPU graph as it was (tests/test_session_config.py compares the optimized
    graphs), yet they take a good share of the optimization every new fetch
    signature waits for before its first run, in every process.
    """
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError("precision must be a resolved mode (fp32, bf16, fp16), got %r" % (precision,))
    config = tf.ConfigProto(allow_soft_placement=True, intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    config.gpu_options.allow_growth = True
    if xla:  # auto-clustering; TensorFlow applies it to CPUs only with --tf_xla_cpu_global_jit
        config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.ON_1
        flags = os.environ.get("TF_XLA_FLAGS", "")
        if "--tf_xla_cpu_global_jit" not in flags:
            os.environ["TF_XLA_FLAGS"] = (flags + " --tf_xla_cpu_global_jit").strip()
    rewrite = config.graph_options.rewrite_options
    if precision == "fp16":
        rewrite.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
    elif precision == "bf16":
        rewrite.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    if not tf.config.list_physical_devices("GPU"):
        skip_gpu_only_passes(rewrite)
    return config


def skip_gpu_only_passes(rewrite):
    """Turn off the Grappler passes that only change graphs placed on GPUs (layout, memory) in `rewrite`."""
    rewrite.layout_optimizer = rewriter_config_pb2.RewriterConfig.OFF
    rewrite.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT

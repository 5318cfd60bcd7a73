"""--mixed_precision auto|bf16|fp16|fp32: what each machine resolves to, that the choice is recorded, and that
bfloat16 training follows float32 training."""
import json
import os

import numpy as np
import pytest
from PIL import Image

import arch
import nets
from tests.conftest import ROOT, run_script
from utils.compat import machine, precision
from utils.compat import backend, tf
from utils.compat.session import session_config
from utils.data.spec import DataSpec
from utils.training.config import RunConfig, TrainSettings
from utils.training.step import TrainStep

# /proc/cpuinfo excerpts of the CPUs this project runs on, and of some it may
EPYC_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 fma avx512f avx512dq avx512_vnni avx512_bf16 avx512vbmi
processor\t: 1
flags\t\t: fpu sse2
"""
SAPPHIRE_RAPIDS = "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t: avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
SKYLAKE = "model name\t: Intel(R) Xeon(R) CPU @ 2.00GHz\nflags\t\t: avx2 fma avx512f avx512dq avx512_vnni\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"
EPYC_AVX2 = "model name\t: AMD EPYC\nflags\t\t: fpu sse2 fma avx avx2\n"
# (oneDNN on, oneDNN has bfloat16 kernels on the CPU): what utils/compat/backend.py reports
ONEDNN, EIGEN, ONEDNN_NO_BF16 = (True, True), (False, True), (True, False)


@pytest.mark.parametrize("text, native", [
    (EPYC_BF16, ["avx512_bf16"]), (SAPPHIRE_RAPIDS, ["avx512_bf16", "amx_bf16"]), (SKYLAKE, []),
    (GRAVITON, []), ("", [])])
def test_native_bf16_reads_the_first_processors_flags(text, native):
    assert precision.native_bf16(text) == native


@pytest.mark.parametrize("requested, cpuinfo, gpus, mode, reason", [
    ("auto", EPYC_BF16, [], "bf16", "auto: the CPU has avx512_bf16"),
    ("auto", EPYC_AVX2, [], "fp32", "bfloat16 would be emulated"),
    ("auto", SAPPHIRE_RAPIDS, [], "bf16", "avx512_bf16 and amx_bf16"),
    ("auto", SKYLAKE, [], "fp32", "bfloat16 would be emulated"),
    ("auto", EPYC_BF16, [("NVIDIA A100", (8, 0))], "fp16", "has tensor cores"),
    ("auto", SKYLAKE, [("Tesla V100", (7, 0))], "fp16", "compute capability 7.0"),
    ("auto", EPYC_BF16, [("Tesla P100", (6, 0))], "fp32", "has no tensor cores"),
    ("bf16", SKYLAKE, [], "bf16", "emulated"),
    ("bf16", EPYC_BF16, [], "bf16", "native: the CPU has avx512_bf16"),
    ("fp16", SKYLAKE, [("Tesla P100", (6, 0))], "fp16", "loss scaling"),
    ("fp32", SAPPHIRE_RAPIDS, [("NVIDIA A100", (8, 0))], "fp32", "--mixed_precision fp32"),
    (True, EPYC_BF16, [], "bf16", "native"),                           # runargs from the boolean flag
    (True, SKYLAKE, [("Tesla P100", (6, 0))], "fp16", "loss scaling"),
    (False, SAPPHIRE_RAPIDS, [], "fp32", "fp32"),
])
def test_resolve_picks_the_native_fast_arithmetic_and_says_why(requested, cpuinfo, gpus, mode, reason):
    choice = precision.resolve(requested, cpuinfo, gpus, *ONEDNN)
    assert choice.mode == mode and reason in choice.reason


def test_an_isa_cap_below_avx512_leaves_onednn_no_bfloat16_kernels():
    """TensorFlow asks the CPU, not ONEDNN_MAX_CPU_ISA: under an AVX2 cap its rewrite would abort in the kernels."""
    for cap in ("AVX2", "avx2", "AVX2_VNNI", "SSE41"):
        assert backend.onednn_has_bf16(environ={"ONEDNN_MAX_CPU_ISA": cap}) is False
    assert backend.onednn_has_bf16(environ={"DNNL_MAX_CPU_ISA": "AVX"}) is False
    assert backend.onednn_has_bf16(environ={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}) == backend.onednn_has_bf16(
        environ={})


def test_auto_is_fp32_where_onednn_is_off_even_on_a_bf16_cpu():
    choice = precision.resolve("auto", EPYC_BF16, [], *EIGEN)
    assert choice.mode == "fp32" and "oneDNN, which runs bfloat16, is off" in choice.reason


@pytest.mark.parametrize("requested, cpuinfo, gpus, kernels, message", [
    ("fp16", EPYC_BF16, [], ONEDNN, "needs a GPU"), ("bf16", EPYC_BF16, [("NVIDIA A100", (8, 0))], ONEDNN, "on the GPU"),
    ("fp8", EPYC_BF16, [], ONEDNN, "one of"),
    ("bf16", EPYC_BF16, [], EIGEN, "oneDNN is off here"),
    ("bf16", EPYC_AVX2, [], ONEDNN_NO_BF16, "no bfloat16 kernels on this CPU")])
def test_a_mode_the_machine_cannot_run_is_refused_naming_the_flag(requested, cpuinfo, gpus, kernels, message):
    with pytest.raises(ValueError, match="--mixed_precision") as error:
        precision.resolve(requested, cpuinfo, gpus, *kernels)
    assert message in str(error.value)


def test_the_resolved_precision_is_kept_in_runargs_and_not_resolved_again():
    settings = TrainSettings(mixed_precision="auto")
    assert settings.precision == precision.resolve("auto").mode and settings.precision_reason.startswith("auto:")
    elsewhere = TrainSettings.from_dict(dict(settings.__dict__, precision="bf16", precision_reason="auto: x"))
    assert (elsewhere.mixed_precision, elsewhere.precision) == ("auto", "bf16")  # the run's, not this machine's
    legacy = TrainSettings.from_dict({"mixed_precision": False})
    assert (legacy.mixed_precision, legacy.precision) == ("fp32", "fp32")


def test_train_py_records_the_choice_and_refuses_fp16_without_a_gpu(tiny_run, sample_datapath, tmp_path):
    train = json.load(open(os.path.join(tiny_run["folder"], "runargs")))["train"]
    assert train["precision"] == precision.resolve(train["mixed_precision"]).mode
    runlog = open(os.path.join(tiny_run["folder"], "runlog")).read()
    assert "precision %s (%s)" % (train["precision"], train["precision_reason"]) in runlog
    if precision.visible_gpus():
        pytest.skip("a GPU is visible: fp16 runs here")
    proc = run_script("train.py", "--datapath", sample_datapath, "--runs_root", str(tmp_path), "--dataset_family",
                      "camvid", "--pretrained", "none", "--mixed_precision", "fp16", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --mixed_precision fp16 needs a GPU (TensorFlow's float16 CPU path crashes); on a CPU use bf16, "
        "or auto"]
    assert not os.listdir(tmp_path)


def test_train_py_refuses_bf16_where_onednn_is_off(sample_datapath, tmp_path):
    """Any CPU: with TF_ENABLE_ONEDNN_OPTS=0 the bfloat16 rewrite would do nothing, so bf16 is one line, no run."""
    proc = run_script("train.py", "--datapath", sample_datapath, "--runs_root", str(tmp_path), "--dataset_family",
                      "camvid", "--pretrained", "none", "--mixed_precision", "bf16", check=False,
                      env={"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --mixed_precision bf16 is oneDNN's rewrite, and oneDNN is off here (your setting "
        "TF_ENABLE_ONEDNN_OPTS=0): set TF_ENABLE_ONEDNN_OPTS=1 (or unset it), or use fp32"], proc.stderr
    assert not os.listdir(tmp_path)


def _config(mode):
    return RunConfig(arch.ModelSpec("resnet_v1_18", "LinkNet", 12, weight_decay=1e-4),
                     TrainSettings(learnrate=1e-3, total_steps=100, mixed_precision=mode, precision=mode,
                                   precision_reason="test"),
                     DataSpec(ignore_label=11))


def _camvid_batch(size=64):
    """Two real CamVid frames and their labels, resized, preprocessed as the encoder expects."""
    names = sorted(os.listdir(os.path.join(ROOT, "data", "camvid_sample", "train")))[:2]
    images, labels = [], []
    for name in names:
        image = Image.open(os.path.join(ROOT, "data", "camvid_sample", "train", name)).resize((size, size))
        label = Image.open(os.path.join(ROOT, "data", "camvid_sample", "trainannot", name.replace(".jpg", ".png")))
        images.append(np.asarray(image, np.float32))
        labels.append(np.asarray(label.resize((size, size), Image.NEAREST), np.int32))
    return np.stack(images), np.stack(labels)


def _losses(mode, steps):
    images, labels = _camvid_batch()
    with tf.Graph().as_default():
        tf.set_random_seed(3)
        preprocessed = nets.get("resnet_v1_18").preprocess(tf.constant(images))
        step = TrainStep(preprocessed, tf.constant(labels), tf.placeholder_with_default(True, []), _config(mode))
        with tf.Session(config=session_config(2, precision=mode)) as sess:
            sess.run(tf.global_variables_initializer())
            metadata = tf.RunMetadata()
            sess.run(step.loss, options=tf.RunOptions(output_partition_graphs=True), run_metadata=metadata)
            casts = [n for g in metadata.partition_graphs for n in g.node
                     if n.op == "Cast" and n.attr["DstT"].type == tf.bfloat16.as_datatype_enum]
            scaled = [v for v in tf.global_variables() if v.op.name == "current_loss_scale"]
            return [float(sess.run([step.train_op, step.loss])[1]) for _ in range(steps)], len(casts), scaled


@pytest.mark.backend
def test_bf16_training_follows_the_fp32_losses():
    """What this machine can do, never nothing: bf16 natively where the CPU has AVX512-BF16 / AMX, emulated by
    oneDNN where it has AVX-512 only, and refused in one line where oneDNN is off or has no bfloat16 kernels."""
    onednn, kernels = backend.onednn_enabled(), backend.onednn_has_bf16()
    if not (onednn and kernels):
        with pytest.raises(ValueError) as refusal:
            precision.resolve("bf16")
        assert ("oneDNN is off here" if not onednn else "no bfloat16 kernels on this CPU") in str(refusal.value)
        assert precision.resolve("auto").mode == "fp32"
        return
    native = precision.native_bf16(machine.read_cpuinfo())
    assert ("native" if native else "emulated") in precision.resolve("bf16").reason
    fp32, fp32_casts, _ = _losses("fp32", 8)
    bf16, bf16_casts, scaled = _losses("bf16", 8)
    assert fp32_casts == 0 and bf16_casts > 20 and not scaled  # the rewrite ran; bf16 needs no loss scaling
    assert fp32[-1] < 0.8 * fp32[0] and bf16[-1] < 0.8 * bf16[0]  # both learn the batch
    np.testing.assert_allclose(bf16, fp32, rtol=0.03)  # 0.8 % apart on an AVX512-BF16 EPYC

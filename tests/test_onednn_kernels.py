"""bench/onednn_kernels.py: oneDNN's verbose lines parsed, joined across frameworks, and a real run of our side."""
import importlib.util
import json
import os
import platform
import sys

import pytest

from tests.conftest import ROOT, run_script

SPEC = importlib.util.spec_from_file_location("onednn_kernels", os.path.join(ROOT, "bench", "onednn_kernels.py"))
kernels = importlib.util.module_from_spec(SPEC)
sys.path.insert(0, os.path.join(ROOT, "bench"))  # as when it runs as a script: its sibling modules (peer.py)
try:
    SPEC.loader.exec_module(kernels)
finally:
    sys.path.remove(os.path.join(ROOT, "bench"))

# Two steps of a two-convolution net as TensorFlow reports them (stem padded explicitly: ih262, ph0) ...
OURS = """onednn_verbose,v1,info,oneDNN v3.7.3 (commit N/A)
onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:bf16::blocked:cdba::f0 dst:bf16::blocked:AcdB64a2b::f0,,,64x3x7x7,0.5
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_bf16,forward_training,src:bf16 wei:bf16 dst:bf16,attr-scratchpad:user,alg:convolution_direct,mb4_ic3oc64_ih262oh128kh7sh2dh0ph0_iw262ow128kw7sw2dw0pw0,9.0
onednn_verbose,v1,primitive,exec,cpu,convolution,jit_bf16:avx512_core_bf16,backward_weights,src:bf16 wei:bf16 dst:bf16,,alg:convolution_direct,mb4_ic64oc64_ih64oh64kh3sh1dh0ph1_iw64ow64kw3sw1dw0pw1,3.0
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_bf16,forward_training,src:bf16 wei:bf16 dst:bf16,attr-scratchpad:user,alg:convolution_direct,mb4_ic3oc64_ih262oh128kh7sh2dh0ph0_iw262ow128kw7sw2dw0pw0,4.0
onednn_verbose,v1,primitive,exec,cpu,convolution,jit_bf16:avx512_core_bf16,backward_weights,src:bf16 wei:bf16 dst:bf16,,alg:convolution_direct,mb4_ic64oc64_ih64oh64kh3sh1dh0ph1_iw64ow64kw3sw1dw0pw1,5.0
onednn_verbose,v1,primitive,exec,cpu,batch_normalization,bnorm_tbb_jit:avx512_core_bf16,forward_training,data:bf16,,flags:CH,mb4ic64ih128iw128,1.5
""".splitlines()
# ... and as PyTorch does (padding inside the kernel: ih256, ph3), one step.
PEER = """some other output
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_bf16,forward_training,src:bf16 wei:bf16 dst:bf16,attr-scratchpad:user,alg:convolution_direct,mb4_ic3oc64_ih256oh128kh7sh2dh0ph3_iw256ow128kw7sw2dw0pw3,2.0
onednn_verbose,v1,primitive,exec,cpu,convolution,jit_bf16:avx512_core_bf16,backward_weights,src:bf16 wei:bf16 dst:bf16,attr-scratchpad:user,alg:convolution_direct,mb4_ic64oc64_ih64oh64kh3sh1dh0ph1_iw64ow64kw3sw1dw0pw1,2.5
""".splitlines()


def test_parse_keeps_only_executions():
    executions = kernels.parse_verbose(OURS)
    assert [e.primitive for e in executions] == ["reorder"] + ["convolution"] * 4 + ["batch_normalization"]
    stem = executions[1]
    assert (stem.impl, stem.prop, stem.ms) == ("brg_conv_fwd:avx512_core_bf16", "forward_training", 9.0)


def test_explicit_and_inner_padding_join_to_one_problem():
    ours, theirs = kernels.parse_verbose(OURS)[1], kernels.parse_verbose(PEER)[0]
    assert ours.problem != theirs.problem
    assert kernels.problem_key(ours.problem) == kernels.problem_key(theirs.problem) == \
        "mb4 ic3 oc64 oh128 kh7 sh2 dh0 ow128 kw7 sw2 dw0"


def test_last_steps_start_at_the_stem_and_average_per_step():
    executions, kept = kernels.last_steps(kernels.parse_verbose(OURS), keep=1)
    assert kept == 1 and [e.ms for e in executions] == [4.0, 5.0, 1.5]  # the second step, with what follows it
    both, kept = kernels.last_steps(kernels.parse_verbose(OURS), keep=5)
    assert kept == 2  # capped by the steps seen; the reorder before the first step is left out
    convs, others = kernels.per_step(both, kept)
    assert convs[("forward_training", "mb4 ic3 oc64 oh128 kh7 sh2 dh0 ow128 kw7 sw2 dw0")][0] == pytest.approx(6.5)
    assert others["batch_normalization"] == pytest.approx(0.75)


def test_compare_rows_and_totals():
    ours = kernels.per_step(*kernels.last_steps(kernels.parse_verbose(OURS), keep=1))
    peer = kernels.per_step(*kernels.last_steps(kernels.parse_verbose(PEER), keep=1))
    rows = kernels.compare(ours, peer)
    stem = [r for r in rows if r.startswith("| forward_training | mb4 ic3")]
    assert stem == ["| forward_training | mb4 ic3 oc64 oh128 kh7 sh2 dh0 ow128 kw7 sw2 dw0 | 4.00 | 2.00 | 2.00 "
                    "| brg_conv_fwd:avx512_core_bf16 |"]
    assert "| **convolutions, all** | | 9.0 | 4.5 | 2.00 | |" in rows
    assert "| batch_normalization (other oneDNN) | | 1.5 | 0.0 | - | |" in rows


def test_step_time_and_the_bound_the_convolutions_set():
    assert kernels.step_ms(["onednn_verbose,...", '{"train_step_ms_median": 120.5}']) == 120.5
    assert kernels.step_ms(["no record"]) is None
    assert kernels.bound(our_convs_ms=100.0, peer_step_ms=130.0) == pytest.approx(1.3)
    assert kernels.bound(0.0, 130.0) is None


def test_the_child_reports_its_backend_and_an_off_one_stops_the_run():
    record = {"onednn": False, "setting": "user", "env": "1", "summary": "oneDNN off, Eigen kernels (...)"}
    assert kernels.onednn_state(["onednn_verbose,...", json.dumps({"backend": record}), '{"x": 1}']) == record
    assert kernels.onednn_state(["nothing"]) is None


@pytest.mark.backend
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="TensorFlow's oneDNN path is x86's")
def test_our_side_runs_and_reports_every_kind():
    """On any x86 CPU and whatever this shell set: the benchmark turns oneDNN on in its child."""
    out = run_script("bench/onednn_kernels.py", "--arch", "fcn32_r18", "--no_peer", "--steps", "3", "--keep", "2",
                     "--train_size", "64", "--train_batch", "1", "--min_ms", "0").stdout
    assert "ours: oneDNN on (forced by this benchmark: TF_ENABLE_ONEDNN_OPTS=1)" in out
    totals = {line.split("|")[1].strip(): float(line.split("|")[3]) for line in out.splitlines()
              if line.startswith("| **")}
    for kind in kernels.CONV_KINDS:
        assert totals["**%s, all**" % kind] > 0, out
    assert "mb1 ic3 oc64 oh32" in out  # the stem, at a 64 px input
    assert float(out.split("training step ms (verbose on): ours ")[1].split(",")[0]) > 0


def test_a_missing_peer_venv_names_it_and_the_way_out(tmp_path):
    proc = run_script("bench/onednn_kernels.py", "--peer_python", str(tmp_path / "no-venv" / "python"), check=False)
    assert proc.returncode != 0 and "no-venv" in proc.stderr and "--no_peer" in proc.stderr

"""bench/ stays runnable: one tiny measurement per mode, JSON keys present (no timing thresholds)."""
import json

from tests.conftest import run_script
from utils.compat import machine
from utils.compat import backend


def last_record(proc):
    return json.loads([line for line in proc.stderr.splitlines() if line.startswith("{")][-1])


def test_bench_reports_inference_training_pipeline_and_folded(sample_datapath):
    tiny = ("--basenet", "resnet_v1_18", "--extended_arch", "FCN", "--infer_size", "64x96", "--runs", "2",
            "--warmup", "1")
    proc = run_script("bench/bench.py", *tiny, "--train_size", "64", "--train_batch", "2",
                      "--pipeline", sample_datapath)
    record = last_record(proc)
    for key in ("params_m", "fwd_gmacs", "infer_ms_median", "infer_own_cores", "train_step_ms_median",
                "train_img_per_s", "pipeline_img_per_s"):
        assert key in record, key
    assert record["folded"] is True and len(record["infer_ms_all"]) == 2
    assert record["cpu"]["model"] and record["cpu"]["cores"] >= 1 and "CPU: " in proc.stdout
    assert "| resnet_v1_18_FCN |" in proc.stdout and "input pipeline:" in proc.stdout
    assert record["precision"] == "fp32" and "precision: fp32 (--mixed_precision fp32)" in proc.stdout
    assert record["backend"]["onednn"] == backend.onednn_enabled() and record["dilated_convs"] in (
        "native", "space_to_batch")
    assert "backend: %s" % record["backend"]["summary"] in proc.stdout
    unfolded = last_record(run_script("bench/bench.py", *tiny, "--no-folded", "--no_train"))
    assert unfolded["folded"] is False and len(unfolded["infer_ms_all"]) == 2 and "train_img_per_s" not in unfolded


def test_compare_peer_table_from_records(tmp_path):
    records = [
        {"arch": "fcn32_r18", "framework": "pytorch", "layout": "NCHW", "infer_ms_median": 120.0,
         "train_step_ms_median": 400.0, "fwd_gmacs": 9.5},
        {"arch": "fcn32_r18", "framework": "pytorch", "layout": "NHWC", "infer_ms_median": 90.0,
         "train_step_ms_median": 350.0},
        {"arch": "fcn32_r18", "framework": "seg-mentor/tf1", "layout": "NHWC", "infer_ms_median": 60.0,
         "train_step_ms_median": 500.0, "train_input": [4, 256, 256, 3], "fwd_gmacs": 9.48,
         "cpu": {"model": "AMD EPYC", "cores": 2, "flags": ["avx512f", "avx512_bf16"]}},
        {"arch": "fcn32_r18", "framework": "pytorch", "layout": "NCHW", "precision": "bf16", "infer_ms_median": 100.0,
         "train_step_ms_median": 300.0},
        {"arch": "fcn32_r18", "framework": "pytorch", "layout": "NHWC", "precision": "bf16", "infer_ms_median": 80.0,
         "train_step_ms_median": 320.0},
        {"arch": "fcn32_r18", "framework": "seg-mentor/tf1", "layout": "NHWC", "precision": "bf16",
         "infer_ms_median": 40.0, "train_step_ms_median": 250.0, "train_input": [4, 256, 256, 3], "fwd_gmacs": 9.48},
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    table = run_script("bench/compare_peer.py", "--table", path).stdout
    assert "CPU: AMD EPYC, 2 cores, flags: avx512f avx512_bf16" in table
    # fp32 against fp32 (records without a precision are fp32): infer 90 / 60, train 350 / 500
    assert "| fcn32_r18 | fp32 | onednn | 60 | 120 / 90 | 1.50 | 8.00 | 10.00 / 11.43 | 0.70 | 9.5 / 9.5 |" in table
    # bf16 against bf16: infer 80 / 40, train 300 / 250
    assert "| fcn32_r18 | bf16 | onednn | 40 | 100 / 80 | 2.00 | 16.00 | 13.33 / 12.50 | 1.20 | 9.5 / 9.5 |" in table
    # each side's best mode: ours bf16 250 ms, PyTorch bf16 NCHW 300 ms
    assert "| fcn32_r18 | 16.00 (bf16) | 13.33 (bf16) | 1.20 |" in table
    # --backends onednn,eigen: the Eigen record is a row of its own against the same peer numbers (train 350 / 700)
    eigen = dict(records[2], ours_backend="eigen", infer_ms_median=75.0, train_step_ms_median=700.0)
    path.write_text("\n".join(json.dumps(r) for r in records[:3] + [eigen]))
    table = run_script("bench/compare_peer.py", "--table", path).stdout
    assert "| fcn32_r18 | fp32 | eigen | 75 | 120 / 90 | 1.20 | 5.71 | 10.00 / 11.43 | 0.50 | 9.5 / 9.5 |" in table
    assert "| fcn32_r18 | fp32 | onednn | 60 |" in table
    assert "| fcn32_r18 | 8.00 (fp32, onednn) | 11.43 (fp32) | 0.70 |" in table


def test_a_benchmark_under_an_isa_cap_says_what_it_stands_in_for():
    info = machine.cpu_info(environ={"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"})
    assert info["isa_caps"] == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    assert machine.describe(info).endswith("; capped to stand in for another CPU class: ATEN_CPU_CAPABILITY=avx2 "
                                           "ONEDNN_MAX_CPU_ISA=AVX2")
    assert "capped" not in machine.describe(machine.cpu_info(environ={}))

"""bench/ stays runnable: one tiny measurement per mode, JSON keys present (no timing thresholds)."""
import json

from tests.conftest import run_script


def test_bench_reports_inference_training_pipeline_and_folded(sample_datapath):
    proc = run_script("bench/bench.py", "--basenet", "resnet_v1_18", "--extended_arch", "FCN", "--infer_size",
                      "64x96", "--train_size", "64", "--train_batch", "2", "--runs", "2", "--warmup", "1",
                      "--pipeline", sample_datapath, "--folded")
    record = json.loads([l for l in proc.stderr.splitlines() if l.startswith("{")][-1])
    for key in ("params_m", "fwd_gmacs", "infer_ms_median", "infer_own_cores", "train_step_ms_median",
                "train_img_per_s", "pipeline_img_per_s"):
        assert key in record, key
    assert record["folded"] is True and len(record["infer_ms_all"]) == 2
    assert "| resnet_v1_18_FCN |" in proc.stdout and "input pipeline:" in proc.stdout


def test_compare_peer_table_from_records(tmp_path):
    records = [
        {"arch": "fcn32_r18", "framework": "pytorch", "layout": "NCHW", "infer_ms_median": 120.0,
         "train_step_ms_median": 400.0, "fwd_gmacs": 9.5},
        {"arch": "fcn32_r18", "framework": "pytorch", "layout": "NHWC", "infer_ms_median": 90.0,
         "train_step_ms_median": 350.0},
        {"arch": "fcn32_r18", "framework": "seg-mentor/tf1", "layout": "NHWC", "infer_ms_median": 60.0,
         "train_step_ms_median": 500.0, "train_input": [4, 256, 256, 3], "fwd_gmacs": 9.48},
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    table = run_script("bench/compare_peer.py", "--table", path).stdout
    # infer ratio vs PyTorch's faster layout: 90 / 60; train ratio: 350 / 500
    assert "| fcn32_r18 | 60 | 120 / 90 | 1.50 | 8.00 | 10.00 / 11.43 | 0.70 | 9.5 / 9.5 |" in table

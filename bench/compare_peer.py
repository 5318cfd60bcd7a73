"""Ours vs the PyTorch reference (segmentation_models_pytorch) on this CPU, interleaved so the ratio is fair.

    python bench/compare_peer.py --archs linknet_r18,unet_r18,deeplabv3_r50,pspnet_r18,fcn32_r18 \
        --repeats 2 --out tmp/bench/compare.jsonl
    python bench/compare_peer.py --table tmp/bench/compare.jsonl          # Markdown table only

For each architecture and repeat it runs, back to back in one process
sequence: PyTorch NCHW, PyTorch channels-last (NHWC), then ours
(bench/bench.py), all at the same sizes, batch, classes and thread count
(peer_bench defaults: inference 1x512x512, training 4x256x256, 12 classes,
2 threads).  The table keeps, per framework and layout, the median over
repeats, and reports ratio = PyTorch time / our time against PyTorch's faster
layout (>= 1.0: we are at least as fast).  Needs ../shared/tools/peer_bench
and its venv (/tmp/peerenv, see its README); nothing is downloaded.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEER_DIR = os.path.abspath(os.path.join(ROOT, "..", "shared", "tools", "peer_bench"))
DEFAULT_ARCHS = "linknet_r18,unet_r18,fpn_r18,deeplabv3_r50,pspnet_r18,fcn32_r18"


def run_peer(arch, args, channels_last):
    command = [args.peer_python, os.path.join(PEER_DIR, "peer_bench.py"), "--archs", arch, "--runs", str(args.runs),
               "--warmup", str(args.warmup), "--threads", str(args.threads), "--retries", "0", "--no-flops"]
    if channels_last:
        command.append("--channels-last")
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=PEER_DIR)
    record = json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])
    record["layout"] = "NHWC" if channels_last else "NCHW"
    return record


def run_ours(arch, args):
    command = [sys.executable, os.path.join(HERE, "bench.py"), "--arch", arch, "--runs", str(args.runs),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    record = json.loads([l for l in out.stderr.splitlines() if l.startswith("{")][-1])
    record["layout"] = "NHWC"
    return record


def collect(args):
    records = []
    for repeat in range(args.repeats):
        for arch in args.archs.split(","):
            for label, run in (("pytorch NCHW", lambda: run_peer(arch, args, False)),
                               ("pytorch NHWC", lambda: run_peer(arch, args, True)),
                               ("ours", lambda: run_ours(arch, args))):
                record = run()
                record["repeat"] = repeat
                records.append(record)
                print("%-14s %-16s infer %8.1f ms  train %8.1f ms" % (
                    arch, label, record.get("infer_ms_median", float("nan")),
                    record.get("train_step_ms_median", float("nan"))), file=sys.stderr, flush=True)
                if args.out:
                    with open(args.out, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
    return records


def table(records):
    by = {}
    for r in records:
        key = (r["arch"], "ours" if r.get("framework", "").startswith("seg-mentor") else "pytorch " + r["layout"])
        by.setdefault(key, []).append(r)

    def med(key, field):
        values = [r[field] for r in by.get(key, []) if field in r]
        return statistics.median(values) if values else None

    lines = ["| architecture | our infer ms | PyTorch infer ms (NCHW / NHWC) | infer ratio | our train img/s "
             "| PyTorch train img/s (NCHW / NHWC) | train ratio | GMACs ours / PyTorch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for arch in dict.fromkeys(r["arch"] for r in records):
        ours_ms, ours_train = med((arch, "ours"), "infer_ms_median"), med((arch, "ours"), "train_step_ms_median")
        nchw, nhwc = (arch, "pytorch NCHW"), (arch, "pytorch NHWC")
        peer_ms = [v for v in (med(nchw, "infer_ms_median"), med(nhwc, "infer_ms_median")) if v]
        peer_train = [v for v in (med(nchw, "train_step_ms_median"), med(nhwc, "train_step_ms_median")) if v]
        batch = (by[(arch, "ours")][0].get("train_input") or [4])[0]
        gmacs = by[(arch, "ours")][0].get("fwd_gmacs")
        peer_gmacs = med(nchw, "fwd_gmacs") or reference_gmacs().get(arch)
        lines.append("| %s | %.0f | %s / %s | %.2f | %.2f | %s / %s | %.2f | %s / %s |" % (
            arch, ours_ms, _fmt(med(nchw, "infer_ms_median"), "%.0f"), _fmt(med(nhwc, "infer_ms_median"), "%.0f"),
            min(peer_ms) / ours_ms, batch * 1000.0 / ours_train,
            _fmt(_rate(batch, med(nchw, "train_step_ms_median")), "%.2f"),
            _fmt(_rate(batch, med(nhwc, "train_step_ms_median")), "%.2f"),
            min(peer_train) / ours_train, _fmt(gmacs, "%.1f"), _fmt(peer_gmacs, "%.1f")))
    return "\n".join(lines)


def reference_gmacs():
    """arch -> PyTorch GMACs from peer_bench's stored results (timing runs skip the slow FLOP count)."""
    gmacs = {}
    for path in sorted(glob.glob(os.path.join(PEER_DIR, "results-*.jsonl"))):
        for line in open(path):
            record = json.loads(line) if line.strip() else {}
            if record.get("fwd_gmacs"):
                gmacs[record["arch"]] = record["fwd_gmacs"]
    return gmacs


def _rate(batch, ms):
    return None if not ms else batch * 1000.0 / ms


def _fmt(value, pattern):
    return "-" if value is None else pattern % value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default=DEFAULT_ARCHS)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds over all architectures")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer_python", default="/tmp/peerenv/bin/python")
    parser.add_argument("--out", default=None, help="append JSON lines here")
    parser.add_argument("--table", default=None, metavar="JSONL", help="only print the table of a results file")
    args = parser.parse_args(argv)
    if args.table:
        records = [json.loads(line) for line in open(args.table) if line.strip()]
    else:
        if not os.path.isdir(PEER_DIR) or not os.path.exists(args.peer_python):
            raise SystemExit("needs %s and its venv %s (see its README)" % (PEER_DIR, args.peer_python))
        records = collect(args)
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Ours vs the PyTorch reference (segmentation_models_pytorch) on this CPU, interleaved so the ratio is fair.

    python bench/compare_peer.py --archs linknet_r18,unet_r18,deeplabv3_r50,pspnet_r18,fcn32_r18 \
        --repeats 2 --out tmp/bench/compare.jsonl
    python bench/compare_peer.py --table tmp/bench/compare.jsonl          # Markdown table only

For each architecture, repeat and precision it runs, back to back in one
process sequence: PyTorch NCHW, PyTorch channels-last (NHWC), then ours
(bench/bench.py), all at the same sizes, batch, classes and thread count
(peer_bench defaults: inference 1x512x512, training 4x256x256, 12 classes,
2 threads).  --precisions fp32,bf16 (the default where the CPU has native
bfloat16) adds the bf16 rows: PyTorch under CPU bfloat16 autocast
(bench/peer_bf16.py) against ours with --mixed_precision bf16.  The table
keeps, per framework, layout and precision, the median over repeats, and
reports ratio = PyTorch time / our time against PyTorch's faster layout in
the same precision (>= 1.0: we are at least as fast), then each side's best
mode.  --backends onednn,eigen also times ours with TensorFlow's oneDNN off
(TF_ENABLE_ONEDNN_OPTS=0: Eigen's kernels, what an AVX2 CPU ran before seg-mentor
asked for oneDNN), each backend a row against the same peer measurements.  To stand
in for an AVX2-only CPU on a newer one, cap both frameworks' kernels in this shell:
ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 (the CPU line then says so).
Needs ../shared/tools/peer_bench and its venv (/tmp/peerenv, see its README);
nothing is downloaded.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

import peer  # sibling module: bench/ is on sys.path when this runs as a script
from utils.compat import machine, precision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_ARCHS = "linknet_r18,unet_r18,fpn_r18,deeplabv3_r50,pspnet_r18,fcn32_r18"
# our backends: TF_ENABLE_ONEDNN_OPTS for the child (oneDNN is seg-mentor's default, utils/compat/backend.py)
BACKENDS = {"onednn": {"TF_ENABLE_ONEDNN_OPTS": "1", "SEGMENTOR_ONEDNN_DEFAULT": "1"},
            "eigen": {"TF_ENABLE_ONEDNN_OPTS": "0", "SEGMENTOR_ONEDNN_DEFAULT": ""}}


def run_peer(arch, args, channels_last, mode):
    command = peer.command(args.peer_python, arch, mode, args.runs, args.warmup, args.threads,
                           *(["--channels-last"] if channels_last else []))
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=peer.PEER_DIR)
    record = json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])
    record["layout"] = "NHWC" if channels_last else "NCHW"
    record["precision"] = mode
    return record


def run_ours(arch, args, mode, backend="onednn"):
    command = [sys.executable, os.path.join(HERE, "bench.py"), "--arch", arch, "--runs", str(args.runs),
               "--warmup", str(args.warmup), "--threads", str(args.threads), "--mixed_precision", mode]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT,
                         env=dict(os.environ, **BACKENDS[backend]))
    record = json.loads([l for l in out.stderr.splitlines() if l.startswith("{")][-1])
    record["layout"] = "NHWC"
    record["ours_backend"] = backend
    return record


def sides(arch, args, mode):
    """(label, measure) in the order one round runs them: the peer's two layouts, then each of our backends
    (bf16 only with oneDNN: it is oneDNN's rewrite)."""
    yield "pytorch NCHW", lambda: run_peer(arch, args, False, mode)
    yield "pytorch NHWC", lambda: run_peer(arch, args, True, mode)
    for backend in args.backends.split(","):
        if mode == "fp32" or backend == "onednn":
            yield "ours " + backend, lambda backend=backend: run_ours(arch, args, mode, backend)


def collect(args):
    records = []
    for repeat in range(args.repeats):
        for arch in args.archs.split(","):
            for mode in args.precisions.split(","):
                for label, run in sides(arch, args, mode):
                    record = run()
                    record["repeat"] = repeat
                    records.append(record)
                    print("%-14s %-5s %-16s infer %8.1f ms  train %8.1f ms" % (
                        arch, mode, label, record.get("infer_ms_median", float("nan")),
                        record.get("train_step_ms_median", float("nan"))), file=sys.stderr, flush=True)
                    if args.out:
                        with open(args.out, "a") as handle:
                            handle.write(json.dumps(record) + "\n")
    return records


def table(records):
    """Markdown: one row per architecture and precision (ours against the peer in the same precision), then
    each side's best mode per architecture; the CPU the records name first."""
    by = {}
    for r in records:
        side = ("ours " + r.get("ours_backend", "onednn") if r.get("framework", "").startswith("seg-mentor")
                else "pytorch " + r["layout"])
        by.setdefault((r["arch"], r.get("precision", "fp32"), side), []).append(r)
    backends = list(dict.fromkeys(r.get("ours_backend", "onednn") for r in records
                                  if r.get("framework", "").startswith("seg-mentor")))

    def med(key, field):
        values = [r[field] for r in by.get(key, []) if field in r]
        return statistics.median(values) if values else None

    cpu = next((r["cpu"] for r in records if r.get("cpu")), None)
    lines = [machine.describe(cpu) if cpu else "CPU: not recorded", "",
             "| architecture | precision | our backend | our infer ms | PyTorch infer ms (NCHW / NHWC) | infer ratio "
             "| our train img/s | PyTorch train img/s (NCHW / NHWC) | train ratio | GMACs ours / PyTorch |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    best = {}
    rows = dict.fromkeys((r["arch"], r.get("precision", "fp32"), backend) for r in records for backend in backends)
    for arch, mode, backend in rows:
        ours = (arch, mode, "ours " + backend)
        nchw, nhwc = (arch, mode, "pytorch NCHW"), (arch, mode, "pytorch NHWC")
        if ours not in by:
            continue
        ours_ms, ours_train = med(ours, "infer_ms_median"), med(ours, "train_step_ms_median")
        peer_ms = [v for v in (med(nchw, "infer_ms_median"), med(nhwc, "infer_ms_median")) if v]
        peer_train = [v for v in (med(nchw, "train_step_ms_median"), med(nhwc, "train_step_ms_median")) if v]
        batch = (by[ours][0].get("train_input") or [4])[0]
        gmacs = by[ours][0].get("fwd_gmacs")
        peer_gmacs = med((arch, "fp32", "pytorch NCHW"), "fwd_gmacs") or reference_gmacs().get(arch)
        entry = best.setdefault(arch, {"ours": [], "peer": [], "batch": batch})
        entry["ours"].append((ours_train, mode if len(backends) == 1 else "%s, %s" % (mode, backend)))
        if backend == backends[0]:  # the peer's measurements are the same for each of our backends
            entry["peer"].extend((ms, mode) for ms in peer_train)
        lines.append("| %s | %s | %s | %.0f | %s / %s | %s | %.2f | %s / %s | %s | %s / %s |" % (
            arch, mode, backend, ours_ms, _fmt(med(nchw, "infer_ms_median"), "%.0f"),
            _fmt(med(nhwc, "infer_ms_median"), "%.0f"),
            _fmt(min(peer_ms) / ours_ms if peer_ms else None, "%.2f"), batch * 1000.0 / ours_train,
            _fmt(_rate(batch, med(nchw, "train_step_ms_median")), "%.2f"),
            _fmt(_rate(batch, med(nhwc, "train_step_ms_median")), "%.2f"),
            _fmt(min(peer_train) / ours_train if peer_train else None, "%.2f"), _fmt(gmacs, "%.1f"),
            _fmt(peer_gmacs, "%.1f")))
    if any(len(entry["ours"]) > 1 for entry in best.values()):
        lines += ["", "| architecture | our best train img/s | PyTorch best train img/s | best-mode train ratio |",
                  "|---|---:|---:|---:|"]
        for arch, entry in best.items():
            if not entry["peer"]:
                continue
            (ours_ms, ours_mode), (peer_ms, peer_mode) = min(entry["ours"]), min(entry["peer"])
            lines.append("| %s | %.2f (%s) | %.2f (%s) | %.2f |" % (
                arch, entry["batch"] * 1000.0 / ours_ms, ours_mode, entry["batch"] * 1000.0 / peer_ms, peer_mode,
                peer_ms / ours_ms))
    return "\n".join(lines)


def reference_gmacs():
    """arch -> PyTorch GMACs from peer_bench's stored results (timing runs skip the slow FLOP count)."""
    gmacs = {}
    for path in sorted(glob.glob(os.path.join(peer.PEER_DIR, "results-*.jsonl"))):
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
    parser.add_argument("--precisions", default=None,
                        help="comma list of fp32, bf16 (default: fp32,bf16 where the CPU has native bfloat16, "
                             "else fp32)")
    parser.add_argument("--backends", default="onednn",
                        help="comma list of our backends: onednn (the default), eigen (TF_ENABLE_ONEDNN_OPTS=0)")
    parser.add_argument("--peer_python", default=peer.PEER_PYTHON)
    parser.add_argument("--out", default=None, help="append JSON lines here")
    parser.add_argument("--table", default=None, metavar="JSONL", help="only print the table of a results file")
    args = parser.parse_args(argv)
    if args.precisions is None:
        args.precisions = "fp32,bf16" if precision.native_bf16(machine.read_cpuinfo()) else "fp32"
    if set(args.precisions.split(",")) - {"fp32", "bf16"}:
        raise SystemExit("--precisions: a comma list of fp32, bf16; got %r" % args.precisions)
    if set(args.backends.split(",")) - set(BACKENDS):
        raise SystemExit("--backends: a comma list of %s; got %r" % (", ".join(BACKENDS), args.backends))
    if args.table:
        records = [json.loads(line) for line in open(args.table) if line.strip()]
    else:
        peer.require(args.peer_python)
        records = collect(args)
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())

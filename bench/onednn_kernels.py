"""Our training step and the PyTorch peer's, convolution by convolution, as oneDNN itself times them.

    python bench/onednn_kernels.py --arch pspnet_r18 --precision bf16
    python bench/onednn_kernels.py --arch fcn32_r18 --precision fp32 --inter_op 2

Both frameworks run their CPU convolutions in oneDNN.  With ONEDNN_VERBOSE=1 the
library prints, for every execution, the implementation it picked (e.g.
brg_conv_fwd:avx512_core_bf16), the propagation kind (forward_training,
backward_data, backward_weights), the problem and its time.  This runs each
side's training step in its own process (ours: the TrainStep bench/bench.py
times; the peer: peer_bench.py, or bench/peer_bf16.py for bf16, in the peer's
fastest layout, channels-last), keeps the last --keep steps, and joins the two
by (kind, problem), so a gap in the step can be told apart: a different kernel
chosen, the same kernel slower, or time spent outside the convolutions.

Ours runs with 1 inter-op thread by default, one op at a time as PyTorch runs
them (with 2, a layer's backward-data and backward-weights kernels share the 2
cores and each takes longer); the per-kind totals are then comparable with the
step times.  The verbose mode itself adds a little to every kernel, on both sides.

Our child always runs with TF_ENABLE_ONEDNN_OPTS=1 (whatever this shell set: the
kernels are what this compares), and prints TensorFlow's own word on oneDNN; where
this TensorFlow build has no oneDNN on the CPU the run stops with one line saying so.
"""
import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import time

import peer  # sibling module: bench/ is on sys.path when this runs as a script
from utils.compat import machine

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONV_KINDS = ("forward_training", "backward_data", "backward_weights")
# The problem's input size and padding are left out of the join: TensorFlow pads explicitly before a
# stride-2 'SAME' convolution (a VALID convolution on the padded input), PyTorch pads inside the kernel.
UNJOINED_DIMS = ("ih", "iw", "id", "ph", "pw", "pd")

Execution = collections.namedtuple("Execution", "primitive impl prop problem ms")


def parse_verbose(lines):
    """[Execution] of the 'onednn_verbose,...,exec,...' lines among `lines` (other lines are skipped)."""
    executions = []
    for line in lines:
        if not line.startswith("onednn_verbose") or ",exec," not in line:
            continue
        fields = line.rstrip("\n").split(",")
        at = fields.index("exec")
        try:
            ms = float(fields[-1])
        except ValueError:
            continue
        executions.append(Execution(fields[at + 2], fields[at + 3], fields[at + 4], fields[-2], ms))
    return executions


def problem_key(problem):
    """'mb4_ic64oc64_ih66oh32kh3sh2dh0ph0_iw66ow32kw3sw2dw0pw0' -> 'mb4 ic64 oc64 oh32 kh3 sh2 dh0 ow32 kw3 sw2 dw0'
    (what the convolution computes, whichever framework padded its input)."""
    dims = re.findall(r"([a-z]+)(\d+)", problem)
    return " ".join("%s%s" % (name, value) for name, value in dims if name not in UNJOINED_DIMS)


def last_steps(executions, keep):
    """The executions of the last `keep` steps: a step starts at the first convolution the run executed
    (the stem's forward), and `keep` is capped by the steps seen.  Returns (executions, steps kept)."""
    convs = [e for e in executions if e.primitive == "convolution" and e.prop in CONV_KINDS]
    if not convs:
        return [], 0
    first = (convs[0].prop, problem_key(convs[0].problem))
    starts = [i for i, e in enumerate(executions)
              if e.primitive == "convolution" and (e.prop, problem_key(e.problem)) == first]
    keep = min(keep, len(starts))
    return executions[starts[-keep]:], keep


def per_step(executions, steps):
    """({(prop, problem key): [ms per step, implementations]}, {other primitive: ms per step})."""
    convs, others = {}, collections.Counter()
    for e in executions:
        if e.primitive == "convolution" and e.prop in CONV_KINDS:
            entry = convs.setdefault((e.prop, problem_key(e.problem)), [0.0, set()])
            entry[0] += e.ms / steps
            entry[1].add(e.impl)
        else:
            others[e.primitive] += e.ms / steps
    return convs, others


def compare(ours, peer, min_ms=0.3):
    """Markdown rows joining two per_step() results: each convolution above min_ms on either side, the
    per-kind totals, then the other oneDNN primitives."""
    (our_convs, our_others), (peer_convs, peer_others) = ours, peer
    rows = ["| kind | problem (batch, channels, output, kernel, stride, dilation) | ours ms | peer ms | ours / peer "
            "| kernel ours / peer |", "|---|---|---:|---:|---:|---|"]
    keys = sorted(set(our_convs) | set(peer_convs),
                  key=lambda k: -max(our_convs.get(k, [0])[0], peer_convs.get(k, [0])[0]))
    for key in keys:
        mine, theirs = our_convs.get(key, [0.0, set()]), peer_convs.get(key, [0.0, set()])
        if max(mine[0], theirs[0]) < min_ms:
            continue
        impls = "/".join(sorted(mine[1])) or "-"
        if mine[1] != theirs[1]:
            impls += " / " + ("/".join(sorted(theirs[1])) or "-")
        rows.append("| %s | %s | %.2f | %.2f | %s | %s |" % (key[0], key[1], mine[0], theirs[0],
                                                              ratio(mine[0], theirs[0]), impls))
    for kind in CONV_KINDS:
        mine = sum(v[0] for k, v in our_convs.items() if k[0] == kind)
        theirs = sum(v[0] for k, v in peer_convs.items() if k[0] == kind)
        rows.append("| **%s, all** | | %.1f | %.1f | %s | |" % (kind, mine, theirs, ratio(mine, theirs)))
    mine, theirs = sum(v[0] for v in our_convs.values()), sum(v[0] for v in peer_convs.values())
    rows.append("| **convolutions, all** | | %.1f | %.1f | %s | |" % (mine, theirs, ratio(mine, theirs)))
    for primitive in sorted(set(our_others) | set(peer_others)):
        rows.append("| %s (other oneDNN) | | %.1f | %.1f | %s | |" % (
            primitive, our_others[primitive], peer_others[primitive], ratio(our_others[primitive],
                                                                             peer_others[primitive])))
    return rows


def step_ms(lines):
    """The training step's median ms from the JSON line a side prints (verbose on), or None."""
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return records[-1].get("train_step_ms_median") if records else None


def bound(our_convs_ms, peer_step_ms):
    """The best training ratio (peer step / our step) our step could reach if everything but its convolutions
    took no time: what the convolution kernels alone allow."""
    return peer_step_ms / our_convs_ms if our_convs_ms and peer_step_ms else None


def ratio(mine, theirs):
    return "%.2f" % (mine / theirs) if mine and theirs else "-"


def verbose_env(forced_onednn=False):
    """The sides' environment: oneDNN's verbose lines on; forced_onednn (ours): TensorFlow's oneDNN on."""
    env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="2")
    if forced_onednn:
        env.update(TF_ENABLE_ONEDNN_OPTS="1", SEGMENTOR_ONEDNN_DEFAULT="1")
    return env


def onednn_state(lines):
    """The backend record our child printed ({"onednn": ...}), or None."""
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return next((r["backend"] for r in records if "backend" in r), None)


def run_ours(args):
    command = [sys.executable, os.path.abspath(__file__), "--side", "ours", "--arch", args.arch,
               "--precision", args.precision, "--steps", str(args.steps), "--threads", str(args.threads),
               "--inter_op", str(args.inter_op), "--train_size", str(args.train_size),
               "--train_batch", str(args.train_batch), "--keep", str(args.keep), "--num_classes", str(args.num_classes)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT,
                         env=verbose_env(forced_onednn=True))
    return out.stdout.splitlines()


def run_peer(args):
    command = peer.command(args.peer_python, args.arch, args.precision, args.steps - 1, 1, args.threads,
                           "--no-infer", "--channels-last", "--train-size", str(args.train_size),
                           "--train-batch", str(args.train_batch), "--classes", str(args.num_classes))
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=peer.PEER_DIR, env=verbose_env())
    return out.stdout.splitlines()


def our_steps(args):
    """Child process: ONEDNN_VERBOSE is set, so oneDNN prints every execution of our steps to stdout."""
    # deferred: only this child loads TensorFlow, the parent only reads the two sides' output
    import arch
    import bench  # deferred, as above (a sibling script: bench/ is on sys.path when this runs as one)
    from utils.compat import precision  # deferred, as above
    from utils.compat import backend, tf  # deferred, as above
    from utils.compat.session import session_config  # deferred, as above

    print(json.dumps({"backend": backend.record()}), flush=True)
    if not backend.onednn_enabled():
        return 0  # the parent says why
    spec = arch.ModelSpec(num_classes=args.num_classes, **bench.PEER_MATCH[args.arch])
    choice = precision.resolve(args.precision)
    with tf.Graph().as_default():
        step = bench.training_step(spec, args.train_size, args.train_batch, choice)
        config = session_config(args.threads, False, choice.mode)
        config.inter_op_parallelism_threads = args.inter_op
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            times = []
            for _ in range(args.steps):
                tic = time.perf_counter()
                sess.run(step.train_op)
                times.append((time.perf_counter() - tic) * 1000.0)
    print(json.dumps({"train_step_ms_median": statistics.median(times[-args.keep:])}), flush=True)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="pspnet_r18", help="a peer_bench name, as in bench/bench.py --arch")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--steps", type=int, default=6, help="training steps each side runs")
    parser.add_argument("--keep", type=int, default=3, help="the last steps averaged (the first ones create "
                                                            "the kernels)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--inter_op", type=int, default=1, help="our inter-op threads (PyTorch runs one op at "
                                                                "a time)")
    parser.add_argument("--train_size", type=int, default=256)
    parser.add_argument("--train_batch", type=int, default=4)
    parser.add_argument("--num_classes", type=int, default=12)
    parser.add_argument("--min_ms", type=float, default=0.3, help="convolutions below this on both sides are "
                                                                  "left out of the rows (not the totals)")
    parser.add_argument("--peer_python", default=peer.PEER_PYTHON)
    parser.add_argument("--no_peer", action="store_true", help="our side only")
    parser.add_argument("--side", choices=("ours",), help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.side == "ours":
        return our_steps(args)
    if not args.no_peer:
        peer.require(args.peer_python, ", or --no_peer for our side only")
    print(machine.describe())
    our_lines = run_ours(args)
    state = onednn_state(our_lines)
    if state is None:
        sys.exit("our side printed no backend record: %s" % " | ".join(our_lines[-3:]))
    if not state["onednn"]:
        sys.exit("TensorFlow's oneDNN is off even with TF_ENABLE_ONEDNN_OPTS=1 (%s): this TensorFlow build has "
                 "no oneDNN on this CPU, so there are no oneDNN kernels to compare" % state["summary"])
    print("ours: %s" % state["summary"].replace("seg-mentor's default", "forced by this benchmark:"))
    ours, kept = last_steps(parse_verbose(our_lines), args.keep)
    if not kept:
        sys.exit("no oneDNN convolution was reported, though TensorFlow's oneDNN is on (%s)" % state["summary"])
    our_table = per_step(ours, kept)
    peer_lines = [] if args.no_peer else run_peer(args)
    peer_executions, peer_kept = last_steps(parse_verbose(peer_lines), args.keep)
    peer_table = per_step(peer_executions, peer_kept) if peer_kept else ({}, collections.Counter())
    print("%s, %s, training step %dx%dx%d, %d threads (ours: %d inter-op); oneDNN ms per step over the last %d "
          "steps (peer: %d), peer in channels-last" % (args.arch, args.precision, args.train_batch, args.train_size,
                                                      args.train_size, args.threads, args.inter_op, kept,
                                                      peer_kept))
    print("\n".join(compare(our_table, peer_table, args.min_ms)))
    our_step, peer_step = step_ms(our_lines), step_ms(peer_lines)
    our_convs = sum(v[0] for v in our_table[0].values())
    print("training step ms (verbose on): ours %s, peer %s" % (
        "%.1f" % our_step if our_step else "-", "%.1f" % peer_step if peer_step else "-"))
    best = bound(our_convs, peer_step)
    if best:
        print("our convolutions alone: %.1f ms, %.0f %% of our step; with nothing else in the step the training "
              "ratio would be at most %.2f" % (our_convs, 100.0 * our_convs / our_step, best))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a training step's time goes: op types and graph parts ranked by their share (TensorFlow's step stats).

    python bench/profile_step.py --arch pspnet_r18 --mixed_precision bf16 --steps 5 --top 20

Builds the step bench/bench.py times (utils.training.TrainStep on an in-memory batch), runs --warmup steps,
then traces --steps steps (FULL_TRACE) and sums each op's kernel time over them.  Ops run two at a time on
2 inter-op threads, so the summed op time exceeds the wall time; the shares are of the summed op time.
Parts: the forward pass by scope (encoder, decoder), its gradient (gradients/), the optimizer (Adam*), the rest.
"""
import argparse
import collections
import sys
import time

import bench  # sibling script: bench/ is on sys.path when this runs as a script
import arch
from utils.compat import machine, precision
from utils.compat import backend, tf
from utils.compat.session import session_config
from utils.flags import add_setting_flags
from utils.training.config import TrainSettings


def op_type(node_stats):
    """'Conv2DBackpropFilter' from a timeline label 'name = Conv2DBackpropFilter(a, b)'."""
    label = node_stats.timeline_label
    return label.split(" = ", 1)[1].split("(", 1)[0] if " = " in label else node_stats.node_name


def part_of(name):
    """The graph part a node belongs to: gradients/<scope>, the optimizer, or the forward scope."""
    top = name.split("/")[0]
    if top == "gradients":
        return "gradients/" + (name.split("/")[1] if "/" in name else "")
    if top.startswith("Adam"):
        return "optimizer"
    return top


def profile(spec, args, choice):
    """({op type: us}, {part: us}, {"type name": us}, wall ms per step) over args.steps traced steps."""
    by_type, by_part, by_node, wall = collections.Counter(), collections.Counter(), collections.Counter(), []
    with tf.Graph().as_default():
        step = bench.training_step(spec, args.train_size, args.train_batch, choice)
        config = session_config(args.threads, False, choice.mode)
        config.inter_op_parallelism_threads = args.inter_op if args.inter_op is not None else args.threads
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(args.warmup):
                sess.run(step.train_op)
            options = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)
            for _ in range(args.steps):
                metadata = tf.RunMetadata()
                tic = time.perf_counter()
                sess.run(step.train_op, options=options, run_metadata=metadata)
                wall.append((time.perf_counter() - tic) * 1000.0)
                for device in metadata.step_stats.dev_stats:
                    for node in device.node_stats:
                        micros = node.all_end_rel_micros
                        by_type[op_type(node)] += micros
                        by_part[part_of(node.node_name)] += micros
                        by_node["%s %s" % (op_type(node), node.node_name)] += micros
    return by_type, by_part, by_node, sorted(wall)[len(wall) // 2]


def ranked(counter, steps, top):
    total = sum(counter.values()) or 1
    return ["  %-60s %8.1f ms/step  %5.1f %%" % (key, micros / 1000.0 / steps, 100.0 * micros / total)
            for key, micros in counter.most_common(top)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="fcn32_r18", help="a peer_bench name (%s)" % ", ".join(bench.PEER_MATCH))
    parser.add_argument("--train_size", type=int, default=256)
    parser.add_argument("--train_batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="TF intra-op threads")
    parser.add_argument("--inter_op", type=int, default=None, help="TF inter-op threads (default: --threads)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--num_classes", type=int, default=12)
    parser.add_argument("--nodes", type=int, default=0, help="also list the N costliest single nodes")
    parser.add_argument("--skip", default="_MklNativeConv2D", help="node op types left out of that list (prefixes)")
    add_setting_flags(parser, TrainSettings, only=("mixed_precision",))
    args = parser.parse_args(argv)
    if args.arch not in bench.PEER_MATCH:
        parser.error("--arch: one of %s" % ", ".join(bench.PEER_MATCH))
    choice = precision.resolve(args.mixed_precision)
    spec = arch.ModelSpec(num_classes=args.num_classes, **bench.PEER_MATCH[args.arch])
    by_type, by_part, by_node, wall = profile(spec, args, choice)
    print(machine.describe())
    print("backend: %s" % backend.describe())
    print("%s, %s (%s), traced step %.0f ms (median of %d; tracing adds a little), summed op time %.0f ms"
          % (args.arch, choice.mode, choice.reason, wall, args.steps, sum(by_type.values()) / 1000.0 / args.steps))
    print("by op type:")
    print("\n".join(ranked(by_type, args.steps, args.top)))
    print("by graph part:")
    print("\n".join(ranked(by_part, args.steps, args.top)))
    if args.nodes:
        print("by node, leaving out %s:" % ", ".join(args.skip.split(",")))
        skipped = collections.Counter({k: v for k, v in by_node.items() if not k.startswith(tuple(args.skip.split(",")))})
        print("\n".join(ranked(skipped, args.steps, args.nodes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark an (encoder, decoder) on this machine with the code paths train.py and test.py run.

    python bench/bench.py --basenet resnet_v1_18 --extended_arch LinkNet --threads 2
    python bench/bench.py --arch linknet_r18,unet_r18 --json results.jsonl     # the peer-matched set

Measures, each as the median of --runs timed repetitions after --warmup:
  infer_ms      inference latency, batch 1 at --infer_size, up to full-size logits as peer_bench
                does: the graph test.py runs (frozen, batch norm folded, as --export writes it);
                --no-folded times the variable graph as trained (is_training=False)
  infer_img_s   inference throughput at --infer_batch
  train_img_s   training images/s: one full step (loss, backward, Adam, BN updates) of
                --train_batch x --train_size on an in-memory batch (utils.training.TrainStep)
Both in the arithmetic --mixed_precision resolves to on this machine (utils/compat/precision.py, as train.py).
  pipeline_img_s  input pipeline images/s at the training size (bench/bench_pipeline.py), with
                --pipeline DATAPATH
Prints a table and one JSON line per configuration (same keys as ../shared/tools/peer_bench).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

import arch
import bench_pipeline  # sibling script: bench/ is on sys.path when this runs as a script
import nets
from utils.compat import backend, native_atrous, tf
from utils.compat.session import session_config
from utils.data.dataset_info import dataset_files
from utils.data.spec import DataSpec
from utils.compat import machine, precision
from utils.flags import add_bool_flag, add_setting_flags
from utils.inference.folding import freeze_and_fold
from utils.training.config import RunConfig, TrainSettings
from utils.training.step import TrainStep

# peer_bench architecture name -> the ModelSpec (besides num_classes) doing the same job here.
PEER_MATCH = {
    "linknet_r18": dict(encoder="resnet_v1_18", decoder="LinkNet"),
    "unet_r18": dict(encoder="resnet_v1_18", decoder="UNet"),
    "fpn_r18": dict(encoder="resnet_v1_18", decoder="FPN"),
    "deeplabv3_r50": dict(encoder="resnet_v1_50", decoder="DeepLabV3", output_stride=8),
    "pspnet_r18": dict(encoder="resnet_v1_18", decoder="PSPNetLite", encoder_stride=8,
                       decoder_options={"aux_loss_weight": 0.0}),  # smp: its head, no aux
    "fcn32_r18": dict(encoder="resnet_v1_18", decoder="FCN", decoder_options={"fcn16": False}),
    "fcn32_r50": dict(encoder="resnet_v1_50", decoder="FCN", decoder_options={"fcn16": False}),
    "fcn32_mnv2": dict(encoder="mobilenet_v2", decoder="FCN", decoder_options={"fcn16": False}),
    "deeplabv3plus_r18": dict(encoder="resnet_v1_18", decoder="DeepLabV3Plus"),
    "deeplabv3plus_mnv2": dict(encoder="mobilenet_v2", decoder="DeepLabV3Plus"),
}


def _busy_ticks():
    """Busy CPU ticks of the whole machine (all processes), from /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        return sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # minus idle, iowait
    except (OSError, ValueError, IndexError):
        return None


def timed(fn, runs, warmup, probe=None):
    """Wall times (ms) of `runs` calls after `warmup`; `probe` (a dict) gets own / foreign CPU cores used.

    foreign_cores > ~0.25 means other processes competed for the CPU while timing:
    on a 2-core machine that disturbs the numbers a lot, rerun.
    """
    for _ in range(warmup):
        fn()
    times = []
    wall0, own0, busy0 = time.perf_counter(), time.process_time(), _busy_ticks()
    for _ in range(runs):
        tic = time.perf_counter()
        fn()
        times.append((time.perf_counter() - tic) * 1000.0)
    wall, own, busy1 = time.perf_counter() - wall0, time.process_time() - own0, _busy_ticks()
    if probe is not None:
        probe["own_cores"] = round(own / wall, 2)
        if busy0 is not None and busy1 is not None:
            ticks = os.sysconf("SC_CLK_TCK")
            probe["foreign_cores"] = round(max(0.0, (busy1 - busy0) / ticks - own) / wall, 2)
    return times


def summary(prefix, times_ms):
    return {prefix + "_ms_median": round(statistics.median(times_ms), 2), prefix + "_ms_min": round(min(times_ms), 2),
            prefix + "_ms_all": [round(t, 2) for t in times_ms]}


def parse_size(text):
    """'512' -> (512, 512); '360x480' -> (360, 480)."""
    parts = [int(v) for v in str(text).lower().split("x")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def bench_inference(spec, size, batch, runs, warmup, threads, xla=False, probe=None, folded=True, mode="fp32"):
    """Latency of the inference net up to full-resolution logits, the output peer_bench times
    (test.py's softmax / argmax come on top).

    folded: the frozen graph with batch norm folded into the convs that test.py runs and
    `test.py --export` writes (utils/export.py); False: the variable graph (is_training=False).
    mode: a resolved precision (utils/compat/precision.py).
    """
    height, width = parse_size(size)
    data = np.random.RandomState(0).rand(batch, height, width, 3).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, [batch, height, width, 3], name="images")
        model = arch.build_model(spec, is_training=False)
        logits = tf.identity(model.build(images), name="logits")
        with tf.Session(config=session_config(threads, xla, mode)) as sess:
            sess.run(tf.global_variables_initializer())
            if not folded:
                return timed(lambda: sess.run(logits, {images: data}), runs, warmup, probe)
            folded_graph_def = freeze_and_fold(sess, [images], [logits])
    with tf.Graph().as_default() as folded_graph:
        tf.import_graph_def(folded_graph_def, name="")
        images, logits = folded_graph.get_tensor_by_name(images.name), folded_graph.get_tensor_by_name(logits.name)
        with tf.Session(config=session_config(threads, xla, mode)) as sess:
            return timed(lambda: sess.run(logits, {images: data}), runs, warmup, probe)


def training_step(spec, size, batch, choice):
    """The TrainStep train.py runs, in the default graph, on an in-memory random batch (variables, so no feed
    copy is timed)."""
    rng = np.random.RandomState(0)
    classes = spec.num_classes
    images = tf.Variable(rng.randn(batch, size, size, 3).astype(np.float32), trainable=False)
    labels = tf.Variable(rng.randint(0, classes, (batch, size, size)).astype(np.int32), trainable=False)
    is_training = tf.placeholder_with_default(True, [], name="is_training")
    config = RunConfig(spec, TrainSettings(batch_size=batch, learnrate=1e-3, total_steps=1000,
                                           mixed_precision=choice.mode, precision=choice.mode,
                                           precision_reason=choice.reason),
                       DataSpec(ignore_label=classes))
    return TrainStep(images, labels, is_training, config)


def bench_training(spec, size, batch, runs, warmup, threads, xla=False, probe=None,
                   choice=precision.Precision("fp32", "--mixed_precision fp32")):
    """Full training step (loss, backward, Adam, batch-norm updates): wall times (ms) and the last loss."""
    with tf.Graph().as_default():
        step = training_step(spec, size, batch, choice)
        with tf.Session(config=session_config(threads, xla, choice.mode)) as sess:
            sess.run(tf.global_variables_initializer())
            losses = []
            times = timed(lambda: losses.append(sess.run([step.train_op, step.loss])[1]), runs, warmup, probe)
            return times, float(losses[-1])


def measure(name, spec, args, choice):
    record = {"arch": name, "framework": "seg-mentor/tf1", "cpu": machine.cpu_info(), "encoder": spec.encoder,
              "decoder": spec.decoder,
              "spec": spec.to_dict(), "classes": spec.num_classes, "threads": args.threads, "xla": args.xla,
              "mixed_precision": args.mixed_precision, "precision": choice.mode,
              "precision_reason": choice.reason, "backend": backend.record(),
              "dilated_convs": native_atrous.route().name, "folded": args.folded, "loadavg_start": list(os.getloadavg()),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version()}
    height, width = parse_size(args.infer_size)
    counts = arch.summarize(spec, height, width)
    record.update(params_m=round(counts["params"] / 1e6, 3), fwd_gmacs=round(counts["gmacs"], 2))
    if not args.no_infer:
        probe = {}
        times = bench_inference(spec, args.infer_size, 1, args.runs, args.warmup, args.threads, args.xla, probe,
                                folded=args.folded, mode=choice.mode)
        record.update(summary("infer", times))
        record.update({"infer_" + k: v for k, v in probe.items()})
        record["infer_fps"] = round(1000.0 / record["infer_ms_median"], 3)
        if args.infer_batch > 1:
            times = bench_inference(spec, args.infer_size, args.infer_batch, max(3, args.runs // 2), 1, args.threads,
                                    args.xla, folded=args.folded, mode=choice.mode)
            record["infer_batch"] = args.infer_batch
            record["infer_img_per_s"] = round(args.infer_batch * 1000.0 / statistics.median(times), 3)
    if args.pipeline:
        files = dataset_files(args.pipeline, args.dataset_family, "training")
        result = bench_pipeline.bench(files, args.train_size, args.train_batch, args.threads, seconds=10, batches=0,
                                      warmup=5, preprocessing=nets.get(spec.encoder).preprocessing, augment=True,
                                      seed=None)
        record["pipeline_img_per_s"] = result["images_per_s"]
        record["pipeline_img_per_cpu_s"] = result["images_per_cpu_s"]
    if not args.no_train:
        probe = {}
        times, loss = bench_training(spec, args.train_size, args.train_batch, args.runs, args.warmup, args.threads,
                                     args.xla, probe, choice)
        record.update(summary("train_step", times))
        record.update({"train_" + k: v for k, v in probe.items()})
        record["train_input"] = [args.train_batch, args.train_size, args.train_size, 3]
        record["train_img_per_s"] = round(args.train_batch * 1000.0 / record["train_step_ms_median"], 3)
        record["train_last_loss"] = round(loss, 4)
    return record


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default=None,
                        help="comma list of peer_bench names (%s) or 'all'" % ", ".join(PEER_MATCH))
    arch.add_model_flags(parser, defaults={"decoder": "LinkNet", "num_classes": 12},
                         extra_aliases={"num_classes": ("classes",)})
    parser.add_argument("--infer_size", default="512", help="inference input side, or HxW (e.g. 360x480)")
    parser.add_argument("--infer_batch", type=int, default=1, help="also measure throughput at this batch")
    parser.add_argument("--train_size", type=int, default=256)
    parser.add_argument("--train_batch", type=int, default=4)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="TF intra/inter-op threads")
    add_bool_flag(parser, "xla", False, "XLA JIT")
    add_bool_flag(parser, "folded", True, "time test.py's inference graph: frozen, batch norm folded "
                  "(--no-folded: the variable graph as trained)")
    add_setting_flags(parser, TrainSettings, only=("mixed_precision",))
    parser.add_argument("--pipeline", default=None, metavar="DATAPATH",
                        help="also time the input pipeline on <DATAPATH>/<dataset_family>/training.tfrecords "
                             "at --train_size / --train_batch with augmentation")
    parser.add_argument("--dataset_family", default="camvid")
    parser.add_argument("--no_infer", action="store_true")
    parser.add_argument("--no_train", action="store_true")
    parser.add_argument("--json", default=None, metavar="FILE", help="append JSON lines here")
    return parser


def configurations(args):
    """(name, ModelSpec) pairs: the peer-matched --arch set, or the one net of the model flags."""
    if args.arch:
        names = list(PEER_MATCH) if args.arch == "all" else args.arch.split(",")
        for name in names:
            if name not in PEER_MATCH:
                raise SystemExit("unknown --arch %r; valid: %s" % (name, ", ".join(PEER_MATCH)))
            yield name, arch.ModelSpec(num_classes=args.num_classes, **PEER_MATCH[name])
    else:
        spec = arch.model_spec_from_args(args)
        yield "%s_%s" % (spec.encoder, spec.decoder), spec


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        choice = precision.resolve(args.mixed_precision)
        configs = list(configurations(args))
    except (arch.UnknownDecoderError, arch.DecoderOptionError, nets.UnknownNetError) as error:
        parser.error(str(error))
    except ValueError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    print(machine.describe())
    print("backend: %s" % backend.describe())
    print("precision: %s (%s)" % choice)
    print("| arch | params M | GMACs@%s | infer ms (b1) | train step ms (b%d@%d) | train img/s | foreign cores |"
          % (args.infer_size, args.train_batch, args.train_size))
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, spec in configs:
        record = measure(name, spec, args, choice)
        if "pipeline_img_per_s" in record:
            print("input pipeline: %.1f img/s at %d px with augmentation (%.1f per CPU-second)"
                  % (record["pipeline_img_per_s"], args.train_size, record["pipeline_img_per_cpu_s"]))
        print("| %s | %.2f | %.2f | %s | %s | %s | %s / %s |" % (
            name, record["params_m"], record["fwd_gmacs"], record.get("infer_ms_median", "-"),
            record.get("train_step_ms_median", "-"), record.get("train_img_per_s", "-"),
            record.get("infer_foreign_cores", "-"), record.get("train_foreign_cores", "-")), flush=True)
        emit_json(record, args.json)
    return 0


def emit_json(record, path=None):
    """One JSON line per measurement: on stderr, and appended to `path` when given."""
    line = json.dumps(record)
    print(line, file=sys.stderr, flush=True)
    if path:
        with open(path, "a") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main())

"""Deployment runtimes of one trained run side by side: TF frozen graph fp32, TFLite fp32 / fp16 / int8, ONNX.

    python bench/bench_runtimes.py --traindir tmp/<run> --sizes run,360x480,512 --score --json runtimes.jsonl

For each input size (`run` = the run's --pixels canvas) the run's frozen,
batch-norm-folded net is exported the way test.py --export_tflite /
--export_onnx does (utils/inference/deploy.py), and the latency of batch 1
up to the logits is timed per runtime (--threads; TFLite on XNNPACK,
onnxruntime's CPU provider), as the median of --runs after --warmup, with the
foreign CPU load seen while timing.  Because latency under other load is
noisy, the int8 / fp32 ratio is also measured interleaved (int8, TF fp32,
int8, ... so both see the same load).  --score also scores every format on
the validation split with test.py's evaluation at the run's canvas: mIoU with
its bootstrap CI, and the share of pixels whose class agrees with the TF fp32
graph's.  The PyTorch peer's fp32 latency is read from
../shared/tools/peer_bench's recorded results, where they exist (own host).
"""
import argparse
import glob
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import bench  # sibling script: bench/ is on sys.path when this runs as a script
from utils.compat import backend, machine, tf
from utils.compat.session import session_config
from utils.flags import add_setting_flags
from utils.inference import deploy, evaluation, runtimes
from utils.inference.segmenter import Segmenter
from utils.training.config import RunConfig

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_RESULTS = os.path.join(HERE, "..", "..", "shared", "tools", "peer_bench")
PEER_ARCH = {("resnet_v1_18", "LinkNet"): "linknet_r18", ("mobilenet_v2", "DeepLabV3Plus"): "deeplabv3plus_mnv2"}
FORMATS = ("tf_fp32", "tflite_fp32", "tflite_fp16", "tflite_int8", "onnx_fp32")


def export_all(traindir, shape, folder, calibration_images, seed, int16x8=False):
    """{format: model path} for the run's net at `shape`, plus the frozen GraphDef the TF fp32 path runs."""
    graph_def, config, _ = deploy.net_graph_def(traindir, None, shape)
    calibration, _ = deploy.calibration_set(config, calibration_images, seed, shape)
    paths = {}
    for precision in deploy.PRECISIONS:
        if precision == "int16x8" and not int16x8:
            continue
        paths["tflite_" + precision] = os.path.join(folder, "%dx%d_%s.tflite" % (shape + (precision,)))
        with open(paths["tflite_" + precision], "wb") as handle:
            handle.write(deploy.convert_tflite(graph_def, precision, "logits", calibration))
    paths["onnx_fp32"] = os.path.join(folder, "%dx%d.onnx" % shape)
    with open(paths["onnx_fp32"], "wb") as handle:
        handle.write(deploy.convert_onnx(graph_def, "logits"))
    return paths, graph_def, calibration


class FrozenGraph:
    """The TF fp32 frozen, folded net in a session: what test.py runs by default."""

    def __init__(self, graph_def, threads):
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.import_graph_def(graph_def, name="")
        self.session = tf.Session(graph=self.graph, config=session_config(threads))
        self.images, self.logits = (self.graph.get_tensor_by_name(name) for name in ("images:0", "logits:0"))

    def __call__(self, batch):
        return self.session.run(self.logits, {self.images: batch})


def interleaved_ratio(first, second, data, rounds):
    """median(second) / median(first) with the two calls alternating, so both see the same foreign load."""
    times = {0: [], 1: []}
    for _ in range(rounds):
        for key, fn in ((0, first), (1, second)):
            tic = time.perf_counter()
            fn(data)
            times[key].append((time.perf_counter() - tic) * 1000.0)
    return statistics.median(times[1]) / statistics.median(times[0]), times


def latency(runners, data, args):
    """{format: {"ms_median", "ms_min", "foreign_cores"}} for batch 1 on `data` [1, H, W, 3]."""
    out = {}
    for name, runner in runners.items():
        probe = {}
        times = bench.timed(lambda: runner(data), args.runs, args.warmup, probe)
        out[name] = {"ms_median": round(statistics.median(times), 2), "ms_min": round(min(times), 2),
                     "foreign_cores": probe.get("foreign_cores")}
    return out


def score_formats(traindir, paths, args):
    """{format: {mIoU, mIoU_ci, agreement}} on the validation split; agreement with the TF fp32 graph's classes."""
    config = RunConfig.load(traindir)
    data = config.data

    def examples():
        return evaluation.split_examples(args.datapath or data.datapath, data.dataset_family, "validation",
                                         args.num_images)

    def score(segmenter):
        predictions = []
        scored = evaluation.score_split(segmenter, examples(), on_image=lambda i, e, p: predictions.append(p))
        report = evaluation.summarize(scored.confusions, segmenter.class_names, bootstrap=args.bootstrap,
                                      filenames=scored.filenames, family=data.dataset_family,
                                      bootstrap_by="auto")
        return report, predictions

    results = {}
    with Segmenter(traindir, threads=args.threads) as segmenter:
        report, reference = score(segmenter)
    results["tf_fp32"] = {"mIoU": report["mIoU"], "mIoU_ci": report["mIoU_ci"], "agreement": 1.0,
                          "bootstrap_by": report.get("bootstrap_by")}
    for name, path in paths.items():
        with runtimes.ExportedSegmenter(path, traindir, threads=args.threads) as segmenter:
            report, predictions = score(segmenter)
        agree = sum(int((a == b).sum()) for a, b in zip(predictions, reference)) / sum(p.size for p in reference)
        results[name] = {"mIoU": report["mIoU"], "mIoU_ci": report["mIoU_ci"], "agreement": agree}
    return results


def peer_latency(encoder, decoder, shape):
    """The PyTorch peer's fp32 median latency at this shape from peer_bench's recorded runs, with its host."""
    name = PEER_ARCH.get((encoder, decoder))
    for path in sorted(glob.glob(os.path.join(PEER_RESULTS, "results-*.jsonl"))):
        with open(path) as handle:
            for line in handle:
                record = json.loads(line)
                if record.get("arch") == name and not record.get("channels_last") and \
                        list(record.get("infer_input", [])[2:]) == list(shape):
                    return {"ms_median": record["infer_ms_median"], "host": record.get("host_cpu"),
                            "file": os.path.basename(path)}
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traindir", required=True, help="run folder made by train.py")
    parser.add_argument("--sizes", default="run", help="comma list: 'run' (its --pixels canvas), N or HxW")
    parser.add_argument("--threads", type=int, default=2, help="threads of every runtime")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--interleaved", type=int, default=20, help="rounds of the interleaved int8 / fp32 ratio")
    # test.py's int8 calibration settings, declared once in deploy.ExportSettings (0 images: what the split has)
    add_setting_flags(parser, deploy.ExportSettings, only=("calibration_images", "calibration_seed"))
    parser.add_argument("--int16x8", action="store_true", help="also TFLite int16x8 (int16 activations, int8 "
                                                                  "weights; TFLite's reference kernels: slow)")
    parser.add_argument("--score", action="store_true", help="also score every format on the validation split")
    parser.add_argument("--datapath", default=None, help="default: the run's")
    parser.add_argument("--num_images", type=int, default=None, help="score only the first N validation images")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--json", default=None, metavar="FILE", help="append one JSON line per size here")
    args = parser.parse_args(argv)
    try:
        config = RunConfig.load(args.traindir)
    except (FileNotFoundError, ValueError) as error:  # not a run folder: one line, exit 2
        print("error: %s" % error, file=sys.stderr)
        return 2
    print(machine.describe())
    print("backend: %s" % backend.describe())
    print("load average at start: %s" % ", ".join("%.2f" % v for v in os.getloadavg()))
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes.split(","):
            shape = (config.data.pixels,) * 2 if size == "run" else bench.parse_size(size)
            paths, graph_def, calibration = export_all(args.traindir, shape, folder, args.calibration_images,
                                                       args.calibration_seed, args.int16x8)
            runners = {"tf_fp32": FrozenGraph(graph_def, args.threads)}
            runners.update({name: runtimes.load_runner(path, args.threads) for name, path in paths.items()})
            data = calibration[:1]
            record = {"run": os.path.abspath(args.traindir), "net": config.net_name, "shape": list(shape),
                      "cpu": machine.cpu_info(), "backend": backend.record(), "threads": args.threads,
                      "loadavg_start": list(os.getloadavg()),
                      "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": args.runs,
                      "file_bytes": {name: os.path.getsize(path) for name, path in paths.items()},
                      "latency": latency(runners, data, args)}
            ratio, _ = interleaved_ratio(runners["tf_fp32"], runners["tflite_int8"], data, args.interleaved)
            record["int8_over_tf_fp32_interleaved"] = round(ratio, 3)
            record["peer_fp32"] = peer_latency(config.model.encoder, config.model.decoder, shape)
            if args.score and size == "run":
                record["scores"] = score_formats(args.traindir, paths, args)
            record["loadavg_end"] = list(os.getloadavg())
            print_table(record)
            bench.emit_json(record, args.json)
    return 0


def print_table(record):
    print("\n%s at %dx%d, batch 1, %d threads (loadavg %s -> %s); int8 / TF fp32 interleaved: %.2f"
          % (record["net"], record["shape"][0], record["shape"][1], record["threads"],
             "%.1f" % record["loadavg_start"][0], "%.1f" % record["loadavg_end"][0],
             record["int8_over_tf_fp32_interleaved"]))
    print("| format | val mIoU (95 % CI) | agreement with TF fp32 | file MB | latency ms (median) | foreign cores |")
    print("|---|---|---:|---:|---:|---:|")
    scores = record.get("scores", {})
    for name in record["latency"]:
        score = scores.get(name)
        text = "-" if not score else "%.1f (%.1f-%.1f)" % tuple(100 * v for v in [score["mIoU"]] + score["mIoU_ci"])
        agree = "-" if not score else "%.2f %%" % (100 * score["agreement"])
        size = record["file_bytes"].get(name)
        print("| %s | %s | %s | %s | %.1f | %s |" % (name, text, agree, "%.1f" % (size / 1e6) if size else "-",
                                                   record["latency"][name]["ms_median"],
                                                   record["latency"][name]["foreign_cores"]))
    if record.get("peer_fp32"):
        print("PyTorch peer fp32 (recorded on %s): %.1f ms" % (record["peer_fp32"]["host"],
                                                              record["peer_fp32"]["ms_median"]))


if __name__ == "__main__":
    sys.exit(main())

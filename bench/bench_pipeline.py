"""Input pipeline throughput (images/s), augmentations on, as training would run it.

    python bench/bench_pipeline.py --pixels 512 --batch_size 8 --threads 2 --seconds 20
    python bench/bench_pipeline.py --tfrecords /data/camvid/training.tfrecords

Without --tfrecords/--datapath, CamVid (default ../shared/data/camvid) is
converted into a temporary folder first.  Prints one table line and one JSON line.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from utils.compat import machine
from utils.compat import backend, tf
from utils.data import convert, families, pipeline
from utils.data.dataset_info import dataset_files
from utils.data.spec import DataSpec
from utils.flags import add_setting_flags, settings_from_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def records_to_bench(args, scratch):
    """Record files from --tfrecords, --datapath, or a fresh conversion of --camvid_path."""
    if args.tfrecords:
        return args.tfrecords
    if args.datapath:
        return dataset_files(args.datapath, args.dataset_family, args.split)
    family = families.create("camvid", datapath=scratch, camvid_path=args.camvid_path)
    summary = convert.convert(family, os.path.join(scratch, "camvid"), splits=[args.split], progress=False)
    return [os.path.join(summary.outdir, f) for f in summary.splits[args.split].files]


def bench(files, pixels, batch_size, threads, seconds, batches, warmup, preprocessing, augment, seed, cache=False,
          augmentation=None):
    """-> dict of the measurement (images/s over the timed batches only).

    augmentation: a DataSpec whose scale_range / flip / color_jitter to time (default: the declared defaults).
    """
    augmentation = augmentation or DataSpec()
    with tf.Graph().as_default():
        dataset = pipeline.make_dataset(files, preprocessing, pixels=pixels, batch_size=batch_size,
                                        ignore_label=255, training=True, augment=augment, seed=seed,
                                        threads=threads, cache=cache, scale_range=augmentation.scale_bounds,
                                        flip=augmentation.flip, color_jitter=augmentation.color_jitter)
        batch = tf.data.make_one_shot_iterator(dataset).get_next()
        # Fetch what a train step consumes, reduced, so transfer to Python is not what we time.
        fetch = [tf.reduce_sum(batch["image"]), tf.reduce_sum(batch["label"])]
        config = tf.ConfigProto(intra_op_parallelism_threads=threads or 0,
                                inter_op_parallelism_threads=threads or 0)
        with tf.Session(config=config) as sess:
            for _ in range(warmup):
                sess.run(fetch)
            count, start, cpu_start = 0, time.time(), time.process_time()
            while True:
                sess.run(fetch)
                count += 1
                elapsed = time.time() - start
                if (batches and count >= batches) or (not batches and elapsed >= seconds):
                    break
            cpu = time.process_time() - cpu_start
    return {"bench": "input_pipeline", "images_per_s": round(count * batch_size / elapsed, 1),
            "batches": count, "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2),
            # CPU cost per image: comparable across runs even when other jobs share the cores
            "images_per_cpu_s": round(count * batch_size / max(cpu, 1e-9), 1), "pixels": pixels, "batch_size": batch_size,
            "threads": threads, "augment": augment, "cache": cache, "preprocessing": preprocessing,
            "scale_range": augmentation.scale_range, "flip": augmentation.flip,
            "color_jitter": augmentation.color_jitter, "cpu": machine.cpu_info(), "backend": backend.record(),
            "files": [os.path.basename(f) for f in files]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tfrecords", nargs="+", default=None, help="record file(s) to read")
    parser.add_argument("--datapath", default=None, help="read <datapath>/<dataset_family>/<split> records")
    parser.add_argument("--dataset_family", default="camvid")
    parser.add_argument("--split", default="training")
    parser.add_argument("--camvid_path", default=os.path.join(ROOT, "..", "shared", "data", "camvid"),
                        help="raw CamVid converted to a temp dir when no records are given")
    parser.add_argument("--pixels", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="TF intra/inter-op and tf.data threads (0: all)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time budget of the timed part")
    parser.add_argument("--batches", type=int, default=0, help="timed batches (overrides --seconds)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches first (fill the prefetch)")
    parser.add_argument("--preprocessing", default="vgg")
    parser.add_argument("--no_augment", action="store_true")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--cache", action="store_true", help="cache decoded images in memory (small sets)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's logs")
    add_setting_flags(parser, DataSpec, only=("scale_range", "flip", "color_jitter"))
    args = parser.parse_args(argv)

    scratch = tempfile.mkdtemp(prefix="bench_pipeline_")
    try:
        try:
            files = records_to_bench(args, scratch)
        except (FileNotFoundError, ValueError) as error:  # no records, no raw data: one line, exit 2
            print("error: %s" % error, file=sys.stderr)
            return 2
        result = bench(files, args.pixels, args.batch_size, args.threads or None, args.seconds, args.batches,
                       args.warmup, args.preprocessing, not args.no_augment, args.seed, args.cache,
                       DataSpec(**settings_from_args(args, DataSpec, only=("scale_range", "flip", "color_jitter"))))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(machine.describe())
    print("backend: %s" % backend.describe())
    print("input_pipeline  pixels=%d  batch=%d  threads=%s  augment=%s (scale %s, flip %s, colour jitter %g)  "
          "cache=%s  %8.1f images/s  "
          "(%.1f images per CPU-second; %d batches, %.1fs, load avg %.1f)"
          % (result["pixels"], result["batch_size"], result["threads"], result["augment"], result["scale_range"],
             result["flip"], result["color_jitter"], result["cache"],
             result["images_per_s"], result["images_per_cpu_s"], result["batches"], result["seconds"],
             os.getloadavg()[0]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

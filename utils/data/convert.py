"""Convert a dataset from its published layout to TFRecords + dataset.json.

    python utils/tfrecordify.py --dataset_family camvid --camvid_path /data/camvid --datapath /data
    python utils/tfrecordify.py --dataset_family pascal_seg --voc_path .../VOC2012 --sbd_path .../dataset
    python utils/tfrecordify.py --dataset_family camvid --help     # that family's own arguments

Writes <outdir>/{training,validation[,test]}.tfrecords (sharded past --shard_size)
and <outdir>/dataset.json; <outdir> defaults to <datapath>/<dataset_family>.
Unreadable images/labels are skipped and listed in the summary (--strict makes
them fatal).  Label values outside the classes, image/label size mismatches and
empty splits stop the run; nothing already on disk is replaced unless every
requested split converted cleanly.

dataset.json (read back by utils.data.dataset_info.load_dataset_info):
    family, class_names [str], palette [[r, g, b]], num_classes, ignore_label,
    default_pixels, schema_version (2), total_train_images (= training records),
    splits: {split: {records, files [record file names], examples [source names],
                     skipped [{name, reason}],
                     class_pixels, class_images, class_image_pixels [per class: utils/data/statistics.py]}},
    source {the family's path options}, created (ISO time), created_by.
Converting only some --splits keeps the other splits' entries when their files exist.
"""
import argparse
import collections
import concurrent.futures
import dataclasses
import datetime
import os
import sys
import time

from tqdm import tqdm

from utils.data import families
from utils.data.dataset_info import read_dataset_json, write_dataset_json
from utils.data.families.base import (EmptySplitError, DatasetError, SizeMismatchError, UnreadableFileError,
                                      canonical_split, check_label_values, encode_png)
from utils.data.records import ShardedRecordWriter, find_record_files, serialize_example
from utils.data.statistics import ClassCounts

SCHEMA_VERSION = 2  # 2: per-split class statistics
DEFAULT_DATAPATH = "/data"
DEFAULT_SHARD_SIZE = 1000


@dataclasses.dataclass
class SplitResult:
    split: str
    records: int = 0
    files: list = dataclasses.field(default_factory=list)
    examples: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)  # [(name, reason)]
    seconds: float = 0.0
    class_counts: ClassCounts = None                          # per-class statistics of the written labels


@dataclasses.dataclass
class ConversionSummary:
    family: str
    outdir: str
    splits: dict  # split -> SplitResult
    json_path: str

    def lines(self):
        out = ["%s -> %s" % (self.family, self.outdir)]
        for result in self.splits.values():
            files = result.files[0] if len(result.files) == 1 else "%d shards" % len(result.files)
            out.append("  %-10s %7d records  %-28s %d skipped  (%.1fs)"
                       % (result.split, result.records, files, len(result.skipped), result.seconds))
        skipped = [(r.split, n, why) for r in self.splits.values() for n, why in r.skipped]
        if skipped:
            out.append("skipped files:")
            out.extend("  %-10s %s: %s" % item for item in skipped)
        out.append("metadata: %s" % self.json_path)
        return out


def convert_example(family, example):
    """Read, map and validate one example -> serialized record.

    Raises UnreadableFileError (skippable), LabelValueError / SizeMismatchError (fatal).
    """
    image = family.load_image(example)
    label = family.read_label(example)
    if label.shape != (image.height, image.width):
        raise SizeMismatchError("%s: image is %dx%d (HxW) but label %s is %dx%d"
                                % (example.image_path, image.height, image.width,
                                   example.label_path, label.shape[0], label.shape[1]))
    check_label_values(label, family.num_classes, family.ignore_label, example.label_path)
    record = serialize_example(image.encoded, image.format, encode_png(label), image.height, image.width,
                               example.name)
    return record, ClassCounts(family.num_classes, family.ignore_label).add(label)


def _ordered_map(function, items, workers, window=64):
    """map() over a thread pool, in order, with at most `window` items in flight.

    Threads suffice: PIL decoding and zlib release the GIL.  Each result is
    yielded as (item, value, error) so the caller decides what is fatal.
    """
    def guarded(item):
        try:
            return item, function(item), None
        except Exception as error:  # handed to the caller, re-raised there if fatal
            return item, None, error

    if workers <= 1:
        for item in items:
            yield guarded(item)
        return
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending = collections.deque()
        for item in items:
            pending.append(pool.submit(guarded, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def convert_split(family, split, writer, strict=False, workers=1, progress=True):
    examples = family.examples(split)
    if not examples:
        raise EmptySplitError("%s: split %r has no examples (check the source paths: %s)"
                              % (family.name, split, family.source_description() or family.datapath))
    result = SplitResult(split=split, class_counts=ClassCounts(family.num_classes, family.ignore_label))
    start = time.time()
    bar = _progress_bar(len(examples), "%s %s" % (family.name, split), progress)
    try:
        for example, converted, error in _ordered_map(lambda ex: convert_example(family, ex), examples, workers):
            bar.update(1)
            if error is not None:
                if isinstance(error, UnreadableFileError) and not strict:
                    result.skipped.append((example.name, str(error)))
                    continue
                raise error
            record, counts = converted
            writer.write(record)
            result.examples.append(example.name)
            result.class_counts.merge(counts)
    finally:
        bar.close()
    if not result.examples:
        raise EmptySplitError("%s: split %r: all %d examples were skipped, e.g. %s"
                              % (family.name, split, len(examples), result.skipped[0][1]))
    result.records = writer.count
    result.seconds = time.time() - start
    return result


def _progress_bar(total, description, enabled):
    return tqdm(total=total, desc=description, unit="img", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, leave=False)


def convert(family, outdir, splits=None, shard_size=DEFAULT_SHARD_SIZE, strict=False, workers=1,
            progress=True):
    """Convert `splits` (default: all the family provides) of a family instance into `outdir`.

    All splits are written to temporary files first and moved into place only
    when every one of them succeeded; dataset.json is written last.
    """
    splits = [canonical_split(s) for s in (splits or family.splits())]
    if not splits:
        raise EmptySplitError("%s: no splits found (check the source paths: %s)"
                              % (family.name, family.source_description() or family.datapath))
    os.makedirs(outdir, exist_ok=True)
    writers, results = [], collections.OrderedDict()
    try:
        for split in splits:
            writer = ShardedRecordWriter(outdir, split, shard_size)
            writers.append(writer)
            results[split] = convert_split(family, split, writer, strict, workers, progress)
            writer.close()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:
        results[writer.split].files = writer.commit()
    json_path = record_dataset_json(outdir, family, results)
    return ConversionSummary(family=family.name, outdir=outdir, splits=results, json_path=json_path)


def record_dataset_json(outdir, family, results):
    """Metadata + per-split records and class statistics; splits not converted now are kept if their files
    still exist."""
    info = family.info()
    previous = read_dataset_json(outdir) or {}
    split_info = {}
    if previous.get("family") == family.name:
        for split, entry in previous.get("splits", {}).items():
            if split not in results and find_record_files(outdir, split):
                split_info[split] = entry
    for split, result in results.items():
        split_info[split] = {"records": result.records, "files": result.files,
                             "examples": result.examples,
                             "skipped": [{"name": n, "reason": why} for n, why in result.skipped]}
        split_info[split].update(result.class_counts.as_dict())
    info.update({
        "schema_version": SCHEMA_VERSION,
        "splits": split_info,
        "total_train_images": split_info.get("training", {}).get("records", 0),
        "source": family.source_description(),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "created_by": "utils/tfrecordify.py",
    })
    return write_dataset_json(outdir, info)


def build_parser(family_name=None):
    parser = argparse.ArgumentParser(
        description="Convert a segmentation dataset to TFRecords (+ dataset.json).",
        epilog="families: %s.  Add --dataset_family X --help for X's own arguments."
               % ", ".join(families.NAMES))
    parser.add_argument("--dataset_family", required=True, help="one of: " + ", ".join(families.NAMES))
    parser.add_argument("--datapath", default=DEFAULT_DATAPATH,
                        help="root of the datasets; records go to <datapath>/<dataset_family>/ (default /data)")
    parser.add_argument("--outdir", default=None, help="write here instead of <datapath>/<dataset_family>/")
    parser.add_argument("--splits", nargs="+", default=None,
                        help="convert only these splits (training validation test; default: all found)")
    parser.add_argument("--shard_size", type=int, default=DEFAULT_SHARD_SIZE,
                        help="records per shard; a split this size or smaller is one file (default 1000)")
    parser.add_argument("--strict", action="store_true", help="an unreadable image/label is fatal, not skipped")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="reader threads (default: min(4, CPUs))")
    parser.add_argument("--no_progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's logs")
    if family_name is not None:
        group = parser.add_argument_group("%s arguments" % family_name)
        families.get(family_name).add_arguments(group)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--dataset_family")
    family_name = probe.parse_known_args(argv)[0].dataset_family
    try:
        if family_name is not None:
            families.get(family_name)
    except families.UnknownDatasetError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    args = build_parser(family_name).parse_args(argv)
    try:
        family = families.get(args.dataset_family).from_args(args)
        outdir = args.outdir or os.path.join(args.datapath, family.subdir())
        summary = convert(family, outdir, args.splits, args.shard_size, args.strict, args.workers,
                          progress=not args.no_progress)
    except (DatasetError, ValueError) as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

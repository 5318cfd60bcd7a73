"""Convert a dataset from its published layout to TFRecords + dataset.json.

    python utils/tfrecordify.py --dataset_family camvid --camvid_path /data/camvid --datapath /data
    python utils/tfrecordify.py --dataset_family pascal_seg --voc_path .../VOC2012 --sbd_path .../dataset
    python utils/tfrecordify.py --dataset_family camvid --help     # that family's own arguments

Writes <outdir>/{training,validation[,test]}.tfrecords (sharded past --shard_size)
and <outdir>/dataset.json; <outdir> defaults to <datapath>/<dataset_family>.
Whatever splits the source has are converted; the summary names the layout
found (the family's variant) and the published splits that are not there.
An image without its label file stops the run before anything is written
(exit 2, the count and the first few named; --allow_missing_labels converts
the rest and says how many were left out).  Unreadable images/labels are
skipped and listed in the summary (--strict makes them fatal).  Label values
outside the classes, image/label size mismatches and empty splits stop the
run; nothing already on disk is replaced unless every requested split
converted cleanly.

dataset.json (read back by utils.data.dataset_info.load_dataset_info):
    family, variant (layout found, or null), label_mapping (published values -> classes, or null),
    class_names [str], palette [[r, g, b]], num_classes, ignore_label,
    default_pixels, schema_version (2), total_train_images (= training records),
    splits: {split: {records, files [record file names], examples [source names],
                     skipped [{name, reason}], missing_labels [{name, label}] (left out),
                     categories {category: images} (families with per-image categories),
                     class_pixels, class_images, class_image_pixels [per class: utils/data/statistics.py]}},
    missing_splits {split: what was looked for}, source {the family's path options}, created (ISO time),
    created_by.
    ... and per split sequences {sequence: images} (families that know each image's recording: CamVid's drive,
    Cityscapes' city, KITTI's category, a folder dataset's groups), holdout_sequences [names] or null.
Converting only some --splits keeps the other splits' entries when their files exist.

--holdout_sequence 0006R0[,NAME...] moves those whole training sequences into a split of their own,
'holdout' (holdout.tfrecords), for a validation on recordings training never saw (train.py --val_split
holdout, test.py --split holdout; utils/data/sequences.py).  Converting training again without it removes
an earlier holdout split, so its frames are never both trained on and held out.
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
from utils.data import sequences as sequence_split
from utils.data.dataset_info import read_dataset_json, write_dataset_json
from utils.data.families.base import (HOLDOUT, EmptySplitError, DatasetError, MissingLabelsError, SizeMismatchError,
                                      UnreadableFileError, canonical_split, check_label_values, encode_png)
from utils.data.records import ShardedRecordWriter, existing_record_files, find_record_files, serialize_example
from utils.data.statistics import ClassCounts

SCHEMA_VERSION = 2  # 2: per-split class statistics
DEFAULT_DATAPATH = "/data"
DEFAULT_SHARD_SIZE = 1000
MISSING_NAMED = 5  # images without a label named in the refusal
EXIT_MISSING_LABELS = 2


@dataclasses.dataclass
class SplitResult:
    split: str
    records: int = 0
    files: list = dataclasses.field(default_factory=list)
    examples: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)  # [(name, reason)]
    missing_labels: list = dataclasses.field(default_factory=list)  # [(name, label path)], left out
    categories: dict = dataclasses.field(default_factory=dict)  # category -> images written
    sequences: dict = dataclasses.field(default_factory=dict)   # sequence -> images written
    seconds: float = 0.0
    class_counts: ClassCounts = None                          # per-class statistics of the written labels


@dataclasses.dataclass
class ConversionSummary:
    family: str
    outdir: str
    splits: dict  # split -> SplitResult
    json_path: str
    variant: str = None
    missing_splits: dict = dataclasses.field(default_factory=dict)  # split -> what was looked for
    holdout_sequences: list = None                                  # --holdout_sequence, moved to 'holdout'

    def lines(self):
        out = ["%s%s -> %s" % (self.family, " (layout: %s)" % self.variant if self.variant else "", self.outdir)]
        for result in self.splits.values():
            files = result.files[0] if len(result.files) == 1 else "%d shards" % len(result.files)
            out.append("  %-10s %7d records  %-28s %d skipped  (%.1fs)"
                       % (result.split, result.records, files, len(result.skipped), result.seconds))
        out.extend("  %-10s not in the source (looked for %s)" % item for item in self.missing_splits.items())
        if self.holdout_sequences:
            out.append("  holdout    the training sequence%s %s, set aside (train.py --val_split holdout)"
                       % ("" if len(self.holdout_sequences) == 1 else "s", ", ".join(self.holdout_sequences)))
        skipped = [(r.split, n, why) for r in self.splits.values() for n, why in r.skipped]
        if skipped:
            out.append("skipped files:")
            out.extend("  %-10s %s: %s" % item for item in skipped)
        for result in self.splits.values():
            if result.missing_labels:
                out.append("left out (--allow_missing_labels): %d %s image%s without a label, e.g. %s"
                           % (len(result.missing_labels), result.split, "" if len(result.missing_labels) == 1
                              else "s", result.missing_labels[0][1]))
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
                               example.name, example.category, example.sequence)
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


def split_examples(family, split):
    """The examples of one split; an empty split is refused naming where it was looked for."""
    examples = family.examples(split)
    if not examples:
        expected = family.missing_splits().get(split)
        raise EmptySplitError("%s: split %r has no examples (%s)"
                              % (family.name, split, "looked for %s" % expected if expected else
                                 "check the source paths: %s" % (family.source_description() or family.datapath)))
    return examples


def without_label(examples):
    """The examples whose label file is not there (a wrong folder or suffix), in order."""
    return [example for example in examples if not os.path.exists(example.label_path)]


def refuse_missing_labels(family, missing):
    """One line: how many images of which splits have no label, the first few named."""
    count = sum(len(examples) for examples in missing.values())
    first = [example for examples in missing.values() for example in examples][:MISSING_NAMED]
    per_split = ", ".join("%d %s" % (len(examples), split) for split, examples in missing.items() if examples)
    raise MissingLabelsError(
        "%s: %d image%s without a label file (%s), nothing written; e.g. %s has no %s%s; check the label folder "
        "and suffix, or --allow_missing_labels converts the rest"
        % (family.name, count, "" if count == 1 else "s", per_split, first[0].image_path, first[0].label_path,
           "; also without one: %s" % ", ".join(example.image_path for example in first[1:]) if first[1:] else ""))


def convert_split(family, split, writer, strict=False, workers=1, progress=True, examples=None, missing=()):
    """Write one split's records; `missing` (examples without a label) are left out and listed."""
    examples = split_examples(family, split) if examples is None else examples
    left_out = {id(example) for example in missing}
    result = SplitResult(split=split, class_counts=ClassCounts(family.num_classes, family.ignore_label),
                         missing_labels=[(example.name, example.label_path) for example in missing])
    examples = [example for example in examples if id(example) not in left_out]
    if not examples:
        raise EmptySplitError("%s: split %r: none of its %d images has a label, e.g. %s"
                              % (family.name, split, len(missing), missing[0].label_path))
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
            if example.category is not None:
                result.categories[example.category] = result.categories.get(example.category, 0) + 1
            if example.sequence is not None:
                result.sequences[example.sequence] = result.sequences.get(example.sequence, 0) + 1
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
            progress=True, allow_missing_labels=False, holdout_sequences=None):
    """Convert `splits` (default: all the source has) of a family instance into `outdir`; the training
    sequences named in `holdout_sequences` go to a split of their own, 'holdout'.

    Every split's label files are checked first: images without one stop the
    run before anything is written (MissingLabelsError), unless
    allow_missing_labels.  All splits are written to temporary files first and
    moved into place only when every one of them succeeded; dataset.json is
    written last.
    """
    splits = [canonical_split(s) for s in (splits or family.splits())]
    if HOLDOUT in splits:
        raise ValueError("the %s split is made from training: convert training with --holdout_sequence NAME"
                         % HOLDOUT)
    if not splits:
        looked = "; ".join("%s: %s" % item for item in family.missing_splits().items())
        raise EmptySplitError("%s: no splits found (%s)" % (family.name, "looked for %s" % looked if looked else
                                                            "check the source paths: %s"
                                                            % (family.source_description() or family.datapath)))
    planned = collections.OrderedDict((split, split_examples(family, split)) for split in splits)
    if holdout_sequences:
        planned = sequence_split.hold_out(family.name, planned, list(holdout_sequences))
    missing = collections.OrderedDict((split, without_label(examples)) for split, examples in planned.items())
    if any(missing.values()) and not allow_missing_labels:
        refuse_missing_labels(family, missing)
    os.makedirs(outdir, exist_ok=True)
    writers, results = [], collections.OrderedDict()
    try:
        for split in planned:
            writer = ShardedRecordWriter(outdir, split, shard_size)
            writers.append(writer)
            results[split] = convert_split(family, split, writer, strict, workers, progress, planned[split],
                                           missing[split])
            writer.close()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:
        results[writer.split].files = writer.commit()
    if "training" in results and HOLDOUT not in results:  # training holds those frames again
        for stale in existing_record_files(outdir, HOLDOUT):
            os.remove(stale)
    absent = {split: what for split, what in family.missing_splits().items() if split not in results}
    json_path = record_dataset_json(outdir, family, results, absent, holdout_sequences)
    return ConversionSummary(family=family.name, outdir=outdir, splits=results, json_path=json_path,
                             variant=family.variant(), missing_splits=absent,
                             holdout_sequences=list(holdout_sequences or []) or None)


def record_dataset_json(outdir, family, results, missing_splits=None, holdout_sequences=None):
    """Metadata + per-split records, sequences and class statistics; splits not converted now are kept if their
    files still exist (and so is the holdout's naming, unless training was converted now)."""
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
                             "skipped": [{"name": n, "reason": why} for n, why in result.skipped],
                             "missing_labels": [{"name": n, "label": path} for n, path in result.missing_labels]}
        if result.categories:
            split_info[split]["categories"] = dict(sorted(result.categories.items()))
        if result.sequences:
            split_info[split]["sequences"] = dict(sorted(result.sequences.items()))
        split_info[split].update(result.class_counts.as_dict())
    info.update({
        "variant": family.variant(),
        "schema_version": SCHEMA_VERSION,
        "splits": split_info,
        "missing_splits": {split: what for split, what in (missing_splits or {}).items() if split not in split_info},
        "total_train_images": split_info.get("training", {}).get("records", 0),
        "holdout_sequences": (list(holdout_sequences or []) or None) if "training" in results
        else previous.get("holdout_sequences") if HOLDOUT in split_info else None,
        "source": family.source_description(),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "created_by": "utils/tfrecordify.py",
    })
    return write_dataset_json(outdir, info)


def build_parser(family_name=None):
    parser = argparse.ArgumentParser(
        description="Convert a segmentation dataset to TFRecords (+ dataset.json).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="families: %s.\nAdd --dataset_family X --help for X's own arguments and the layouts it reads."
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
    parser.add_argument("--holdout_sequence", default=None, metavar="NAME[,NAME]",
                        help="move these whole training sequences (CamVid drive, Cityscapes city, a folder "
                             "dataset's group) into a split of their own, 'holdout': validation on recordings "
                             "training never saw (train.py --val_split holdout)")
    parser.add_argument("--allow_missing_labels", action="store_true",
                        help="convert the images that have a label and say how many were left out (default: an "
                             "image without its label file stops the run, exit 2)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="reader threads (default: min(4, CPUs))")
    parser.add_argument("--no_progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's logs")
    if family_name is not None:
        family = families.get(family_name)
        group = parser.add_argument_group("%s arguments (%s)" % (family_name, family.description),
                                          family.layouts_help())
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
                          progress=not args.no_progress, allow_missing_labels=args.allow_missing_labels,
                          holdout_sequences=sequence_split.parse_names(args.holdout_sequence))
    except MissingLabelsError as error:
        print("error: %s" % error, file=sys.stderr)
        return EXIT_MISSING_LABELS
    except (DatasetError, ValueError) as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

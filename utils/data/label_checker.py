"""Check converted records before training on them.

    python utils/label_checker.py --tfrecords /data/camvid/training.tfrecords --dataset_family camvid \
        --num 8 --outdir /tmp/camvid_check

Every pixel of every record is checked against the dataset's classes (+ the
ignore label) and each label against its image's size; bad records are listed
by file name (exit status 1).  The first --num records are also written as
overlay | label-colour | legend PNGs: a wrong palette or a shifted class
mapping is obvious at a glance (idea: the 'label checker' of the KITTI/
Cityscapes FCN blog post).  Records are decoded with PIL, independently of the
TF pipeline, so a decoding mismatch shows up too.
"""
import argparse
import dataclasses
import glob
import os
import sys

import numpy as np

from utils import viz
from utils.data import families
from utils.data.dataset_info import DATASET_JSON, read_dataset_json
from utils.data.records import read_examples


@dataclasses.dataclass
class CheckReport:
    records: int = 0
    bad: list = dataclasses.field(default_factory=list)       # [(filename, problem)]
    pixel_counts: np.ndarray = None                            # per value 0..255
    overlays: list = dataclasses.field(default_factory=list)  # written PNG paths

    @property
    def ok(self):
        return self.records > 0 and not self.bad

    def lines(self, class_names=(), ignore_label=None):
        out = ["%d records checked, %d bad" % (self.records, len(self.bad))]
        out.extend("  BAD %s: %s" % item for item in self.bad)
        if self.pixel_counts is not None and self.pixel_counts.sum():
            total = float(self.pixel_counts.sum())
            out.append("pixel share per label value:")
            for value in np.nonzero(self.pixel_counts)[0]:
                name = (class_names[value] if value < len(class_names)
                        else "ignore" if value == ignore_label else "INVALID")
                out.append("  %3d %-16s %6.2f%%" % (value, name, 100.0 * self.pixel_counts[value] / total))
        out.extend("overlay: %s" % path for path in self.overlays)
        return out


def class_metadata(tfrecords, family=None):
    """(class_names, palette, ignore_label): dataset.json beside the records, else the family's own."""
    first = tfrecords[0] if isinstance(tfrecords, (list, tuple)) else tfrecords
    info = read_dataset_json(os.path.dirname(os.path.abspath(first)))
    if info is not None:
        if family is not None and info.get("family") != family:
            print("warning: dataset.json beside %s describes family %r; checking against %r's own classes, as "
                  "--dataset_family says" % (first, info.get("family"), family), file=sys.stderr)
        if family is None or info.get("family") == family:
            return tuple(info["class_names"]), [tuple(c) for c in info["palette"]], info["ignore_label"]
    if family is None:
        raise ValueError("no %s next to %s: pass --dataset_family" % (DATASET_JSON, first))
    cls = families.get(family)
    if not cls.class_names:
        raise ValueError("family %r defines its classes in %s, which is missing beside %s" % (family, DATASET_JSON, first))
    return tuple(cls.class_names), list(cls.palette), cls.ignore_label


def check_records(tfrecords, class_names, palette, ignore_label, num=8, outdir=None, alpha=0.5):
    """Validate every record; write `num` overlays into `outdir` (if given). -> CheckReport."""
    report = CheckReport(pixel_counts=np.zeros(256, np.int64))
    num_classes = len(class_names)
    if outdir:
        os.makedirs(outdir, exist_ok=True)
    for index, example in enumerate(read_examples(tfrecords)):
        report.records += 1
        name = example["filename"] or "record #%d" % index
        image, label = example["image"], example["label"]
        problems = []
        if label.ndim != 2:
            problems.append("label has shape %s, expected HxW" % (label.shape,))
        elif label.shape != image.shape[:2]:
            problems.append("label %s and image %s differ in size" % (label.shape, image.shape[:2]))
        if image.shape[:2] != (example["height"], example["width"]):
            problems.append("image is %s but the record says %dx%d"
                            % (image.shape[:2], example["height"], example["width"]))
        values, counts = np.unique(label, return_counts=True)
        report.pixel_counts[values.clip(0, 255)] += counts
        invalid = [int(v) for v in values if not (0 <= v < num_classes or v == ignore_label)]
        if invalid:
            problems.append("label values %s are neither a class (0..%d) nor ignore (%s)"
                            % (invalid, num_classes - 1, ignore_label))
        if problems:
            report.bad.append((name, "; ".join(problems)))
        if outdir and len(report.overlays) < num and label.shape == image.shape[:2]:
            picture = viz.overlay_with_legend(image, label, class_names, palette, alpha, ignore_label, title=name)
            path = os.path.join(outdir, "%03d_%s.png" % (index, os.path.splitext(os.path.basename(name))[0]))
            picture.save(path)
            report.overlays.append(path)
    return report


def expand_paths(patterns):
    """Files, globs, or record folders (every *.tfrecords* inside) -> sorted file list."""
    files = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            files += sorted(p for p in glob.glob(os.path.join(pattern, "*.tfrecords*")) if ".tmp-" not in p)
        elif any(c in pattern for c in "*?["):
            files += sorted(glob.glob(pattern))
        else:
            files.append(pattern)
    missing = [f for f in files if not os.path.isfile(f)]
    if not files or missing:
        raise FileNotFoundError("no record file(s) at %s" % (missing or patterns))
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(description="Validate every label pixel of TFRecords and write overlays.")
    parser.add_argument("--tfrecords", nargs="+", required=True, help="record file(s), glob(s) or folder(s)")
    parser.add_argument("--dataset_family", default=None,
                        help="classes to check against (default: dataset.json beside the records)")
    parser.add_argument("--num", type=int, default=8, help="overlays to write (default 8)")
    parser.add_argument("--outdir", default=None, help="where overlays go (none written without it)")
    parser.add_argument("--alpha", type=float, default=0.5, help="label opacity in overlays")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's logs")
    args = parser.parse_args(argv)
    try:
        files = expand_paths(args.tfrecords)
        class_names, palette, ignore_label = class_metadata(files, args.dataset_family)
    except (FileNotFoundError, ValueError) as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    report = check_records(files, class_names, palette, ignore_label, args.num, args.outdir, args.alpha)
    print("\n".join(report.lines(class_names, ignore_label)))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

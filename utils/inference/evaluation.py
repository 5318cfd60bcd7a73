"""Scoring a split at original resolution, with error bars: what test.py reports and results.json stores.

    examples = split_examples(datapath, "camvid", "validation")          # numpy, native size
    scored = score_split(segmenter, examples, on_image=None)             # per-image confusions + calibration
    report = summarize(scored.confusions, class_names, bootstrap=1000,   # mIoU, fwIoU, F1, ECE + 95 % CIs
                       calibration=scored.calibration)
    spread = checkpoint_spread({3000: 0.61, 6000: 0.63})                 # min / max / std over checkpoints

Why per-image confusion matrices: the dataset mIoU is computed from their
sum (ignore pixels excluded, as in utils/metrics.py), and resampling images
with replacement and summing again gives the bootstrap interval that
seg-mentor's Appendix A asks for.  The calibration histogram (confidence
bins of the softmax's top probability, utils/metrics.py) is kept per image
for the same reason: the ECE gets its interval from the same resampled
images.  The spread over several checkpoints of one run shows how much the
number depends on where training stopped.
"""
import collections
import csv
import itertools
import json
import math
import time

import numpy as np

from utils import metrics
from utils.inference import clusters
from utils.data.dataset_info import dataset_files
from utils.data.records import read_examples

Scored = collections.namedtuple("Scored", "confusions filenames seconds calibration categories sequences",
                                defaults=(None, None))


def split_examples(datapath, family, split, num_images=None):
    """Decoded records of a split at their native size (dicts: image, label, filename, ...), in file order."""
    examples = read_examples(dataset_files(datapath, family, split))
    return itertools.islice(examples, num_images) if num_images else examples


def image_confusion(prediction, label, num_classes, ignore_label=None):
    """C x C confusion of one image at the label's resolution; sizes must agree (no silent resize)."""
    prediction, label = np.asarray(prediction), np.asarray(label)
    if prediction.shape != label.shape:
        raise ValueError("prediction %s and label %s differ in size: score at the original resolution"
                         % (prediction.shape, label.shape))
    return metrics.confusion_matrix(label, prediction, num_classes, ignore_label)


def image_calibration(prediction, confidence, label, num_classes, ignore_label=None):
    """Calibration histogram (utils/metrics.py) of one image's scored pixels: those image_confusion counts."""
    prediction, label = np.asarray(prediction), np.asarray(label)
    scored = (label >= 0) & (label < num_classes)
    if ignore_label is not None:
        scored &= label != ignore_label
    return metrics.calibration_histogram(np.asarray(confidence)[scored], prediction[scored] == label[scored])


def score_split(segmenter, examples, on_image=None, probabilities=False):
    """Segment every example (batched) and score it against its label at original resolution.

    on_image(index, example, prediction) is called per image (pictures, progress, saved masks); with
    probabilities=True it gets the image's softmax probabilities [H, W, C] too, as a fourth argument.
    Returns Scored(confusions [N, C, C] int64, filenames, seconds spent segmenting,
    calibration [N, bins, 3]: per-image calibration histograms of the softmax's top probability,
    categories, sequences: each record's image/category and image/sequence, None where it has none).
    """
    confusions, calibration, filenames, categories, sequences, seconds = [], [], [], [], [], 0.0
    pending = []

    def flush():
        nonlocal seconds
        tic = time.time()
        outputs = segmenter.segment([example["image"] for _, example in pending], probabilities=probabilities,
                                    confidence=True)
        seconds += time.time() - tic
        predictions, confidences = outputs[0], outputs[-1]
        extras = zip(outputs[1]) if probabilities else [()] * len(pending)
        for (index, example), prediction, confidence, extra in zip(pending, predictions, confidences, extras):
            confusions.append(image_confusion(prediction, example["label"], segmenter.num_classes,
                                              segmenter.ignore_label))
            calibration.append(image_calibration(prediction, confidence, example["label"], segmenter.num_classes,
                                                 segmenter.ignore_label))
            filenames.append(example.get("filename", str(index)))
            categories.append(example.get("category"))
            sequences.append(example.get("sequence"))
            if on_image is not None:
                on_image(index, example, prediction, *extra)
        pending.clear()

    for index, example in enumerate(examples):
        pending.append((index, example))
        if len(pending) == segmenter.batch_size:
            flush()
    if pending:
        flush()
    if not confusions:
        raise ValueError("no images to score")
    return Scored(np.stack(confusions), filenames, seconds, np.stack(calibration), categories, sequences)


def summarize(confusions, class_names, bootstrap=1000, confidence=0.95, seed=0, calibration=None, filenames=None,
              family=None, bootstrap_by="image", categories=None, sequences=None):
    """Every number of a test run as a JSON-friendly dict, from per-image confusions [N, C, C].

    mIoU, frequency-weighted IoU, mean F1 (Dice), per-class IoU and F1 (None
    for a class absent from truth and prediction), pixel accuracy, mean class
    accuracy, per-class accuracy, the summed confusion matrix, per-image mIoU;
    with per-image calibration histograms [N, bins, 3] also the ECE and the
    reliability table.  With bootstrap > 0: 95 % CIs of mIoU, fwIoU, mean F1,
    each class's IoU and the ECE, all from the same resampled sets of images,
    or of the sequences / blocks of `bootstrap_by` (utils/inference/clusters.py;
    needs the images' file names and family).  With per-image `categories`
    (KITTI road's um / umm / uu, from the records): per_category mIoU and
    per-class IoU, as the benchmark reports them; with per-image `sequences` of
    two or more recordings (CamVid's test split: 0001TP, which training saw, and
    Seq05VD, which it did not) the same per sequence.
    """
    confusions = np.asarray(confusions, np.int64)
    total = confusions.sum(0)
    report = metrics.summary(total, class_names)
    support = total.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(support > 0, np.diag(total) / np.maximum(support, 1), np.nan)
    report["scored_pixels"] = report.pop("pixels")  # 'pixels' means the net's input size elsewhere
    report.update(
        num_images=int(len(confusions)),
        class_names=list(class_names),
        per_class_accuracy={name: _finite_or_none(a) for name, a in zip(class_names, accuracy)},
        confusion_matrix=total.tolist(),
        per_image_mIoU=[_finite_or_none(metrics.mean_iou(c)) for c in confusions],
        bootstrap_samples=int(bootstrap),
        confidence=confidence,
        mIoU_ci=None, fwIoU_ci=None, mean_F1_ci=None, per_class_iou_ci={name: None for name in class_names},
    )
    if categories is not None and any(c is not None for c in categories):
        report["per_category"] = per_category(confusions, categories, class_names)
    if sequences is not None and len({s for s in sequences if s is not None}) > 1 and sequences != categories:
        report["per_sequence"] = per_category(confusions, sequences, class_names)
    if calibration is not None:
        histogram = np.asarray(calibration, np.float64).sum(0)
        report.update(ECE=_finite_or_none(metrics.expected_calibration_error(histogram)), ECE_ci=None,
                      reliability=metrics.reliability(histogram))
    if bootstrap and len(confusions) > 1:
        names = filenames if filenames is not None else [str(i) for i in range(len(confusions))]
        ids, described = clusters.clusters_for(names, family, bootstrap_by, report["per_image_mIoU"])
        report["bootstrap_by"] = described

        def interval(stack, statistic):
            return metrics.bootstrap_interval(stack, statistic, bootstrap, confidence, seed, clusters=ids)

        report["mIoU_ci"] = list(interval(confusions, metrics.mean_iou))
        report["fwIoU_ci"] = list(interval(confusions, metrics.frequency_weighted_iou))
        report["mean_F1_ci"] = list(interval(confusions, metrics.mean_f1))
        lows, highs = interval(confusions, metrics.per_class_iou)
        report["per_class_iou_ci"] = {name: None if report["per_class_iou"][name] is None else [float(lo), float(hi)]
                                      for name, lo, hi in zip(class_names, lows, highs)}
        if calibration is not None:
            report["ECE_ci"] = list(interval(np.asarray(calibration, np.float64),
                                             metrics.expected_calibration_error))
    return report


def per_category(confusions, categories, class_names):
    """{category: num_images, mIoU, per_class_iou} from the summed confusions of each category's images (or
    sequence's: any per-image grouping)."""
    result = {}
    for category in sorted({c for c in categories if c is not None}):
        total = confusions[[i for i, c in enumerate(categories) if c == category]].sum(0)
        numbers = metrics.summary(total, class_names)
        result[category] = {"num_images": sum(c == category for c in categories),
                            "mIoU": _finite_or_none(numbers["mIoU"]), "per_class_iou": numbers["per_class_iou"]}
    return result


def _finite_or_none(value):
    value = float(value)
    return None if math.isnan(value) else value


def headline(report):
    """'mIoU 62.1 % (95 % CI 61.3-62.9)' for a summarize() report."""
    return metrics.format_miou(report["mIoU"], report.get("mIoU_ci"), report.get("confidence", 0.95))


def _percent(value, interval=None, confidence=0.95):
    """'80.2 %', or '80.2 % (95 % CI 79.0-81.3)'."""
    text = "%.1f %%" % (100.0 * value)
    if interval is not None:
        text += " (%d %% CI %.1f-%.1f)" % (round(100 * confidence), 100.0 * interval[0], 100.0 * interval[1])
    return text


def format_report(report):
    """Human-readable lines: headline, fwIoU and mean F1, accuracies, calibration, per-class IoU / F1 table."""
    level = report.get("confidence", 0.95)
    lines = [headline(report) + ("; the bootstrap resamples by %s" % report["bootstrap_by"]
                                 if report.get("bootstrap_by") else "")]
    if "fwIoU" in report:
        lines.append("fwIoU %s, mean F1 (Dice) %s" % (_percent(report["fwIoU"], report.get("fwIoU_ci"), level),
                                                      _percent(report["mean_F1"], report.get("mean_F1_ci"), level)))
    lines.append("pixel accuracy %.1f %%, mean class accuracy %.1f %%, %d images, %d scored pixels"
                 % (100 * report["pixel_accuracy"], 100 * report["mean_class_accuracy"], report["num_images"],
                    report["scored_pixels"]))
    if report.get("ECE") is not None:
        lines.append("calibration: ECE %s over %d confidence bins"
                     % (_percent(report["ECE"], report.get("ECE_ci"), level), len(report["reliability"]["pixels"])))
    for key, what in (("per_category", "category"), ("per_sequence", "sequence")):
        if report.get(key):
            lines.append("per %s: " % what + ", ".join(
                "%s %s (%d images)" % (group, "n/a" if entry["mIoU"] is None else "%.1f %%" % (100 * entry["mIoU"]),
                                       entry["num_images"]) for group, entry in report[key].items()))
    width = max(len(name) for name in report["per_class_iou"])
    intervals = report.get("per_class_iou_ci") or {}
    f1 = report.get("per_class_F1") or {}
    lines.append("per-class IoU:")
    for name, iou in report["per_class_iou"].items():
        if iou is None:
            lines.append("  %-*s   n/a (absent)" % (width, name))
            continue
        text = "  %-*s %5.1f %%" % (width, name, 100 * iou)
        if intervals.get(name):
            text += " (%4.1f-%4.1f)" % tuple(100 * v for v in intervals[name])
        if f1.get(name) is not None:
            text += "   F1 %5.1f %%" % (100 * f1[name])
        lines.append(text)
    return "\n".join(lines)


def checkpoint_spread(mious):
    """{step: mIoU} -> min / max / mean / std (population) over checkpoints, JSON-friendly."""
    if not mious:
        raise ValueError("no checkpoints to compare")
    steps = sorted(mious)
    values = np.asarray([mious[s] for s in steps], np.float64)
    return {"steps": steps, "mIoU": [float(v) for v in values], "min": float(values.min()),
            "max": float(values.max()), "mean": float(values.mean()), "std": float(values.std())}


def format_spread(spread):
    return ("mIoU over checkpoints %s: min %.1f %%, max %.1f %%, mean %.1f %%, std %.1f %%"
            % (", ".join(map(str, spread["steps"])), 100 * spread["min"], 100 * spread["max"],
               100 * spread["mean"], 100 * spread["std"]))


def write_json(path, data):
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2, allow_nan=False, default=_json_default)
        handle.write("\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError("not JSON serialisable: %r" % (value,))


def write_confusion_csv(path, confusion, class_names):
    """Rows = ground truth, columns = prediction, pixel counts; first row/column hold the class names."""
    confusion = np.asarray(confusion)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["truth \\ prediction"] + list(class_names))
        for name, row in zip(class_names, confusion):
            writer.writerow([name] + [int(v) for v in row])


def read_confusion_csv(path):
    """(matrix int64, class names) back from write_confusion_csv's file."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return np.asarray([[int(v) for v in row[1:]] for row in rows[1:]], np.int64), rows[0][1:]

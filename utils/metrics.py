"""Segmentation metrics from confusion matrices (numpy): mIoU, fwIoU, F1, accuracies, calibration, error bars.

Everything is derived from a C x C confusion matrix (rows = ground truth,
columns = prediction) with ignore pixels already excluded, so training's
monitor, test.py and the notebook all agree on one definition:

- IoU_c = TP_c / (TP_c + FP_c + FN_c); a class absent from both ground truth
  and prediction has no IoU (NaN) and is left out of the mean.
- frequency-weighted IoU = sum_c (ground-truth pixels of c / all pixels) * IoU_c
  (Long et al., FCN): the mIoU a pixel, not a class, would vote for.
- F1_c = Dice_c = 2 TP_c / (2 TP_c + FP_c + FN_c); absent classes as for IoU.
- pixel accuracy = trace / total; mean class accuracy = mean over classes
  present in the ground truth of TP_c / (TP_c + FN_c).

Calibration needs the softmax, not just the argmax: a calibration histogram
(per confidence bin: pixels, summed confidence, correct pixels) is a sum over
pixels like a confusion matrix, so per-image histograms add up and bootstrap
the same way.  ECE = sum_b |correct_b - confidence_b| / pixels (Guo et al. 2017).
"""
import warnings

import numpy as np


def confusion_matrix(labels, predictions, num_classes, ignore_label=None):
    """C x C int64 counts of (label, prediction) pairs; pixels labelled `ignore_label` are skipped."""
    labels = np.asarray(labels).ravel().astype(np.int64)
    predictions = np.asarray(predictions).ravel().astype(np.int64)
    if labels.shape != predictions.shape:
        raise ValueError("labels and predictions differ in size: %s vs %s" % (labels.shape, predictions.shape))
    keep = (labels >= 0) & (labels < num_classes)
    if ignore_label is not None:
        keep &= labels != ignore_label
    index = labels[keep] * num_classes + predictions[keep]
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_iou(confusion):
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(confusion):
    ious = per_class_iou(confusion)
    return float(np.nanmean(ious)) if np.any(np.isfinite(ious)) else float("nan")


def pixel_accuracy(confusion):
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


def mean_class_accuracy(confusion):
    confusion = np.asarray(confusion, dtype=np.float64)
    support = confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(support > 0, np.diag(confusion) / support, np.nan)
    return float(np.nanmean(accuracy)) if np.any(support > 0) else float("nan")


def frequency_weighted_iou(confusion):
    """sum_c (ground-truth pixels of c / all pixels) * IoU_c; NaN without pixels."""
    confusion = np.asarray(confusion, dtype=np.float64)
    support, total = confusion.sum(1), confusion.sum()
    if not total:
        return float("nan")
    return float(np.sum(np.where(support > 0, support * np.nan_to_num(per_class_iou(confusion)), 0.0)) / total)


def per_class_f1(confusion):
    """F1 = Dice = 2 TP / (2 TP + FP + FN) per class; NaN for a class absent from truth and prediction."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    denominator = confusion.sum(0) + confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2.0 * tp / denominator, np.nan)


def mean_f1(confusion):
    f1 = per_class_f1(confusion)
    return float(np.nanmean(f1)) if np.any(np.isfinite(f1)) else float("nan")


def _by_name(values, names):
    return {name: (None if np.isnan(value) else float(value)) for name, value in zip(names, values)}


def summary(confusion, class_names=None):
    """All headline numbers as a JSON-friendly dict."""
    ious = per_class_iou(confusion)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(ious))]
    return {
        "mIoU": mean_iou(confusion),
        "fwIoU": frequency_weighted_iou(confusion),
        "mean_F1": mean_f1(confusion),
        "pixel_accuracy": pixel_accuracy(confusion),
        "mean_class_accuracy": mean_class_accuracy(confusion),
        "per_class_iou": _by_name(ious, names),
        "per_class_F1": _by_name(per_class_f1(confusion), names),
        "pixels": int(np.asarray(confusion).sum()),
    }


# ------------------------------------------------------------------ calibration
CALIBRATION_BINS = 15  # Guo et al. 2017's equal-width confidence bins


def calibration_histogram(confidence, correct, bins=CALIBRATION_BINS):
    """[bins, 3] float64: per equal-width confidence bin, pixels, summed confidence and correct pixels.

    confidence: the softmax's top probability per scored pixel; correct: whether the argmax is the truth.
    Histograms of several images add up to the histogram of all their pixels.  Non-finite confidences
    (a diverged net's NaN softmax) are left out: they belong to no bin.
    """
    confidence = np.asarray(confidence, np.float64).ravel()
    correct = np.asarray(correct, bool).ravel()
    if confidence.shape != correct.shape:
        raise ValueError("confidence and correct differ in size: %s vs %s" % (confidence.shape, correct.shape))
    finite = np.isfinite(confidence)
    confidence, correct = confidence[finite], correct[finite]
    index = np.clip((confidence * bins).astype(np.int64), 0, bins - 1)
    return np.stack([np.bincount(index, minlength=bins).astype(np.float64),
                     np.bincount(index, weights=confidence, minlength=bins),
                     np.bincount(index, weights=correct.astype(np.float64), minlength=bins)], axis=1)


def expected_calibration_error(histogram):
    """ECE = sum over bins of |correct - summed confidence| / pixels: the pixel-weighted gap between how
    confident the softmax is and how often it is right.  NaN without pixels."""
    histogram = np.asarray(histogram, np.float64)
    total = histogram[:, 0].sum()
    return float(np.abs(histogram[:, 2] - histogram[:, 1]).sum() / total) if total else float("nan")


def reliability(histogram):
    """JSON-friendly reliability table: bin edges, pixels, mean confidence and accuracy per bin (None if empty)."""
    histogram = np.asarray(histogram, np.float64)
    bins = len(histogram)
    pixels = histogram[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.where(pixels > 0, histogram[:, 1] / np.maximum(pixels, 1), np.nan)
        accuracy = np.where(pixels > 0, histogram[:, 2] / np.maximum(pixels, 1), np.nan)
    return {"bin_edges": [i / bins for i in range(bins + 1)], "pixels": [int(p) for p in pixels],
            "mean_confidence": [None if np.isnan(v) else float(v) for v in mean_confidence],
            "accuracy": [None if np.isnan(v) else float(v) for v in accuracy]}


# ------------------------------------------------------------------ error bars
def bootstrap_interval(per_image, statistic, samples=1000, confidence=0.95, seed=0, clusters=None):
    """Bootstrap CI of a dataset statistic: resample images with replacement, recompute from summed arrays.

    per_image: [num_images, ...] additive per-image arrays (confusion matrices,
    calibration histograms); statistic(summed array) -> a number or a vector
    (e.g. per-class IoU: each component gets its own interval, NaN replicates
    left out).  Dataset metrics are not means over images, so each replicate
    sums the resampled images' arrays, as the full evaluation does.  One seed
    gives the same resampled image sets to every statistic.  clusters: one id
    per image; images of one cluster (a video sequence, a block of consecutive
    frames) are resampled together, as they are not independent draws (a
    cluster bootstrap).  Returns (low, high).
    """
    stack = np.asarray(per_image)
    if stack.ndim < 2 or len(stack) == 0:
        raise ValueError("need a [num_images, ...] stack of per-image arrays")
    if clusters is not None:
        ids, members = np.unique(np.asarray(clusters), return_inverse=True)
        stack = np.stack([stack[members == k].sum(0) for k in range(len(ids))])
    rng = np.random.RandomState(seed)
    n = len(stack)
    values = []
    for _ in range(samples):
        counts = np.bincount(rng.randint(0, n, n), minlength=n)
        values.append(statistic(np.tensordot(counts, stack, axes=1)))
    values = np.asarray(values, np.float64)
    alpha = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN components (a class never present) stay NaN
        low, high = np.nanquantile(values, alpha, axis=0), np.nanquantile(values, 1.0 - alpha, axis=0)
    if values.ndim == 1:
        return float(low), float(high)
    return low, high


def bootstrap_miou(per_image_confusions, samples=1000, confidence=0.95, seed=0, clusters=None):
    """Bootstrap CI (low, high) of the dataset mIoU from per-image confusion matrices [N, C, C]
    (clusters: see bootstrap_interval)."""
    stack = np.asarray(per_image_confusions, dtype=np.int64)
    if stack.ndim != 3 or len(stack) == 0:
        raise ValueError("need a [num_images, C, C] stack of confusion matrices")
    return bootstrap_interval(stack, mean_iou, samples, confidence, seed, clusters)


def format_miou(miou, interval=None, confidence=0.95):
    """'mIoU 62.1 % (95 % CI 61.3-62.9)' as seg-mentor's Appendix A asks for error bars."""
    text = "mIoU %.1f %%" % (100.0 * miou)
    if interval is not None:
        text += " (%d %% CI %.1f-%.1f)" % (round(100 * confidence), 100.0 * interval[0], 100.0 * interval[1])
    return text

"""Segmentation metrics from confusion matrices (numpy): mIoU, per-class IoU, accuracies, error bars.

Everything is derived from a C x C confusion matrix (rows = ground truth,
columns = prediction) with ignore pixels already excluded, so training's
monitor, test.py and the notebook all agree on one definition:

- IoU_c = TP_c / (TP_c + FP_c + FN_c); a class absent from both ground truth
  and prediction has no IoU (NaN) and is left out of the mean.
- pixel accuracy = trace / total; mean class accuracy = mean over classes
  present in the ground truth of TP_c / (TP_c + FN_c).
"""
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


def summary(confusion, class_names=None):
    """All headline numbers as a JSON-friendly dict."""
    ious = per_class_iou(confusion)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(ious))]
    return {
        "mIoU": mean_iou(confusion),
        "pixel_accuracy": pixel_accuracy(confusion),
        "mean_class_accuracy": mean_class_accuracy(confusion),
        "per_class_iou": {name: (None if np.isnan(iou) else float(iou)) for name, iou in zip(names, ious)},
        "pixels": int(np.asarray(confusion).sum()),
    }


def bootstrap_miou(per_image_confusions, samples=1000, confidence=0.95, seed=0, clusters=None):
    """Bootstrap CI of the dataset mIoU: resample images with replacement, recompute from summed matrices.

    Returns (low, high).  The mIoU is not a mean over images, so each bootstrap
    replicate sums the resampled images' confusion matrices, as the full
    evaluation does.  clusters: one id per image; images of one cluster (a video
    sequence, a block of consecutive frames) are resampled together, as they are
    not independent draws (a cluster bootstrap).
    """
    stack = np.asarray(per_image_confusions, dtype=np.int64)
    if stack.ndim != 3 or len(stack) == 0:
        raise ValueError("need a [num_images, C, C] stack of confusion matrices")
    if clusters is not None:
        ids, members = np.unique(np.asarray(clusters), return_inverse=True)
        stack = np.stack([stack[members == k].sum(0) for k in range(len(ids))])
    rng = np.random.RandomState(seed)
    n = len(stack)
    values = np.empty(samples)
    for i in range(samples):
        counts = np.bincount(rng.randint(0, n, n), minlength=n)
        values[i] = mean_iou(np.tensordot(counts, stack, axes=1))
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha))


def format_miou(miou, interval=None, confidence=0.95):
    """'mIoU 62.1 % (95 % CI 61.3-62.9)' as seg-mentor's Appendix A asks for error bars."""
    text = "mIoU %.1f %%" % (100.0 * miou)
    if interval is not None:
        text += " (%d %% CI %.1f-%.1f)" % (round(100 * confidence), 100.0 * interval[0], 100.0 * interval[1])
    return text

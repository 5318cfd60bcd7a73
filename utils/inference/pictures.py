"""The pictures a test run leaves behind: prediction panels, overlays, the confusion-matrix heat map,
the reliability diagram.

Panels put image | prediction | ground truth side by side with a legend of
the classes that occur, so a failure mode is visible at a glance; overlays
alpha-blend the prediction over the image.  The heat map and the
reliability diagram draw with
matplotlib's Agg canvas directly (no pyplot), so it works headless and never
changes the backend of a notebook that imports this module.
"""
import numpy as np

from utils import viz


def new_figure(**kwargs):
    """A matplotlib Figure on its own Agg canvas; matplotlib (a third of a second) is imported at the first one."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: only a picture needs matplotlib
    from matplotlib.figure import Figure  # deferred: as above
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def prediction_panel(image, prediction, class_names, palette, truth=None, ignore_label=None, title=None):
    """PIL image: image | prediction | ground truth (when given) + a legend of the classes present."""
    num_classes = len(class_names)
    classes = set(viz.classes_present(prediction, num_classes, ignore_label))
    panels = [image, viz.colorize(prediction, palette, ignore_label)]
    titles = [title or "image", "prediction"]
    if truth is not None:
        classes |= set(viz.classes_present(truth, num_classes, ignore_label))
        panels.append(viz.colorize(truth, palette, ignore_label))
        titles.append("ground truth")
    row = viz.side_by_side(panels, titles=titles)
    return viz.side_by_side([row, viz.legend(class_names, palette, sorted(classes))])


def overlay_picture(image, prediction, palette, alpha=0.5, ignore_label=None):
    """PIL image of the prediction alpha-blended over the image."""
    return viz.to_pil(viz.overlay(image, prediction, palette, alpha, ignore_label))


def confusion_heatmap(path, confusion, class_names, title=None):
    """PNG heat map of the confusion matrix, rows normalised to the ground-truth pixel count (recall, %).

    Each cell is annotated with its percentage; a row without ground-truth pixels stays empty.
    """

    confusion = np.asarray(confusion, np.float64)
    support = confusion.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.where(support > 0, 100.0 * confusion / np.maximum(support, 1), np.nan)
    size = len(class_names)
    figure = new_figure(figsize=(2.0 + 0.55 * size, 1.5 + 0.5 * size), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    shown = axes.imshow(np.ma.masked_invalid(normalised), cmap="Blues", vmin=0, vmax=100)
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04, label="% of the true class's pixels")
    axes.set_xticks(range(size))
    axes.set_yticks(range(size))
    axes.set_xticklabels(class_names, rotation=60, ha="right", fontsize=8)
    axes.set_yticklabels(class_names, fontsize=8)
    axes.set_xlabel("prediction")
    axes.set_ylabel("ground truth")
    if title:
        axes.set_title(title, fontsize=9)
    for row in range(size):
        for col in range(size):
            value = normalised[row, col]
            if np.isfinite(value) and value >= 0.5:
                axes.text(col, row, "%.0f" % value, ha="center", va="center", fontsize=6,
                          color="white" if value > 60 else "black")
    figure.tight_layout()
    figure.savefig(path)
    return path


def reliability_diagram(path, reliability, title=None):
    """PNG reliability diagram of a summarize() report's `reliability` table (utils/metrics.py).

    Top: accuracy per confidence bin against the diagonal (a 0.9-confident
    pixel should be right 90 % of the time), the gap to the bin's mean
    confidence shaded; bottom: the share of pixels per bin, so a gap in an
    almost empty bin is read as such.
    """
    edges = np.asarray(reliability["bin_edges"], np.float64)
    lefts, width = edges[:-1], np.diff(edges)
    pixels = np.asarray(reliability["pixels"], np.float64)
    accuracy = np.asarray([np.nan if a is None else a for a in reliability["accuracy"]], np.float64)
    confidence = np.asarray([np.nan if c is None else c for c in reliability["mean_confidence"]], np.float64)
    shown = np.isfinite(accuracy)
    figure = new_figure(figsize=(5.0, 6.0), dpi=100)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(lefts[shown], accuracy[shown], width=width[shown], align="edge", color="#4c72b0", edgecolor="black",
            label="accuracy")
    top.bar(lefts[shown], (confidence - accuracy)[shown], bottom=accuracy[shown], width=width[shown], align="edge",
            color="#dd8452", alpha=0.5, edgecolor="#dd8452", label="gap to mean confidence")
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy of the pixels in the bin")
    top.legend(loc="upper left", fontsize=8)
    if title:
        top.set_title(title, fontsize=9)
    bottom.bar(lefts, pixels / max(pixels.sum(), 1.0), width=width, align="edge", color="grey", edgecolor="black")
    bottom.set_xlabel("confidence (softmax top probability)")
    bottom.set_ylabel("share of pixels")
    figure.tight_layout()
    figure.savefig(path)
    return path

"""The study's pictures: mIoU against GMACs with error bars, per-class IoU per configuration, the curves.

Drawn with matplotlib's Agg canvas (no pyplot state), so it runs headless.
"""
import os

import numpy as np

from utils.inference.pictures import new_figure

MARKERS = "osD^vP*X<>"


def _save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def bars_label(groups):
    """What the error bars of `groups` ({configuration: [records]}) are: the seed min-max where a configuration
    has several seeds, the bootstrap CI of its one cell where it has one."""
    sizes = {len(members) > 1 for members in groups.values()}
    if sizes == {True}:
        return "mean over seeds; bars: seed min-max"
    if sizes == {False}:
        return "one seed; bars: bootstrap 95 % CI"
    return "mean over seeds; bars: seed min-max, bootstrap 95 % CI where one seed"


def miou_vs_gmacs(records, path):
    return _save(miou_vs_gmacs_figure(records), path)


def miou_vs_gmacs_figure(records):
    """One point per configuration: mean mIoU over its seeds, error bar = min-max over seeds (or the cell's
    bootstrap CI with one seed, the axis label says which); colour = encoder, marker = decoder."""
    encoders = sorted({r["encoder"] for r in records})
    decoders = sorted({r["decoder"] for r in records})
    colours = {e: "C%d" % i for i, e in enumerate(encoders)}
    markers = {d: MARKERS[i % len(MARKERS)] for i, d in enumerate(decoders)}
    figure = new_figure(figsize=(7, 4.5))
    axis = figure.add_subplot(1, 1, 1)
    groups = {}
    for r in records:
        groups.setdefault(r["config"], []).append(r)
    for config, members in groups.items():
        values = np.array([m["mIoU"] for m in members]) * 100
        if len(members) > 1:
            low, high = values.mean() - values.min(), values.max() - values.mean()
        else:
            ci = members[0]["mIoU_ci"] or [members[0]["mIoU"]] * 2
            low, high = values[0] - 100 * ci[0], 100 * ci[1] - values[0]
        first = members[0]
        axis.errorbar(first["gmacs"], values.mean(), yerr=[[low], [high]], fmt=markers[first["decoder"]],
                      color=colours[first["encoder"]], capsize=4, markersize=8)
        axis.scatter([m["gmacs"] for m in members], values, color=colours[first["encoder"]], s=10, alpha=0.5)
    for encoder in encoders:
        axis.plot([], [], "s", color=colours[encoder], label=encoder)
    for decoder in decoders:
        axis.plot([], [], markers[decoder], color="gray", label=decoder)
    axis.set_xlabel("GMACs at %s" % records[0]["gmacs_size"])
    axis.set_ylabel("val mIoU %% (%s)" % bars_label(groups))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    return figure


def per_class_heatmap(records, path):
    """Configurations x classes: per-class IoU averaged over seeds."""
    groups = {}
    for r in records:
        groups.setdefault(r["config"], []).append(r)
    classes = list(records[0]["per_class_iou"])
    matrix = np.array([[np.nanmean([np.nan if m["per_class_iou"][c] is None else m["per_class_iou"][c]
                                    for m in members]) * 100 for c in classes] for members in groups.values()])
    figure = new_figure(figsize=(1.0 + 0.6 * len(classes), 1.2 + 0.45 * len(groups)))
    axis = figure.add_subplot(1, 1, 1)
    image = axis.imshow(matrix, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    axis.set_xticks(range(len(classes)))
    axis.set_xticklabels(classes, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(groups)))
    axis.set_yticklabels(list(groups), fontsize=8)
    for (row, column), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            axis.text(column, row, "%.0f" % value, ha="center", va="center", fontsize=7,
                      color="white" if value < 50 else "black")
    figure.colorbar(image, ax=axis, label="IoU %")
    return _save(figure, path)


def curves(records, path):
    return _save(curves_figure(records), path)


def curves_figure(records):
    """Quarter-validation mIoU of every cell along training; a curve of one point (one validation in the run)
    is drawn as a marker, which a line alone would not show."""
    figure = new_figure(figsize=(7, 4.5))
    axis = figure.add_subplot(1, 1, 1)
    for index, r in enumerate(records):
        if r["curve"]:
            steps, values = zip(*r["curve"])
            axis.plot(steps, np.array(values) * 100, label=r["id"], color="C%d" % (index % 10), linewidth=1,
                      marker="o" if len(steps) == 1 else "None", markersize=5)
    if not any(r["curve"] for r in records):
        axis.text(0.5, 0.5, "no quarter-validation in these runs (train.py --val_every)", ha="center",
                  va="center", transform=axis.transAxes)
    axis.set_xlabel("step")
    axis.set_ylabel("quarter-val mIoU %")
    axis.grid(alpha=0.3)
    if any(r["curve"] for r in records):
        axis.legend(fontsize=6, loc="lower right")
    return figure


def draw_all(records, folder):
    """The three pictures into `folder`; returns their paths."""
    if not records:
        return []
    return [miou_vs_gmacs(records, os.path.join(folder, "miou_vs_gmacs.png")),
            per_class_heatmap(records, os.path.join(folder, "per_class_iou.png")),
            curves(records, os.path.join(folder, "curves.png"))]

"""The study table: every cell's scores and costs, the seed spread per configuration, paired comparisons.

Per cell: mIoU with its bootstrap CI (resampling what test.py's --bootstrap_by
says), the spread over the last checkpoints, per-class IoU, parameters, GMACs,
CPU latency (bench.py, batch 1) and training minutes.  Per configuration (the
cells that differ only in their seed): mean, std and min-max of the mIoU, so
the seed spread stands next to the bootstrap interval.  A paired comparison
(the same seeds, the same images) bootstraps the per-image mIoU differences of
B - A: "is B really better than A?".
"""
import csv
import datetime
import json
import os
import re

import numpy as np

import arch
from utils.compat import software
from utils.inference import clusters as clustering
from utils.study import identity, runner
from utils.study.grid import check_classes
from utils.training.config import RunConfig

_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) ")
_QUARTER = re.compile(r"step (\d+) \| quarter-val mIoU ([0-9.]+) on")
PAUSE_SECONDS = 300  # longer silences in a runlog are interruptions (a resumed run), not training


def training_minutes(runlog):
    """Minutes the runlog's lines span, interruptions longer than PAUSE_SECONDS left out."""
    stamps = []
    for line in open(runlog):
        match = _TIME.match(line)
        if match:
            stamps.append(datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp())
    gaps = np.diff(stamps) if len(stamps) > 1 else np.zeros(0)
    return float(gaps[gaps < PAUSE_SECONDS].sum() / 60.0)


def quarter_val_curve(runlog):
    """[(step, quarter-val mIoU)] of a run, later lines of a step replacing earlier ones."""
    curve = {}
    for line in open(runlog):
        match = _QUARTER.search(line)
        if match:
            curve[int(match.group(1))] = float(match.group(2))
    return sorted(curve.items())


def cell_record(study, root, cell):
    """Everything the table says about one cell (None when it has no scores yet)."""
    path = runner.results_path(root, cell)
    if not os.path.isfile(path):
        return None
    summary = json.load(open(path))
    final = summary
    if "checkpoint_spread" in summary:  # several checkpoints: the last one's full results are in step_<N>/
        last = summary["steps"][-1]
        final = json.load(open(os.path.join(os.path.dirname(path), "step_%d" % last, "results.json")))
    run = runner.run_folder(root, cell)
    config = RunConfig.load(run)
    size = study.test.get("latency") or "360x480"
    height, width = (int(v) for v in str(size).lower().split("x"))
    counts = arch.summarize(config.model, height, width)
    latency = None
    if os.path.isfile(runner.latency_path(root, cell, size)):
        lines = [json.loads(line) for line in open(runner.latency_path(root, cell, size)) if line.strip()]
        latency = lines[-1].get("infer_ms_median") if lines else None
    spread = summary.get("checkpoint_spread")
    runlog = os.path.join(run, "runlog")
    return {"id": cell.id, "axes": cell.axes, "config": cell.config_key(), "run": run,
            "steps": final["step"], "mIoU": final["mIoU"], "mIoU_ci": final.get("mIoU_ci"),
            "bootstrap_by": final.get("bootstrap_by"), "spread": spread,
            "per_class_iou": final["per_class_iou"], "mean_class_accuracy": final.get("mean_class_accuracy"),
            "pixel_accuracy": final.get("pixel_accuracy"), "per_image_mIoU": final["per_image_mIoU"],
            "filenames": final["filenames"], "family": config.data.dataset_family,
            "params_m": counts["params"] / 1e6, "gmacs": counts["gmacs"], "gmacs_size": size,
            "latency_ms": latency, "train_minutes": training_minutes(runlog),
            "curve": quarter_val_curve(runlog), "encoder": config.model.encoder, "decoder": config.model.decoder,
            "settings_hash": identity.read(runner.cell_folder(root, cell)).get("hash"),
            "precision": config.train.precision, "provenance": config.provenance,
            "split": final.get("split"), "sequences": final.get("sequences")}


def configurations(records):
    """{configuration: [records]} in study order."""
    groups = {}
    for record in records:
        groups.setdefault(record["config"], []).append(record)
    return groups


def seed_statistics(records):
    values = np.asarray([r["mIoU"] for r in records], np.float64)
    return {"cells": len(values), "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,  # one cell has no spread
            "min": float(values.min()), "max": float(values.max()),
            "mean_ci_width": float(np.mean([r["mIoU_ci"][1] - r["mIoU_ci"][0] for r in records if r["mIoU_ci"]]
                                           or [float("nan")]))}


def paired_difference(pairs, cluster_ids, samples=1000, confidence=0.95, seed=0):
    """Mean per-image mIoU difference B - A over paired cells, with its bootstrap CI.

    pairs: [(a_scores, b_scores)], per-image mIoU of two cells on the same images (None: no valid pixel).
    cluster_ids: one per image; clusters are resampled together, for every pair at once.
    Returns {mean, ci, p_b_better (share of replicates where B - A > 0), images, pairs}.
    """
    differences = []
    for a, b in pairs:
        differences.append([np.nan if x is None or y is None else y - x for x, y in zip(a, b)])
    diff = np.asarray(differences, np.float64)            # [pairs, images]
    valid = np.isfinite(diff)
    keep = valid.any(axis=0)                               # images some pair scored
    per_image = np.where(valid, diff, 0.0).sum(0)[keep] / valid.sum(0)[keep]  # the pairs' mean difference
    ids = np.asarray(cluster_ids)[keep]
    labels, members = np.unique(ids, return_inverse=True)
    sums = np.bincount(members, weights=per_image, minlength=len(labels))
    sizes = np.bincount(members, minlength=len(labels)).astype(np.float64)
    rng = np.random.RandomState(seed)
    replicates = np.empty(samples)
    for index in range(samples):
        counts = np.bincount(rng.randint(0, len(labels), len(labels)), minlength=len(labels))
        replicates[index] = np.dot(counts, sums) / max(np.dot(counts, sizes), 1.0)
    alpha = (1.0 - confidence) / 2.0
    return {"mean": float(per_image.mean()), "ci": [float(np.quantile(replicates, alpha)),
                                                    float(np.quantile(replicates, 1.0 - alpha))],
            "p_b_better": float(np.mean(replicates > 0)), "images": int(len(per_image)), "pairs": len(pairs)}


def _axes_key(axes):
    return tuple((key, str(value)) for key, value in axes.items())


def comparisons(study, records):
    """The study's `compare` entries: cells of A and B paired on every other axis (the seed among them)."""
    index = {_axes_key(r["axes"]): r for r in records}
    results = []
    for entry in study.compare:
        pairs, filenames, family = [], None, None
        for a in records:
            if not all(str(a["axes"].get(k)) == str(v) for k, v in entry["a"].items()):
                continue
            b = index.get(_axes_key(dict(a["axes"], **entry["b"])))
            if b is None or b is a:
                continue
            if a["filenames"] != b["filenames"]:
                raise ValueError("cells %s and %s were scored on different images" % (a["id"], b["id"]))
            pairs.append((a["per_image_mIoU"], b["per_image_mIoU"]))
            filenames, family = a["filenames"], a["family"]
        if not pairs:
            results.append({"a": entry["a"], "b": entry["b"], "pairs": 0})
            continue
        scores = np.nanmean([[np.nan if v is None else v for v in a] for a, _ in pairs], axis=0)
        ids, described = clustering.clusters_for(filenames, family, study.test["bootstrap_by"], list(scores))
        result = paired_difference(pairs, ids, samples=max(200, int(study.test["bootstrap"])))
        result.update(a=entry["a"], b=entry["b"], bootstrap_by=described)
        results.append(result)
    return results


def _percent(value):
    return "-" if value is None else "%.1f" % (100.0 * value)


def _spread(value):
    """A spread over seeds: n/a for a configuration of one cell (there is nothing to spread)."""
    return "n/a" if value is None else _percent(value)


def _ci(ci):
    return "-" if not ci else "%.1f-%.1f" % (100.0 * ci[0], 100.0 * ci[1])


def training_sequences_flag(record):
    """The table's 'from training sequences' cell: '101/101' (optimistic for new scenes), 'none', or '?' where
    the records did not say which sequence each image comes from."""
    report = record.get("sequences")
    if not report:
        return "?"
    return "%d/%d" % (report["shared_images"], report["num_images"]) if report["shared_images"] else "none"


def made_with(record):
    """What made a cell's run, as the provenance table's columns (runargs' provenance; "-" where an older run
    did not record it)."""
    made = record.get("provenance") or {}
    versions, cpu, onednn = made.get("versions") or {}, made.get("cpu") or {}, (made.get("backend") or {})
    return {"code": software.describe(made.get("code")) if "code" in made else "-",
            "Python": versions.get("python") or "-", "TensorFlow": versions.get("tensorflow") or "-",
            "tf-slim": versions.get("tf_slim") or "-", "numpy": versions.get("numpy") or "-",
            "CPU": cpu.get("model") or "-", "CPU flags": " ".join(cpu.get("flags") or []) or "-",
            "oneDNN": "-" if "onednn" not in onednn else ("on" if onednn["onednn"] else "off"),
            "precision": record.get("precision") or "-"}


def provenance_lines(records):
    """The provenance table: one row per distinct combination of code, libraries, CPU, kernels and precision."""
    rows = {}
    for r in records:
        rows.setdefault(tuple(made_with(r).items()), []).append(r["id"])
    if not rows:
        return []
    columns = [name for name, _ in next(iter(rows))]
    lines = ["", "What made the cells (runargs' provenance):", "",
             "| cells | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for row, ids in rows.items():
        lines.append("| %s | %s |" % (", ".join(ids), " | ".join(value for _, value in row)))
    return lines


def _class_columns(study, records):
    """The study's `classes`, checked against the class names the cells were scored on."""
    if records:
        check_classes(study, list(records[0]["per_class_iou"]), "this dataset")
    return list(study.classes)


def markdown(study, records, groups, compared, missing=()):
    classes = _class_columns(study, records)
    lines = ["# Study %s" % study.name, "",
             "%d cells; budget %s; scored by test.py on %s (%s bootstrap, %s); GMACs at %s; latency: bench.py, "
             "batch 1" % (len(study.cells), study.budget, study.test.get("split") or "validation",
                          study.test["bootstrap"],
                          records[0]["bootstrap_by"] if records else study.test["bootstrap_by"],
                          study.test.get("latency") or "360x480"), "",
             "| cell | mIoU % | 95 % CI | last checkpoints min-max | mean class acc. % | params M | GMACs "
             "| latency ms | train min | from training sequences |" + "".join(" %s IoU %% |" % c for c in classes),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(classes)]
    for r in records:
        spread = r["spread"]
        lines.append("| %s | %s | %s | %s | %s | %.2f | %.2f | %s | %.1f | %s |" % (
            r["id"], _percent(r["mIoU"]), _ci(r["mIoU_ci"]),
            "%s-%s" % (_percent(spread["min"]), _percent(spread["max"])) if spread else "-",
            _percent(r.get("mean_class_accuracy")), r["params_m"], r["gmacs"],
            "-" if r["latency_ms"] is None else "%.0f" % r["latency_ms"], r["train_minutes"],
            training_sequences_flag(r))
            + "".join(" %s |" % _percent(r["per_class_iou"][c]) for c in classes))
    for cell_id in missing:
        lines.append("| %s | not scored |" % cell_id + " |" * (8 + len(classes)))
    lines += ["", "Across seeds, per configuration:", "",
              "| configuration | cells | mean mIoU % | std | min-max | mean width of the bootstrap CI |",
              "|---|---:|---:|---:|---:|---:|"]
    for config, stats in groups.items():
        lines.append("| %s | %d | %s | %s | %s | %s |" % (
            config, stats["cells"], _percent(stats["mean"]), _spread(stats["std"]),
            "n/a" if stats["cells"] == 1 else "%s-%s" % (_percent(stats["min"]), _percent(stats["max"])),
            _percent(stats["mean_ci_width"])))
    if compared:
        lines += ["", "Paired comparisons (per-image mIoU, B - A, same seeds and images):", "",
                  "| A | B | pairs | images | mean B - A (points) | 95 % CI | share of bootstrap replicates with B > A |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for c in compared:
            if not c["pairs"]:
                lines.append("| %s | %s | 0 | | no paired cells | | |" % (c["a"], c["b"]))
                continue
            lines.append("| %s | %s | %d | %d | %+.1f | %s | %.2f |" % (
                c["a"], c["b"], c["pairs"], c["images"], 100.0 * c["mean"],
                "%+.1f to %+.1f" % (100.0 * c["ci"][0], 100.0 * c["ci"][1]), c["p_b_better"]))
    lines += provenance_lines(records)
    return "\n".join(lines) + "\n"


def write(study, root, log=print):
    """Collect the scored cells, write results/{table.md, table.csv, cells.json}; returns (records, markdown)."""
    records, missing = [], []
    for cell in study.cells:
        record = cell_record(study, root, cell)
        (records.append(record) if record else missing.append(cell.id))
    groups = {config: seed_statistics(members) for config, members in configurations(records).items()}
    compared = comparisons(study, records)
    out = os.path.join(root, "results")
    os.makedirs(out, exist_ok=True)
    text = markdown(study, records, groups, compared, missing)
    with open(os.path.join(out, "table.md"), "w") as handle:
        handle.write(text)
    classes = list(records[0]["per_class_iou"]) if records else []
    with open(os.path.join(out, "table.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cell"] + list(study.axes) + ["mIoU", "ci_low", "ci_high", "spread_min", "spread_max",
                                                       "params_m", "gmacs", "latency_ms", "train_minutes",
                                                       "mean_class_accuracy", "pixel_accuracy",
                                                       "from_training_sequences"] + classes
                        + ["settings_hash", "code", "tensorflow", "precision", "onednn"])
        for r in records:
            spread = r["spread"] or {}
            writer.writerow([r["id"]] + [r["axes"][k] for k in study.axes] + [
                r["mIoU"], *(r["mIoU_ci"] or [None, None]), spread.get("min"), spread.get("max"), r["params_m"],
                r["gmacs"], r["latency_ms"], r["train_minutes"], r.get("mean_class_accuracy"),
                r.get("pixel_accuracy"), training_sequences_flag(r)] + [r["per_class_iou"][c] for c in classes]
                + [r["settings_hash"]] + [made_with(r)[k] for k in ("code", "TensorFlow", "precision", "oneDNN")])
    slim = [{k: v for k, v in r.items() if k not in ("per_image_mIoU", "filenames")} for r in records]
    with open(os.path.join(out, "cells.json"), "w") as handle:
        json.dump({"cells": slim, "configurations": groups, "comparisons": compared, "missing": missing},
                  handle, indent=1)
    return records, text

"""study.py: a cell is its settings (stale cells stop the study), --set overrides, pictures and tables that say
what they show, and the provenance of every run."""
import glob
import importlib.metadata
import json
import os
import subprocess

import numpy
import pytest

import study as study_py
import train
from tests.conftest import ROOT
from utils.compat import software
from utils.compat import tf
from utils.inference import score_events
from utils.study import grid, identity, plots, runner, table
from utils.training import runfolder


def _study_data(**changes):
    data = {"name": "tiny", "base": {"dataset_family": "camvid", "datapath": "tmp/segdata", "pretrained": "none",
                                     "encoder": "resnet_v1_18", "pixels": 64, "batch_size": 2, "learnrate": 0.002,
                                     "seed": 1, "val_every": 4, "log_every": 2},
            "axes": {"net": {"FCN": {"decoder": "FCN"}, "LinkNet": {"decoder": "LinkNet"}}},
            "budget": {"max_steps": 100}, "test": {"bootstrap": 100, "checkpoints": 1, "latency": None}}
    for key, value in changes.items():
        data[key] = dict(data.get(key, {}), **value) if isinstance(value, dict) else value
    return data


def _write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def test_study_knows_trains_execution_flags():
    """identity.EXECUTION is train.py's EXECUTION (the study cannot import train.py): what is not a cell."""
    assert set(identity.EXECUTION) == set(train.EXECUTION)


def test_set_overrides_are_typed_like_the_file(tmp_path, monkeypatch):
    path = _write(tmp_path / "tiny.json", _study_data())
    study = grid.load(path, train.build_parser(), ["datapath=/data/segdata", "budget.max_steps=600",
                                                    "learnrate=1", "test.latency=360x480", "axes.seed=[1, 2]",
                                                    "test.bootstrap=2000", "name=other"])
    cell = study.cells[0]
    assert cell.settings["datapath"] == "/data/segdata" and "--datapath /data/segdata" in " ".join(cell.argv)
    assert study.budget == {"max_steps": 600} and study.test["bootstrap"] == 2000 and study.name == "other"
    assert cell.settings["learnrate"] == 1.0 and isinstance(cell.settings["learnrate"], float)  # as the file's
    assert study.test["latency"] == "360x480" and study.axes["seed"] == [1, 2] and len(study.cells) == 4
    assert grid.load(path, train.build_parser(), ["encoder=mobilenet_v2"]).cells[0].settings["encoder"] == \
        "mobilenet_v2"
    # a study file names no machine's paths: relative to the project, $VARIABLES expanded
    assert grid.load(path, train.build_parser()).cells[0].settings["datapath"] == os.path.join(ROOT, "tmp",
                                                                                                "segdata")
    monkeypatch.setenv("MY_DATA", str(tmp_path))
    assert grid.load(path, train.build_parser(), ["datapath=$MY_DATA/camvid"]).cells[0].settings["datapath"] \
        == str(tmp_path / "camvid")


@pytest.mark.parametrize("overrides, expected", [
    (["learnrat=0.1"], "--set learnrat=0.1: 'learnrat' is not a train.py flag (a base key); did you mean learnrate?"),
    (["budget.max_step=600"], "'max_step' is not a budget key (max_steps, minutes); did you mean max_steps?"),
    (["tst.bootstrap=10"], "'tst' is not a study key (name, base, axes, budget, test, compare, classes); "
                           "did you mean test?"),
    (["test.boostrap=10"], "did you mean bootstrap?"),
    (["budget"], "--set budget: expected KEY=VALUE"),
])
def test_a_misspelt_override_gets_did_you_mean(tmp_path, overrides, expected):
    path = _write(tmp_path / "tiny.json", _study_data())
    with pytest.raises(grid.StudyError) as caught:
        grid.load(path, train.build_parser(), overrides)
    assert expected in str(caught.value)


@pytest.mark.parametrize("changes, expected", [
    ({"base": {"learn_rate": 0.1}}, "base key 'learn_rate' is not a train.py flag; did you mean learnrate?"),
    ({"tset": {}}, "did you mean test?"),
    ({"test": {"bootstraps": 10}}, "did you mean bootstrap?"),
    ({"axes": {"net": {"FCN": {"decoder": "FCN", "learnrat": 1}}}}, "did you mean learnrate?"),
    ({"base": {"lr_schedule": "polly"}}, "did you mean poly?"),
])
def test_a_misspelt_study_key_gets_did_you_mean(tmp_path, changes, expected):
    path = _write(tmp_path / "bad.json", _study_data(**changes))
    with pytest.raises(grid.StudyError) as caught:
        grid.load(path, train.build_parser())
    assert expected in str(caught.value)


def _record(cell_id, config, miou, curve, ci=(0.1, 0.3)):
    return {"id": cell_id, "config": config, "mIoU": miou, "mIoU_ci": list(ci), "encoder": "resnet_v1_18",
            "decoder": config, "gmacs": 1.0, "gmacs_size": "64x96", "curve": curve, "spread": None,
            "per_class_iou": {"Sky": 0.5}, "mean_class_accuracy": 0.4, "params_m": 1.0, "latency_ms": None,
            "train_minutes": 0.1, "bootstrap_by": "image", "precision": "fp32",
            "provenance": {"code": {"commit": "a" * 40, "dirty": True}, "versions": {"tensorflow": "2.21.0"}}}


def test_one_point_curves_show_markers_and_bars_say_what_they_are():
    single = [_record("net-FCN", "FCN", 0.2, [(4, 0.2)]), _record("net-LinkNet", "LinkNet", 0.25, [(4, 0.25)])]
    lines = [line for line in plots.curves_figure(single).axes[0].get_lines() if line.get_label().startswith("net-")]
    assert len(lines) == 2 and all(line.get_marker() == "o" for line in lines)
    longer = [_record("net-FCN", "FCN", 0.2, [(4, 0.2), (8, 0.3)])]
    assert plots.curves_figure(longer).axes[0].get_lines()[0].get_marker() in ("None", None, "")
    one_seed = plots.miou_vs_gmacs_figure(single).axes[0].get_ylabel()
    assert "bootstrap 95 % CI" in one_seed and "min-max" not in one_seed
    seeds = single + [_record("net-FCN-2", "FCN", 0.3, []), _record("net-LinkNet-2", "LinkNet", 0.3, [])]
    assert "bars: seed min-max" in plots.miou_vs_gmacs_figure(seeds).axes[0].get_ylabel()
    assert "where one seed" in plots.miou_vs_gmacs_figure(seeds[:3]).axes[0].get_ylabel()


def test_a_configuration_of_one_cell_has_no_spread(tmp_path):
    study = grid.load(_write(tmp_path / "tiny.json", _study_data()), train.build_parser())
    records = [_record("net-FCN", "net=FCN", 0.2, []), _record("net-LinkNet", "net=LinkNet", 0.25, []),
               _record("net-LinkNet", "net=LinkNet", 0.35, [])]
    groups = {config: table.seed_statistics(members) for config, members in table.configurations(records).items()}
    assert groups["net=FCN"]["std"] is None and groups["net=LinkNet"]["std"] == pytest.approx(0.0707, abs=1e-3)
    text = table.markdown(study, records, groups, [])
    assert "| net=FCN | 1 | 20.0 | n/a | n/a |" in text and "| net=LinkNet | 2 | 30.0 | 7.1 | 25.0-35.0 |" in text
    assert "| net-FCN, net-LinkNet, net-LinkNet | aaaaaaa+dirty |" in text  # the provenance table, one row


def test_provenance_outside_a_git_checkout(tmp_path):
    code = software.code_version(str(tmp_path))
    assert code["commit"] is None and code["git"].startswith("not a git checkout")
    assert software.describe(code) == "not a git checkout"


def test_a_run_folder_records_the_code_and_library_versions(tiny_run):
    made = runfolder.read_runargs(tiny_run["folder"])["provenance"]
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert len(head) == 40 and made["code"]["commit"] == head and isinstance(made["code"]["dirty"], bool)
    assert made["versions"]["tensorflow"] == tf.__version__ and made["versions"]["tf_slim"] == \
        importlib.metadata.version("tf-slim")
    assert made["versions"]["numpy"] == numpy.__version__ and made["versions"]["python"].count(".") == 2
    assert made["cpu"]["model"] and "flags" in made["cpu"] and made["backend"]["onednn"] in (True, False)


def _mtimes(folder):
    """What training wrote into a run folder, by modification time (test.py's TensorBoard scores left out)."""
    return {name: os.path.getmtime(name) for name in glob.glob(os.path.join(folder, "*"))
            if os.path.basename(name) != score_events.SCORES_DIR}


def test_an_edited_study_stops_on_its_stale_cells_and_reruns_exactly_them(sample_datapath, tmp_path, capsys):
    """The issue's reproduction: edit the study's learnrate, keep its name, run it again."""
    data = _study_data()
    path = _write(tmp_path / "tiny.json", data)
    studies = tmp_path / "studies"
    root = str(studies / "tiny")
    sets = ["--set", "datapath=%s" % sample_datapath, "--set", "budget.max_steps=4"]
    command = [path, "--studies_root", str(studies), "--tboards", str(tmp_path / "tboards"), "--threads", "1"] + sets

    def study(*extra):
        code = study_py.main(command + list(extra))
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = study()
    assert code == 0, err
    cells = grid.load(path, train.build_parser(), sets[1::2]).cells
    runs = {cell.id: runner.run_folder(root, cell) for cell in cells}
    for cell in cells:  # the overrides land in the cells' runargs, and study.json records them
        made = runfolder.read_runargs(runs[cell.id])
        assert made["data"]["datapath"] == sample_datapath and made["train"]["total_steps"] == 4
        assert made["train"]["learnrate"] == 0.002
        record = identity.read(runner.cell_folder(root, cell))
        assert record["train"]["learnrate"] == 0.002 and record["test"]["bootstrap"] == 100 and record["hash"]
    recorded = json.load(open(os.path.join(root, "study.json")))
    assert recorded["overrides"] == sets[1::2] and recorded["study"]["budget"] == {"max_steps": 4}
    records = [table.cell_record(grid.load(path, train.build_parser(), sets[1::2]), root, cell) for cell in cells]
    assert all(len(r["curve"]) == 1 for r in records)  # one validation per run: the curves are markers
    assert all(line.get_marker() == "o" for line in plots.curves_figure(records).axes[0].get_lines()
               if line.get_label().startswith("net-"))
    scored = json.load(open(runner.results_path(root, cells[0])))
    assert scored["provenance"]["versions"]["tensorflow"] == tf.__version__ and scored["provenance"]["code"]
    markdown = open(os.path.join(root, "results", "table.md")).read()
    assert "What made the cells" in markdown and software.describe(software.code_version()) in markdown
    assert json.load(open(os.path.join(root, "results", "cells.json")))["cells"][0]["provenance"]["versions"]
    before = {cell.id: _mtimes(runs[cell.id]) for cell in cells}
    scores = {cell.id: os.path.getmtime(runner.results_path(root, cell)) for cell in cells}

    # the recipe's learnrate edited, the name kept: both cells are stale, nothing trains, study.json is kept
    _write(tmp_path / "tiny.json", _study_data(base={"learnrate": 0.0005}))
    code, out, err = study()
    assert code == 2 and "nothing ran" in err
    for cell in cells:
        assert "cell %s: stale, retrain: learnrate 0.002 -> 0.0005" % cell.id in err
    code, dry, _ = study("--dry_run")
    assert code == 2 and dry.count("learnrate 0.002 -> 0.0005") == 2
    assert sum(line.startswith("stale ") for line in dry.splitlines()) == 2  # the dry run's status column
    assert json.load(open(os.path.join(root, "study.json")))["study"]["base"]["learnrate"] == 0.002
    assert {cell.id: _mtimes(runs[cell.id]) for cell in cells} == before

    # one recipe edited: exactly that cell is stale, --rerun_stale retrains it and keeps the other
    recipes = {"net": {"FCN": {"decoder": "FCN"}, "LinkNet": {"decoder": "LinkNet", "learnrate": 0.0005}}}
    _write(tmp_path / "tiny.json", _study_data(axes=recipes))
    code, out, err = study()
    assert code == 2 and "cell net-LinkNet: stale, retrain: learnrate 0.002 -> 0.0005" in err and "net-FCN" not in err
    code, out, err = study("--rerun_stale")
    assert code == 0, err
    assert "cell net-FCN: done, skipped" in out and "cell net-LinkNet: retraining" in out
    assert _mtimes(runs["net-FCN"]) == before["net-FCN"]
    assert os.path.getmtime(runner.results_path(root, cells[0])) == scores["net-FCN"]
    retrained = runner.run_folder(root, cells[1])
    assert runfolder.read_runargs(retrained)["train"]["learnrate"] == 0.0005
    assert glob.glob(os.path.join(runner.cell_folder(root, cells[1]), "stale", "*",
                                  os.path.basename(runs["net-LinkNet"]), "runargs"))  # the stale run is kept aside
    runs["net-LinkNet"] = retrained
    before = {cell.id: _mtimes(runs[cell.id]) for cell in cells}
    train_logs = {cell.id: os.path.getsize(os.path.join(runner.cell_folder(root, cell), "train.log")) for cell in cells}

    # a test setting changed: both cells are re-scored, none retrained
    _write(tmp_path / "tiny.json", _study_data(axes=recipes, test={"bootstrap": 200}))
    code, out, err = study()
    assert code == 2 and err.count("test settings changed, re-score: bootstrap 100 -> 200") == 2
    code, out, err = study("--rerun_stale")
    assert code == 0, err
    assert out.count("re-scoring (bootstrap 100 -> 200)") == 2 and "resuming" not in out
    assert {cell.id: _mtimes(runs[cell.id]) for cell in cells} == before
    assert train_logs == {cell.id: os.path.getsize(os.path.join(runner.cell_folder(root, cell), "train.log"))
                          for cell in cells}
    for cell in grid.load(path, train.build_parser(), sets[1::2]).cells:
        assert json.load(open(runner.results_path(root, cell)))["bootstrap_samples"] == 200
        assert identity.read(runner.cell_folder(root, cell))["test"]["bootstrap"] == 200
        assert runner.status(root, cell, 4) == "done"

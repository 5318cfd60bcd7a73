"""study.py: the cluster bootstrap, the paired comparison, study-file checks, and a tiny 2x1x2 study end to end."""
import glob
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

import study as study_py
import train
from tests.conftest import PYTHON, ROOT, run_script
from utils import metrics
from utils.inference import clusters
from utils.study import grid, runner, table
from utils.training import runfolder

PERFECT = [[10, 0], [0, 10]]  # an image whose two classes are all right: IoU 1 each
WRONG = [[0, 10], [10, 0]]    # every pixel swapped: IoU 0 each


def test_cluster_bootstrap_is_wider_than_per_image_for_correlated_images():
    """Two clusters of four near-copies: one all right, one all wrong.

    Per cluster, a replicate holds both clusters (mIoU 1/3), cluster A twice (1.0) or cluster B twice (0.0),
    a quarter of the time each: the 95 % interval is exactly [0, 1].  Per image, k right images out of 8 score
    k / (k + 2 (8 - k)); k is Binomial(8, 1/2), so the interval is about [2/14, 6/10], far narrower.
    """
    stack = np.array([PERFECT] * 4 + [WRONG] * 4)
    by_cluster = metrics.bootstrap_miou(stack, 2000, seed=0, clusters=[0, 0, 0, 0, 1, 1, 1, 1])
    by_image = metrics.bootstrap_miou(stack, 2000, seed=0)
    assert by_cluster == pytest.approx((0.0, 1.0))
    assert 0.05 < by_image[0] < 0.25 and 0.5 < by_image[1] < 0.9
    assert by_image[1] - by_image[0] < 0.8 * (by_cluster[1] - by_cluster[0])


def test_block_length_follows_the_autocorrelation():
    rng = np.random.RandomState(0)
    steady = np.repeat(rng.rand(30), 10)  # 30 scenes of 10 identical frames: correlated up to lag ~8
    assert 6 <= clusters.block_length(steady) <= 10
    assert clusters.block_length(rng.rand(300)) == 1  # white noise: every image its own block
    assert clusters.block_length([0.5] * 20) == 1


def test_clusters_by_family_and_mode():
    names = ["0001TP_1.png", "0001TP_2.png", "0006R0_1.png", "Seq05VD_1.png", "A_1.png", "B_1.png"]
    ids, described = clusters.clusters_for(names, "camvid", "auto")
    assert ids == ["0001TP", "0001TP", "0006R0", "Seq05VD", "A", "B"] and described.startswith("sequence (5 clusters)")
    one_sequence = ["0016E5_%05d.png" % i for i in range(10)]
    ids, described = clusters.clusters_for(one_sequence, "camvid", "auto", scores=[0.5] * 10)
    assert described.startswith("a single sequence, 0016E5: block of 1")
    ids, described = clusters.clusters_for(one_sequence, "camvid", "block:4")
    assert ids == ["0016E5:%d" % i for i in (0, 0, 0, 0, 1, 1, 1, 1, 2, 2)] and "3 clusters" in described
    # two sequences are too few to resample: blocks within each, never across the boundary
    two = ["0001TP_%d.png" % i for i in range(5)] + ["Seq05VD_%d.png" % i for i in range(3)]
    ids, described = clusters.clusters_for(two, "camvid", "block:4")
    assert described == "block of 4 consecutive frames (3 clusters)"
    assert ids == ["0001TP:0"] * 4 + ["0001TP:1", "Seq05VD:0", "Seq05VD:0", "Seq05VD:0"]
    ids, described = clusters.clusters_for(two, "camvid", "auto", scores=[0.5] * 8)
    assert described == "2 sequences (0001TP, Seq05VD), fewer than 5: block of 1 consecutive frames from the " \
        "autocorrelation of per-image mIoU (8 clusters)"
    assert clusters.clusters_for(names, "voc", "auto")[0] == list(range(6))
    assert clusters.clusters_for(names, "camvid", "image")[0] == list(range(6))
    for bad in ("block:0", "scene"):
        with pytest.raises(ValueError, match="--bootstrap_by"):
            clusters.parse_mode(bad)


def test_paired_difference_against_hand_values():
    # B beats A by 0.1 on every image of both pairs (one pair +0.2/0, the other 0/+0.2): mean and CI 0.1
    same = table.paired_difference([([0.5, 0.5], [0.7, 0.5]), ([0.4, 0.4], [0.4, 0.6])], [0, 1], samples=200)
    assert same["mean"] == pytest.approx(0.1) and same["ci"] == pytest.approx([0.1, 0.1])
    assert same["p_b_better"] == 1.0 and same["images"] == 2 and same["pairs"] == 2
    # +1 on cluster 0's two images, -1 on cluster 1's: replicates are +1, 0 or -1 (1/4, 1/2, 1/4)
    split = table.paired_difference([([0, 0, 1, 1], [1, 1, 0, 0])], [0, 0, 1, 1], samples=4000, seed=1)
    assert split["mean"] == 0.0 and split["ci"] == [-1.0, 1.0]
    assert split["p_b_better"] == pytest.approx(0.25, abs=0.03)
    # an image without valid pixels (None) in either cell is left out
    gaps = table.paired_difference([([0.2, None, 0.4], [0.3, 0.9, None])], [0, 1, 2], samples=100)
    assert gaps["images"] == 1 and gaps["mean"] == pytest.approx(0.1)


def test_a_recipe_axis_sets_its_flags_together(tmp_path):
    path = _write_study(tmp_path / "recipes.json", str(tmp_path), axes={
        "recipe": {"ce": {"loss": "ce", "class_weights": "none"}, "focal": {"loss": "focal", "focal_gamma": 1}}})
    study = grid.load(path, train.build_parser())
    cells = {cell.axes["recipe"]: cell for cell in study.cells}
    assert len(study.cells) == 2 * 2 * 2  # encoder x seed x recipe
    assert study.cells[1].id == "encoder-resnet_v1_18__decoder-LinkNet__seed-1__recipe-focal"
    argv = " ".join(cells["focal"].argv)
    assert "--loss focal" in argv and "--focal_gamma 1" in argv and "class_weights" not in argv
    assert "--loss ce --class_weights none" in " ".join(cells["ce"].argv)
    assert study.axes["recipe"] == ["ce", "focal"]


def _write_study(path, datapath, **changes):
    study = {"name": "tiny",
             "base": {"dataset_family": "camvid", "datapath": datapath, "pretrained": "none", "pixels": 64,
                      "batch_size": 2, "learnrate": 1e-3, "val_every": 4, "log_every": 2},
             "axes": {"encoder": ["resnet_v1_18", "mobilenet_v2"], "decoder": ["LinkNet"], "seed": [1, 2]},
             "budget": {"max_steps": 8},
             "test": {"bootstrap": 100, "checkpoints": 2, "latency": "64x96"},
             "compare": [{"a": {"encoder": "resnet_v1_18"}, "b": {"encoder": "mobilenet_v2"}}]}
    for key, value in changes.items():
        study[key] = value if not isinstance(value, dict) else dict(study.get(key, {}), **value)
    path.write_text(json.dumps(study))
    return str(path)


@pytest.mark.parametrize("changes, expected", [
    ({"base": {"learn_rate": 1e-3}}, ["base key 'learn_rate' is not a train.py flag", "learnrate", "seed"]),
    ({"axes": {"encoder": ["resnet_v1_18", "resnet_v9"]}},
     ["cell encoder-resnet_v9__decoder-LinkNet__seed-1", "resnet_v9", "mobilenet_v2", "resnet_v1_50"]),
    ({"axes": {"decoder": ["LinkNet", "LinkNett"]}}, ["LinkNett", "FCN", "PSPNet"]),
    ({"base": {"max_steps": 5}}, ["'max_steps' is set by the study itself"]),
    ({"budget": {"hours": 1}}, ["budget is"]),
    ({"axes": {"recipe": {"ce": {"loss": "ce"}, "focal": {"los": "focal"}}}},
     ["axis 'recipe' recipe 'focal' key 'los' is not a train.py flag", "loss"]),
    ({"axes": {"recipe": {"odd": {"loss": "foo"}}}}, ["--loss", "foo"]),
    ({"classes": "Pole"}, ["classes is a list of class names"]),
    ({"axes": {"net": {"enet": {"encoder": "enet", "decodr": "ENet"}}}},
     ["axis 'net' recipe 'enet' key 'decodr' is not a train.py flag", "decoder"]),
])
def test_a_bad_study_file_names_the_key_and_the_valid_values(tmp_path, changes, expected):
    path = _write_study(tmp_path / "bad.json", str(tmp_path), **changes)
    with pytest.raises(grid.StudyError) as caught:
        study = grid.load(path, train.build_parser())
        runner.check_cells(study, train.build_parser())
    for text in expected:
        assert text in str(caught.value)


def test_table_classes_must_be_the_datasets_class_names(sample_datapath, tmp_path):
    path = _write_study(tmp_path / "bad.json", sample_datapath, classes=["Pole", "Poles"])
    with pytest.raises(grid.StudyError) as caught:
        runner.check_cells(grid.load(path, train.build_parser()), train.build_parser())
    assert "['Poles']" in str(caught.value) and "SignSymbol" in str(caught.value)


def test_a_bad_study_file_stops_the_command_with_one_line(tmp_path):
    path = _write_study(tmp_path / "bad.json", str(tmp_path), axes={"encoder": ["resnet_v9"]})
    proc = run_script("study.py", path, "--studies_root", tmp_path / "studies", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "resnet_v9" in proc.stderr
    assert not os.path.exists(tmp_path / "studies" / "tiny" / "cells")


def test_a_bundle_axis_sets_its_flags_together(tmp_path):
    """Pairs that are not a grid (each net with its own decoder): one axis, a label per bundle of flags."""
    path = tmp_path / "nets.json"
    path.write_text(json.dumps({
        "base": {"dataset_family": "camvid", "datapath": str(tmp_path)}, "budget": {"max_steps": 8},
        "axes": {"seed": [1, 2], "net": {"enet": {"encoder": "enet", "decoder": "ENet"},
                                         "linknet18": {"basenet": "resnet_v1_18", "extended_arch": "LinkNet"}}},
        "compare": [{"a": {"net": "enet"}, "b": {"net": "linknet18"}}]}))
    study = grid.load(path, train.build_parser())
    runner.check_cells(study, train.build_parser())
    assert [cell.id for cell in study.cells] == ["seed-1__net-enet", "seed-1__net-linknet18",
                                                 "seed-2__net-enet", "seed-2__net-linknet18"]
    assert study.axes == {"seed": [1, 2], "net": ["enet", "linknet18"]}
    enet, linknet = study.cells[:2]
    assert (enet.settings["encoder"], enet.settings["decoder"], enet.settings["seed"]) == ("enet", "ENet", 1)
    assert linknet.argv[-4:] == ["--basenet", "resnet_v1_18", "--extended_arch", "LinkNet"]
    assert enet.config_key() == "net=enet" and grid.matches(linknet, {"net": "linknet18"})


def _kill_at_first_checkpoint(study, root, cell, steps):
    """Start the cell's training as the study would, SIGKILL it once it saved a checkpoint short of `steps`."""
    command = runner.train_command(root, cell, steps, study.test["checkpoints"], threads=1)
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            run = runner.run_folder(root, cell)
            if run and runner.trained_steps(run) > 0:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return runner.trained_steps(runner.run_folder(root, cell))


def test_a_tiny_study_runs_resumes_and_tabulates(sample_datapath, tmp_path, capsys):
    path = _write_study(tmp_path / "tiny.json", sample_datapath, classes=["Pole", "Sky"])
    studies, tboards = tmp_path / "studies", tmp_path / "tboards"
    root = str(studies / "tiny")
    study = grid.load(path, train.build_parser())
    assert [c.id for c in study.cells] == ["encoder-resnet_v1_18__decoder-LinkNet__seed-1",
                                           "encoder-resnet_v1_18__decoder-LinkNet__seed-2",
                                           "encoder-mobilenet_v2__decoder-LinkNet__seed-1",
                                           "encoder-mobilenet_v2__decoder-LinkNet__seed-2"]
    assert study_py.main([path, "--studies_root", str(studies), "--dry_run"]) == 0  # in-process: no start-up
    dry = capsys.readouterr().out
    assert dry.count("new ") == 4 and "M params" in dry and "GMACs at 64x96" in dry

    cut = study.cells[0]
    cut_at = _kill_at_first_checkpoint(study, root, cut, 8)
    assert 0 < cut_at < 8, "the cell was not cut mid-run"
    assert runner.status(root, cut, 8) == "cut"
    cut_run = runner.run_folder(root, cut)
    for name in glob.glob(os.path.join(cut_run, "model.ckpt-%d.*" % cut_at)):
        os.remove(name)  # as if killed between latest/'s save and the milestone's: the resume owes the milestone

    first = run_script("study.py", path, "--studies_root", studies, "--tboards", tboards, "--parallel", "2",
                       "--threads", "1")
    assert "cell %s: resuming" % cut.id in first.stdout
    assert all(runner.status(root, cell, 8) == "done" for cell in study.cells)
    assert runner.trained_steps(cut_run) == 8 and runfolder.milestone_steps(cut_run) == [4, 8]
    assert "resumed" in open(os.path.join(runner.run_folder(root, cut), "runlog")).read()

    results = os.path.join(root, "results")
    markdown = open(os.path.join(results, "table.md")).read()
    assert all("| %s |" % cell.id in markdown for cell in study.cells) and "not scored" not in markdown
    assert "| encoder=resnet_v1_18, decoder=LinkNet | 2 |" in markdown
    assert "Paired comparisons" in markdown and "| 2 | " in markdown
    assert markdown in first.stdout
    assert "| mean class acc. % |" in markdown and markdown.count(" Pole IoU % |") == 1 and " Sky IoU % |" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| cell |"))
    row = next(line for line in markdown.splitlines() if line.startswith("| %s |" % study.cells[0].id))
    assert header.count("|") == row.count("|")
    rows = open(os.path.join(results, "table.csv")).read().strip().splitlines()
    assert len(rows) == 5 and rows[0].startswith("cell,encoder,decoder,seed,mIoU,ci_low,ci_high")
    summary = json.load(open(os.path.join(results, "cells.json")))
    assert len(summary["cells"]) == 4 and not summary["missing"]
    for cell in summary["cells"]:
        assert cell["steps"] == 8 and cell["latency_ms"] > 0 and cell["spread"] is not None
        assert cell["mIoU_ci"][0] <= cell["mIoU"] <= cell["mIoU_ci"][1]
        assert cell["bootstrap_by"].startswith("sequence") or "block" in cell["bootstrap_by"]
    assert summary["comparisons"][0]["pairs"] == 2
    for picture in ("miou_vs_gmacs.png", "per_class_iou.png", "curves.png"):
        with open(os.path.join(results, picture), "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    links = sorted(os.listdir(tboards))
    assert len(links) == 4 and all(os.path.isfile(os.path.join(tboards, link, "runargs")) for link in links)

    before = {cell.id: os.path.getmtime(runner.results_path(root, cell)) for cell in study.cells}
    capsys.readouterr()
    assert study_py.main([path, "--studies_root", str(studies), "--tboards", str(tboards)]) == 0
    again = capsys.readouterr().out
    assert again.count(": done, skipped") == 4 and "resuming" not in again
    assert before == {cell.id: os.path.getmtime(runner.results_path(root, cell)) for cell in study.cells}
    assert open(os.path.join(results, "table.md")).read() == markdown

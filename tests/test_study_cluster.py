"""study.py --executor slurm: the cells as one job array through submitit, on a real single-node Slurm
(.ci/slurm-node) where one can start, and always through submitit's local executor (the same task path)."""
import json
import os
import subprocess

import pytest

import study as study_py
import train
from tests.conftest import ROOT
from utils.study import cluster, grid, runner

SLURM_NODE = os.path.join(ROOT, ".ci", "slurm-node")


def _tiny_study(path, datapath):
    """Two cells (FCN, LinkNet) of two steps on the sample: each one validation and one milestone."""
    path.write_text(json.dumps({
        "name": "tiny_array",
        "base": {"dataset_family": "camvid", "datapath": datapath, "pretrained": "none", "encoder": "resnet_v1_18",
                 "pixels": 64, "batch_size": 2, "seed": 1, "val_every": 2, "log_every": 1},
        "axes": {"net": {"FCN": {"decoder": "FCN"}, "LinkNet": {"decoder": "LinkNet"}}},
        "budget": {"max_steps": 2}, "test": {"bootstrap": 50, "checkpoints": 1, "latency": None}}))
    return str(path)


def _run_study(path, studies, *extra, capsys):
    code = study_py.main([path, "--studies_root", str(studies), "--tboards", str(studies / "tboards"),
                          "--threads", "1"] + list(extra))
    out = capsys.readouterr()
    return code, out.out, out.err


def _assert_done(path, root):
    cells = grid.load(path, train.build_parser()).cells
    assert all(runner.status(root, cell, 2) == "done" for cell in cells)
    for cell in cells:  # plain train.py / test.py runs, their logs in the cell folder as locally
        folder = runner.cell_folder(root, cell)
        assert os.path.isfile(os.path.join(folder, "train.log")) and os.path.isfile(os.path.join(folder, "test.log"))
    markdown = open(os.path.join(root, "results", "table.md")).read()
    assert all("| %s |" % cell.id in markdown for cell in cells) and "not scored" not in markdown
    return cells


def test_submitit_local_runs_the_array_path_and_a_second_run_skips(sample_datapath, tmp_path, capsys):
    path = _tiny_study(tmp_path / "tiny.json", sample_datapath)
    studies = tmp_path / "studies"
    root = str(studies / "tiny_array")
    code, out, err = _run_study(path, studies, "--executor", "submitit_local", capsys=capsys)
    assert code == 0, out + err
    assert "2 cell(s) submitted as submitit_local job array" in out
    cells = _assert_done(path, root)
    assert all("cell %s: done (job " % cell.id in out for cell in cells)
    record = json.load(open(os.path.join(root, "slurm", cluster.ARRAY_RECORD)))
    assert sorted(record["cells"].values()) == sorted(cell.id for cell in cells)
    code, out, err = _run_study(path, studies, "--executor", "submitit_local", capsys=capsys)
    assert code == 0 and out.count(": done, skipped") == 2 and "submitted" not in out


def test_a_task_refuses_a_cell_whose_study_changed_since_submission(sample_datapath, tmp_path):
    path = _tiny_study(tmp_path / "tiny.json", sample_datapath)
    root = str(tmp_path / "study")
    os.makedirs(root)
    with open(os.path.join(root, "study.json"), "w") as handle:
        json.dump({"study": json.load(open(path)), "file": path}, handle)
    cell = grid.load(path, train.build_parser()).cells[0]
    with pytest.raises(grid.StudyError, match="no longer gives cell net-FCN"):
        cluster.CellTask()(root, cell.id, 2, 1, cluster.cell_hash(cell, 3), train.build_parser)
    assert not os.path.exists(runner.cell_folder(root, cell))


@pytest.fixture(scope="session")
def slurm_node():
    """A single-node Slurm on this machine (.ci/slurm-node: apt-get, munge, slurmctld, slurmd, slurmdbd), or a
    skip that says why it could not start."""
    try:
        made = subprocess.run(["bash", SLURM_NODE], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip("no Slurm on this machine: %s" % error)
    if made.returncode:
        pytest.skip("no Slurm on this machine: %s" % (made.stderr.strip().splitlines() or ["(no reason)"])[-1])


def test_a_slurm_job_array_runs_a_tiny_study(slurm_node, sample_datapath, tmp_path, capsys):
    path = _tiny_study(tmp_path / "tiny.json", sample_datapath)
    studies = tmp_path / "studies"
    root = str(studies / "tiny_array")
    code, out, err = _run_study(path, studies, "--executor", "slurm", "--max_parallel", "2", "--time_limit", "10",
                                "--cpus_per_cell", "1", capsys=capsys)
    assert code == 0, out + err
    cells = _assert_done(path, root)
    array = json.load(open(os.path.join(root, "slurm", cluster.ARRAY_RECORD)))["job"]
    accounted = subprocess.run(["sacct", "-j", array, "-X", "-n", "-P", "-o", "JobID,JobName,State,Elapsed"],
                               capture_output=True, text=True)
    print(accounted.stdout)  # the report's sacct lines (pytest -s)
    if accounted.returncode == 0 and accounted.stdout.strip():
        lines = accounted.stdout.split()
        assert len(lines) == len(cells) and all("|COMPLETED|" in line for line in lines)
        assert all(line.startswith(array + "_") for line in lines)  # one array, a task per cell

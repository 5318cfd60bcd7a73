"""The run folder a researcher keeps (issue 29): the last step always a milestone, latest/ sharing its files, lean
weights-only milestones that test.py scores, the runlog after --resume the same as without it, exit codes."""
import json
import os
import re
import signal
import types

import numpy as np
import pytest

import train
from tests.conftest import TINY_TRAIN_ARGS, run_script
from tests.test_test_script import test_script as test_py
from utils.compat import tf
from utils.training import checkpoint_check, exit_codes, runfolder
from utils.training.checkpointing import Checkpoints
from utils.training.monitor import LogWindow

# A run of 12 steps next to one stopped at 7 and resumed to 12: 7 is a multiple of neither --save_every nor
# --log_every, so the stop falls inside a runlog window and between two milestones.
COMMON = ("--save_every", "5", "--log_every", "3", "--val_every", "4")
LOG_LINE = re.compile(r"^\S+ \S+ (step (\d+) \| epoch \S+ \| loss (\S+) \| lr (\S+) \| \S+ img/s \| train mIoU (\S+)"
                      r"(?: \| quarter-val mIoU (\S+))?)$")


def _only_run(root):
    runs = [os.path.join(root, name) for name in os.listdir(root)]
    assert len(runs) == 1, runs
    return runs[0]


def _step_lines(folder):
    """step -> (loss, lr, train mIoU, quarter-val mIoU) of each runlog line (img/s is a timing, left out)."""
    lines = {}
    for line in open(os.path.join(folder, runfolder.RUNLOG)):
        match = LOG_LINE.match(line.rstrip("\n"))
        if match:
            lines[int(match.group(2))] = tuple(match.group(i) for i in (3, 4, 5, 6))
    return lines


def _data_file(prefix):
    return prefix + ".data-00000-of-00001"


@pytest.fixture(scope="module")
def straight_and_resumed(sample_datapath, tmp_path_factory):
    """The same seeded run twice: straight to 12 steps (--milestones full), and (--milestones weights) to 7, then
    --resume to 12 without --log_every (kept from runargs)."""
    root = tmp_path_factory.mktemp("runfolder")
    common = list(TINY_TRAIN_ARGS) + ["--datapath", sample_datapath, *COMMON]
    run_script("train.py", *common, "--max_steps", "12", "--runs_root", root / "straight")
    run_script("train.py", *common, "--max_steps", "7", "--milestones", "weights", "--runs_root", root / "resumed")
    resumed = _only_run(root / "resumed")
    before_resume = {"milestones": runfolder.milestone_steps(resumed), "lines": sorted(_step_lines(resumed))}
    run_script("train.py", "--resume", resumed, "--max_steps", "12")
    return {"straight": _only_run(root / "straight"), "resumed": resumed, "before_resume": before_resume,
            "root": root}


def test_the_last_step_of_every_run_is_a_milestone_and_addressable(straight_and_resumed):
    assert straight_and_resumed["before_resume"]["milestones"] == [5, 7]  # 7: where the first process ended
    resumed, straight = straight_and_resumed["resumed"], straight_and_resumed["straight"]
    assert runfolder.milestone_steps(resumed) == [5, 7, 10, 12] and runfolder.milestone_steps(straight) == [5, 10, 12]
    steps = runfolder.addressable_steps(resumed)
    assert test_py.select_steps("12", steps) == [12] and test_py.select_steps("last:2", steps) == [10, 12]
    assert runfolder.checkpoint_path(resumed, 12) == os.path.join(resumed, "model.ckpt-12")
    assert runfolder.latest_steps(resumed) == [12]  # the first process's latest/model.ckpt-7 went at the next save


def test_a_resumed_runlog_has_the_uninterrupted_runs_lines(straight_and_resumed):
    straight, resumed = _step_lines(straight_and_resumed["straight"]), _step_lines(straight_and_resumed["resumed"])
    assert straight_and_resumed["before_resume"]["lines"] == [3, 6, 7]  # 7: the first process's last step
    assert sorted(straight) == [3, 6, 9, 12] and sorted(resumed) == [3, 6, 7, 9, 12]  # --log_every 3 kept
    for step in (3, 6, 9, 12):  # 9 averages steps 7-9, across the resume; 12 names step 12's quarter-val mIoU
        (loss, lr, train_miou, val_miou), expected = resumed[step], straight[step]
        assert float(loss) == pytest.approx(float(expected[0]), abs=3e-4), (step, resumed[step], expected)
        assert lr == expected[1] and float(train_miou) == pytest.approx(float(expected[2]), abs=1.5e-3), step
        assert (val_miou is None) == (expected[3] is None), step
        assert val_miou is None or float(val_miou) == pytest.approx(float(expected[3]), abs=1.5e-3), step
    assert json.load(open(os.path.join(straight_and_resumed["resumed"], runfolder.RUNARGS)))["train"]["log_every"] == 3


def test_latest_shares_its_files_with_the_milestone_of_its_step(straight_and_resumed):
    straight = straight_and_resumed["straight"]
    latest = runfolder.checkpoint_path(straight)
    assert latest == os.path.join(straight, runfolder.LATEST_DIR, "model.ckpt-12")
    for suffix in (".index", ".data-00000-of-00001"):
        shared = os.stat(latest + suffix)
        assert shared.st_ino == os.stat(os.path.join(straight, "model.ckpt-12" + suffix)).st_ino
        assert shared.st_nlink == 2
    # latest/ rolled past step 5 (its rolling saver deleted latest/model.ckpt-5): the milestone's name stays whole
    assert runfolder.latest_steps(straight) == [12]
    assert os.stat(_data_file(os.path.join(straight, "model.ckpt-5"))).st_nlink == 1
    assert checkpoint_check.problem(os.path.join(straight, "model.ckpt-5")) is None


def test_weights_only_milestones_are_lean_scored_by_test_py_and_passed_over_by_resume(straight_and_resumed):
    resumed = straight_and_resumed["resumed"]
    milestone, latest = os.path.join(resumed, "model.ckpt-10"), runfolder.checkpoint_path(resumed)
    held = tf.train.load_checkpoint(milestone).get_variable_to_shape_map()
    full = tf.train.load_checkpoint(latest).get_variable_to_shape_map()
    assert not [name for name in held if "Adam" in name or "_power" in name or name.startswith("runlog_window/")]
    assert [name for name in full if name.endswith("/Adam")] and runfolder.WEIGHTS_ONLY not in full
    assert checkpoint_check.weights_only(milestone) and not checkpoint_check.weights_only(latest)
    assert os.path.getsize(_data_file(milestone)) < 0.4 * os.path.getsize(_data_file(latest))  # Adam: 2 slots
    outdir = straight_and_resumed["root"] / "scored_10"
    scored = run_script("test.py", "--traindir", resumed, "--afteriter", "10", "--bootstrap", "0", "--last2viz", "-1",
                        "--num_images", "2", "--outdir", outdir)
    results = json.load(open(outdir / "results.json"))
    assert results["step"] == 10 and results["checkpoint"] == milestone and 0 <= results["mIoU"] <= 1, scored.stdout
    # with latest/ damaged, --resume has no full checkpoint left; test.py goes on with the newest milestone
    damaged = _data_file(latest)
    with open(damaged + ".cut", "wb") as handle:
        handle.write(open(damaged, "rb").read(100))
    os.replace(damaged + ".cut", damaged)
    said = []
    with pytest.raises(FileNotFoundError, match="no intact checkpoint to resume from"):
        checkpoint_check.newest_intact(resumed, log=said.append, resumable=True)
    assert "model.ckpt-12 holds the weights only (--milestones weights): skipped" in " ".join(said)
    assert checkpoint_check.newest_intact(resumed, log=said.append) == os.path.join(resumed, "model.ckpt-12")


def test_the_runlog_window_round_trips_through_a_checkpoint_and_older_ones_restore_without_it(tmp_path):
    weights = tf.Variable(np.arange(3, dtype=np.float32), name="weights")
    window = LogWindow(num_classes=2)
    saves = Checkpoints(types.SimpleNamespace(train=types.SimpleNamespace(keep_best=False, milestones="full")),
                        window)
    older = tf.train.Saver([weights])  # a checkpoint from before the window was saved
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        saves.begin(sess, str(tmp_path), {}, log=print)
        window.add(0.5, 1.0, np.array([[3, 1], [0, 2]]))
        window.add(0.25, 1.0, np.array([[1, 0], [0, 1]]))
        window.last_val_miou = 0.375
        with_window = saves.save_latest(sess, 2)
        without_window = older.save(sess, str(tmp_path / "old" / "model.ckpt"), global_step=2, write_meta_graph=False)
        window.reset()
        window.last_val_miou = None
        saves.restore(sess, with_window)
        window.load(sess)
        assert (window.loss, window.steps, window.last_val_miou) == (0.75, 2, 0.375)
        assert window.confusion.tolist() == [[4, 1], [0, 3]]
        sess.run(tf.global_variables_initializer())
        saves.restore(sess, without_window)  # no "runlog_window/... not found in checkpoint"
        window.load(sess)
        assert (window.steps, window.last_val_miou) == (0, None) and sess.run(weights).tolist() == [0, 1, 2]


# ----------------------------------------------------------------------------- without TensorFlow
def _fake_checkpoint(prefix, content):
    for suffix in (".index", ".data-00000-of-00001"):
        with open(prefix + suffix, "w") as handle:
            handle.write(content + suffix)


def test_latest_is_addressable_by_step_in_run_folders_made_before_its_last_step_was_a_milestone(tmp_path):
    """The issue's run: trained to 100 with --save_every 50, resumed to 130 by a version that kept no milestone
    there; test.py --afteriter 130 and last:2 still find latest/'s."""
    folder = str(tmp_path)
    os.makedirs(os.path.join(folder, runfolder.LATEST_DIR))
    for step in (50, 100):
        _fake_checkpoint(os.path.join(folder, "model.ckpt-%d" % step), "milestone")
    _fake_checkpoint(runfolder.latest_prefix(folder, 130), "latest")
    steps = runfolder.addressable_steps(folder)
    assert steps == [50, 100, 130] and test_py.select_steps("last:2", steps) == [100, 130]
    assert runfolder.checkpoint_path(folder, 130) == os.path.join(folder, runfolder.LATEST_DIR, "model.ckpt-130")
    with pytest.raises(FileNotFoundError, match="saved steps: 50, 100, 130"):
        runfolder.checkpoint_path(folder, 120)


def test_a_shared_checkpoint_outlives_the_other_names_deletion_and_resave(tmp_path):
    source, target = str(tmp_path / "latest" / "model.ckpt-4"), str(tmp_path / "model.ckpt-4")
    os.makedirs(os.path.dirname(source))
    _fake_checkpoint(source, "step 4")
    assert runfolder.share_checkpoint(source, target) == "linked"
    assert os.stat(target + ".index").st_ino == os.stat(source + ".index").st_ino
    _fake_checkpoint(source + ".tmp", "step 4 again")  # a save of the same step: new files renamed over the names
    for suffix in (".index", ".data-00000-of-00001"):
        os.replace(source + ".tmp" + suffix, source + suffix)
    assert open(target + ".index").read() == "step 4.index"
    os.remove(source + ".index")  # the rolling saver's keep-limit
    os.remove(_data_file(source))
    assert open(_data_file(target)).read() == "step 4.data-00000-of-00001"
    assert sorted(os.listdir(tmp_path)) == ["latest", "model.ckpt-4.data-00000-of-00001", "model.ckpt-4.index"]


def test_without_hard_links_a_shared_checkpoint_is_a_copy(tmp_path, monkeypatch):
    source, target = str(tmp_path / "a" / "model.ckpt-2"), str(tmp_path / "model.ckpt-2")
    os.makedirs(os.path.dirname(source))
    _fake_checkpoint(source, "step 2")

    def no_links(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    assert runfolder.share_checkpoint(source, target) == "copied"
    assert os.stat(target + ".index").st_ino != os.stat(source + ".index").st_ino
    assert open(_data_file(target)).read() == "step 2.data-00000-of-00001"
    assert not [name for name in os.listdir(tmp_path) if "tempstate" in name]


# ----------------------------------------------------------------------------- exit codes
def test_exit_codes_are_distinct_and_listed_in_help():
    codes = [exit_codes.FINISHED, exit_codes.USAGE, exit_codes.NAN, exit_codes.DATA,
             exit_codes.stopped_by(signal.SIGTERM), exit_codes.stopped_by(signal.SIGINT)]
    assert len(set(codes)) == len(codes) and exit_codes.stopped_by(signal.SIGTERM) == 143
    assert train.EXIT_NAN == exit_codes.NAN
    text = " ".join(train.build_parser().format_help().split())
    for code in codes[:4]:
        assert "%d " % code in text.split("exit codes:")[1]
    assert "130 Ctrl-C, 143 SIGTERM" in text

"""Bad input gets a clear error and nothing is lost (issue 19): NaN runs, label ranges, resume, locks, litter."""
import contextlib
import glob
import io
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

import arch
import train
from tests.conftest import PYTHON, ROOT, SAMPLE, TINY_TRAIN_ARGS, run_script
from utils.compat import tf
from utils.data import families, label_checker
from utils.training import checkpoint_check, exit_codes, runfolder


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("TF_CONFIG", None)
    return env


def _only_run(root):
    runs = [os.path.join(root, d) for d in os.listdir(root)]
    assert len(runs) == 1, runs
    return runs[0]


def _step_lines(folder):
    return [line.split(" ", 2)[2].split(" |")[0] for line in open(os.path.join(folder, runfolder.RUNLOG))
            if " | epoch " in line]


def _reads_back_whole(prefix):
    """Every tensor of the checkpoint reads back (checked here without the code under test)."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception:  # noqa: BLE001 - any failure to read means "not whole"
        return False
    return True


def _wait_for(path_glob, text, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        for path in glob.glob(path_glob):
            if text in open(path).read():
                return path
        time.sleep(0.2)
    raise AssertionError("never saw %r in %s (process ended: %s)" % (text, path_glob, proc.poll()))


# ----------------------------------------------------------------------------- 1: NaN
def test_a_nan_run_never_saves_non_finite_weights_and_test_py_refuses_them(sample_datapath, tmp_path):
    proc = run_script("train.py", *TINY_TRAIN_ARGS, "--datapath", sample_datapath, "--runs_root", tmp_path,
                      "--learnrate", "1e9", "--max_steps", "30", "--val_every", "1", "--log_every", "1", check=False)
    assert proc.returncode == train.EXIT_NAN, proc.stdout + proc.stderr
    assert "stopping without saving. The last good checkpoint is kept" in proc.stdout
    folder = _only_run(tmp_path)
    kept = runfolder.checkpoint_candidates(folder)
    assert kept and all(checkpoint_check.problem(path) is None for path in kept)
    # A non-finite milestone, as the old code could leave: refused when asked for, skipped when newest.
    reader = tf.train.load_checkpoint(kept[0])
    with tf.Graph().as_default():
        variables = {name: tf.Variable(reader.get_tensor(name), name=name)
                     for name in reader.get_variable_to_shape_map()}
        poisoned = variables["decoder/final/logits/biases"]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            poisoned.load(np.full(poisoned.shape.as_list(), np.nan, np.float32), sess)
            tf.train.Saver(list(variables.values())).save(sess, os.path.join(folder, "model.ckpt-99"),
                                                          write_meta_graph=False)
    refused = run_script("test.py", "--traindir", folder, "--afteriter", "99", "--bootstrap", "0", check=False)
    assert refused.returncode == 2 and "non-finite values (NaN/Inf)" in refused.stderr
    assert "decoder/final/logits/biases" in refused.stderr and "Traceback" not in refused.stderr
    fallback = run_script("test.py", "--traindir", folder, "--bootstrap", "0", "--last2viz", "-1",
                          "--outdir", tmp_path / "scores")
    assert "model.ckpt-99 is non-finite values" in fallback.stdout and "skipped, trying an older one" in fallback.stdout
    assert json.load(open(tmp_path / "scores" / "results.json"))["checkpoint"] == kept[0]


# ----------------------------------------------------------------------------- 2: labels beyond --num_classes
def test_labels_beyond_num_classes_stop_training_before_it_starts(sample_datapath, tmp_path, capsys):
    code = train.main([*TINY_TRAIN_ARGS, "--datapath", sample_datapath, "--runs_root", str(tmp_path / "runs"),
                       "--num_classes", "3"])
    message = capsys.readouterr().err
    assert code == 2
    assert "--num_classes 3, but the training labels hold classes beyond it: 3 Road (" in message
    assert "use --num_classes 11" in message and not os.path.exists(tmp_path / "runs")


# ----------------------------------------------------------------------------- 3, 4, 7, 8, 9: resume
def test_kill_9_then_resume_lock_damaged_latest_litter_and_changed_length(sample_datapath, tmp_path):
    """A run killed with SIGKILL: while it lives its folder is locked; afterwards a resume removes the save
    litter, skips the damaged latest checkpoint for the milestone of the same step, drops the runlog lines the
    checkpoint does not hold, applies a new --max_steps, and refuses a changed --learnrate."""
    common = list(TINY_TRAIN_ARGS) + ["--datapath", sample_datapath, "--val_every", "4", "--save_every", "4",
                                      "--log_every", "1"]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen([PYTHON, "train.py", *common, "--max_steps", "300", "--runs_root", tmp_path / "runs"],
                                 cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        runlog = _wait_for(str(tmp_path / "runs" / "*" / runfolder.RUNLOG), "step 6 |", first)
        folder = os.path.dirname(runlog)
        busy = run_script("train.py", "--resume", folder, check=False)
        assert busy.returncode == 2 and "is being trained by process %d" % first.pid in busy.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    candidates = runfolder.checkpoint_candidates(folder)
    latest, saved = candidates[0], runfolder.checkpoint_step(candidates[0])
    assert latest.startswith(os.path.join(folder, runfolder.LATEST_DIR))
    # Where the resume must land once latest/ is damaged: the next checkpoint that reads back whole. Usually the
    # milestone of the same step; the one before when the kill fell between latest/'s save and the milestone's; the
    # previous latest/ when it fell inside a save, before the Saver deleted it; never a half-written milestone index.
    fallback_path = next(path for path in candidates[1:] if _reads_back_whole(path))
    fallback = runfolder.checkpoint_step(fallback_path)
    assert saved - fallback <= 4, (saved, candidates)
    later_lines = any(int(step.split()[1]) > fallback for step in _step_lines(folder))
    # The latest checkpoint is damaged (its data file replaced by a cut one, as a save cut short leaves it); the
    # milestone of the same step, which shared that file (a hard link), keeps the whole one.
    data = latest + ".data-00000-of-00001"
    with open(data + ".cut", "wb") as cut:
        cut.write(open(data, "rb").read(100))
    os.replace(data + ".cut", data)
    litter = os.path.join(folder, runfolder.LATEST_DIR, "model.ckpt-8.data-00000-of-00001.tempstate12345")
    open(litter, "w").write("half a save")
    refused = run_script("train.py", "--resume", folder, "--learnrate", "1", check=False)
    assert refused.returncode == 2 and "--learnrate cannot change" in refused.stderr
    target = saved + 3
    resumed = run_script("train.py", "--resume", folder, "--max_steps", target, "--log_every", "1")
    log = open(runlog).read()
    assert "latest/model.ckpt-%d is unreadable" % saved in resumed.stdout
    assert "skipped, trying an older one" in resumed.stdout
    assert "resumed from %s at step %d" % (fallback_path, fallback) in log, (fallback_path, log[-3000:])
    assert ("lines of later steps" in log) == later_lines
    assert "resume: --max_steps %d (was 300)" % target in resumed.stdout
    steps = _step_lines(folder)
    assert len(steps) == len(set(steps)) and steps[-1] == "step %d" % target  # no step logged twice
    assert not os.path.exists(litter)
    assert json.load(open(os.path.join(folder, runfolder.RUNARGS)))["train"]["max_steps"] == target


# ----------------------------------------------------------------------------- 5: one line, exit 2, no folder
def _bad_data(tmp_path, sample_datapath, how):
    copy = tmp_path / "data"
    shutil.copytree(sample_datapath, copy)
    target = copy / "camvid" / ("dataset.json" if how == "json" else "training.tfrecords")
    if how == "json":
        target.write_text("{not json")
    else:
        open(target, "w").close()
    return str(copy)


BAD_FLAGS = [
    (("--extended_arch", "LinkNett"), "unknown --extended_arch 'LinkNett'; valid names: FCN"),
    (("--batch_size", "0"), "--batch_size must be >= 1"),
    (("--batch_size", "-3"), "--batch_size must be >= 1"),
    (("--pixels", "-5"), "--pixels must be >= 0"),
    (("--val_every", "0"), "--val_every must be >= 1"),
    (("--save_every", "0"), "--save_every must be >= 1"),
    (("--log_every", "0"), "--log_every must be >= 1"),
    (("--learnrate", "-1"), "--learnrate must be > 0"),
    (("--val_fraction", "5"), "--val_fraction must be in (0, 1]"),
    (("--max_steps", "-1"), "--max_steps must be >= 1"),
    (("--pretrained", "{textfile}"), "is not a readable TensorFlow checkpoint"),
    (("--pretrained", "{runfolder}"), "is a run folder; to fine-tune from a trained run use --init_from"),
    (("--pretrained", "{othernet}", "--basenet", "mobilenet_v2"), "holds no MobilenetV2/ variables"),
    (("--datapath", "{garbage_json}"), "dataset.json is not JSON"),  # data errors: exit_codes.DATA
    (("--datapath", "{empty_records}"), "training.tfrecords is empty"),
    (("--resume", "{garbage_runargs}"), "runargs is not JSON"),
    (("--resume", "{list_runargs}"), "runargs holds a list, not a run's settings"),
]


@pytest.mark.parametrize("flags,message", BAD_FLAGS, ids=[" ".join(flags) for flags, _ in BAD_FLAGS])
def test_bad_input_is_one_line_exit_2_and_no_run_folder(flags, message, sample_datapath, tiny_run, tmp_path, capsys):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    garbage, listed = tmp_path / "garbage", tmp_path / "listed"
    for folder, content in ((garbage, "{{"), (listed, "[1, 2]")):
        folder.mkdir()
        (folder / "runargs").write_text(content)
    values = {"{textfile}": str(text), "{runfolder}": tiny_run["folder"],
              "{othernet}": runfolder.checkpoint_path(tiny_run["folder"]), "{garbage_runargs}": str(garbage),
              "{list_runargs}": str(listed)}
    if "{garbage_json}" in flags:
        values["{garbage_json}"] = _bad_data(tmp_path, sample_datapath, "json")
    if "{empty_records}" in flags:
        values["{empty_records}"] = _bad_data(tmp_path, sample_datapath, "empty")
    flags = [values.get(flag, flag) for flag in flags]
    argv = [*TINY_TRAIN_ARGS, "--datapath", sample_datapath, "--runs_root", str(tmp_path / "runs"), *flags]
    if "--resume" in flags:
        argv = ["--resume", flags[1]]
    code = None
    try:
        code = train.main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    expected = exit_codes.DATA if flags[0] == "--datapath" else exit_codes.USAGE
    assert code == expected and message in err and "Traceback" not in err, (code, err)
    assert len([line for line in err.splitlines() if line.startswith("error")]) == 1, err
    assert not os.path.exists(tmp_path / "runs") or not os.listdir(tmp_path / "runs")


def test_a_truncated_record_file_is_named_and_the_new_run_folder_removed(sample_datapath, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(sample_datapath, copy)
    records = copy / "camvid" / "training.tfrecords"
    with open(records, "r+b") as handle:
        handle.truncate(os.path.getsize(records) // 3)
    proc = run_script("train.py", *TINY_TRAIN_ARGS, "--datapath", copy, "--runs_root", tmp_path / "runs",
                      "--max_steps", "50", check=False)
    assert proc.returncode == exit_codes.DATA and "Traceback" not in proc.stderr
    assert "a record file is damaged" in proc.stderr and str(records) in proc.stderr
    assert "removed the run folder" in proc.stdout and not os.listdir(tmp_path / "runs")


def test_arch_py_bad_size_is_a_usage_error(capsys):
    assert arch.main(["--size", "360by480"]) == 2 and "--size 360by480: expected HxW" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 6, 10: test.py's own inputs
def test_imagepath_skips_and_names_unreadable_images_and_segments_extreme_shapes(tiny_run, tmp_path):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for name in sorted(os.listdir(os.path.join(SAMPLE, "val")))[:2]:
        shutil.copy(os.path.join(SAMPLE, "val", name), pictures / name)
    Image.fromarray(np.zeros((2000, 3, 3), np.uint8)).save(pictures / "sliver.png")
    (pictures / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    proc = run_script("test.py", "--traindir", tiny_run["folder"], "--imagepath", pictures, "--outdir",
                      tmp_path / "out", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "1 of 4 image(s) could not be read and were skipped: %s" % (pictures / "broken.jpg") in proc.stderr
    assert len(glob.glob(str(tmp_path / "out" / "*_overlay.png"))) == 3  # sliver.png included
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    proc = run_script("test.py", "--traindir", tiny_run["folder"], "--imagepath", not_image, check=False)
    assert proc.returncode == 2 and "not an image file name" in proc.stderr
    fake_movie = tmp_path / "fake.mp4"
    fake_movie.write_bytes(os.urandom(4000))
    proc = run_script("test.py", "--traindir", tiny_run["folder"], "--moviepath", fake_movie, check=False)
    assert proc.returncode == 2 and "--moviepath %s:" % fake_movie in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- 9, 10: the converter and checker
def test_conversion_removes_dead_writers_litter_and_names_unreadable_files_plainly(tmp_path):
    from tests.test_datasets import convert_camvid, make_camvid_layout
    src = make_camvid_layout(str(tmp_path / "src"))
    with open(os.path.join(src, "train", "seq_train_001.png"), "wb") as handle:
        handle.write(b"\x89PNG broken")
    out = tmp_path / "out" / "camvid"
    out.mkdir(parents=True)
    dead = out / ".training.tmp-999999-deadbeef-00000"
    alive = out / (".training.tmp-%d-cafecafe-00000" % os.getpid())
    dead.write_bytes(b"x" * 1000)
    alive.write_bytes(b"x")
    summary = convert_camvid(src, tmp_path / "out")
    assert not dead.exists() and alive.exists()
    reason = summary.splits["training"].skipped[0][1]
    assert "cannot read image" in reason and "BytesIO" not in reason


def test_label_checker_warns_when_the_family_contradicts_dataset_json(sample_datapath):
    records = os.path.join(sample_datapath, "camvid", "training.tfrecords")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        names, _, _ = label_checker.class_metadata([records], "pascal_seg")
    assert "describes family 'camvid'; checking against 'pascal_seg'" in stderr.getvalue()
    assert list(names) == list(families.get("pascal_seg").class_names)

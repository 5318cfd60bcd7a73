"""train.py end to end on the embedded CamVid sample: run folder, monitor, resume, failures."""
import glob
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

import train
from tests import runfolder_race
from tests.conftest import PYTHON, ROOT, TINY_TRAIN_ARGS, run_script
from utils.training import exit_codes, runfolder
from utils.training.config import RunConfig, resolve_pretrained
from utils.training.schedule import learning_rate_at
from utils.compat import backend, tf


def _event_tags(folder):
    tags = set()
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_short_run_writes_every_artefact(tiny_run):
    folder = tiny_run["folder"]
    name = os.path.basename(folder)
    assert name.endswith("_resnet_v1_18_LinkNet__1") and name[:8].isdigit()
    config = RunConfig.load(folder)
    assert config.model.encoder == "resnet_v1_18" and config.model.decoder == "LinkNet"
    assert config.model.num_classes == 11 and config.data.ignore_label == 11 and config.data.total_train_images == 24
    assert config.train.total_steps == 6 and config.train.pretrained is None
    log = open(os.path.join(folder, runfolder.RUNLOG)).read()
    assert "step 6 | epoch 0.50" in log and "quarter-val mIoU" in log and "img/s" in log and "train mIoU" in log
    # which kernels ran, and who decided: the runlog's backend line and runargs' provenance say the same
    recorded = config.provenance["backend"]
    assert recorded["onednn"] == backend.onednn_enabled() and recorded["setting"] == backend.setting()[0]
    assert "backend: %s | dilated convolutions: " % recorded["summary"] in log
    assert runfolder.milestone_steps(folder) == [3, 6]
    assert runfolder.checkpoint_path(folder).endswith(os.path.join("latest", "model.ckpt-6"))
    latest, milestone = (os.stat(prefix + ".data-00000-of-00001") for prefix in
                         (runfolder.checkpoint_path(folder), os.path.join(folder, "model.ckpt-6")))
    assert latest.st_ino == milestone.st_ino  # one file, two names: latest/ costs no space of its own
    tags = _event_tags(folder)
    for tag in ("loss", "learning_rate", "train_mIoU", "val_mIoU", "images_per_sec", "val_IoU/Road",
                "val/0/image_prediction_truth"):
        assert tag in tags, (tag, sorted(tags))


def test_checkpoint_restores_global_step(tiny_run):
    path = runfolder.checkpoint_path(tiny_run["folder"], 3)
    reader = tf.train.load_checkpoint(path)
    assert reader.get_tensor("global_step") == 3
    with pytest.raises(FileNotFoundError, match="saved steps: 3, 6"):
        runfolder.checkpoint_path(tiny_run["folder"], 4)


def test_concurrent_starts_get_distinct_folders(tmp_path):
    spawn = multiprocessing.get_context("spawn")  # not fork: see tests/runfolder_race.py
    with spawn.Manager() as manager:
        barrier = manager.Barrier(6)
        with spawn.Pool(6) as pool:
            folders = pool.map(runfolder_race.create, [(str(tmp_path), barrier)] * 6)
    assert len(set(folders)) == 6
    assert sorted(int(f.rsplit("__", 1)[1]) for f in folders) == [1, 2, 3, 4, 5, 6]


def _step_losses(folder):
    """step -> loss from the run's TensorBoard events; a resumed run's later events replace the interrupted one's."""
    events = []
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        events += [(event.wall_time, event.step, value.simple_value) for event in tf.train.summary_iterator(path)
                   for value in event.summary.value if value.tag == "loss"]
    return {step: loss for _, step, loss in sorted(events)}


def _final_step_line(folder):
    lines = [l for l in open(os.path.join(folder, runfolder.RUNLOG)) if "| epoch" in l and "| loss" in l]
    return lines[-1].split(" | loss")[0].split(" ", 2)[2]  # "step N | epoch E"


def test_sigterm_then_resume_matches_uninterrupted_run(sample_datapath, tmp_path):
    common = list(TINY_TRAIN_ARGS) + ["--datapath", sample_datapath, "--max_steps", "24", "--decaylr",
                                      "--val_every", "20", "--save_every", "100", "--log_every", "1"]
    straight_root, stopped_root = tmp_path / "straight", tmp_path / "stopped"
    env = dict(os.environ, PYTHONPATH=ROOT)
    straight_proc = subprocess.Popen([PYTHON, "train.py"] + common + ["--runs_root", str(straight_root)], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    proc = None
    try:
        proc = subprocess.Popen([PYTHON, "train.py"] + common + ["--runs_root", str(stopped_root)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.time() + 300
        runlog = None
        while time.time() < deadline and proc.poll() is None:
            logs = glob.glob(str(stopped_root / "*" / runfolder.RUNLOG))
            if logs and "step 5 |" in open(logs[0]).read():
                runlog = logs[0]
                break
            time.sleep(0.2)
        assert runlog, "training never reached step 5"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == exit_codes.stopped_by(signal.SIGTERM) == 143, output  # not a finished run's 0
        folder = os.path.dirname(runlog)
        assert "stopped by signal %d" % signal.SIGTERM in open(runlog).read()
        straight_output, _ = straight_proc.communicate(timeout=300)
        assert straight_proc.returncode == 0, straight_output
        straight = str(next(straight_root.iterdir()))
        stopped_at = tf.train.load_checkpoint(runfolder.checkpoint_path(folder)).get_tensor("global_step")
        assert 5 <= stopped_at < 24
        assert runfolder.milestone_steps(folder) == [stopped_at]  # where it stopped is kept (--save_every 100)
    finally:
        for running in (straight_proc, proc):
            if running is not None and running.poll() is None:
                running.kill()

    run_script("train.py", "--resume", folder, "--log_every", "1")
    log = open(runlog).read()
    assert "resumed from" in log and "at step %d" % stopped_at in log
    assert _final_step_line(folder) == _final_step_line(straight) == "step 24 | epoch 2.00"
    # The resumed run reads the data where the uninterrupted one did: the same losses, step by step.
    resumed_losses, straight_losses = _step_losses(folder), _step_losses(straight)
    assert sorted(resumed_losses) == sorted(straight_losses) == list(range(1, 25))
    for step in range(1, 25):
        assert resumed_losses[step] == pytest.approx(straight_losses[step], rel=1e-4), step
    final_lr = [l for l in log.splitlines() if l.split(" ", 2)[2].startswith("step 24 |")][0]
    assert "lr 1.00e-05" in final_lr  # same schedule: 1e-3, /10 at 1/3, /100 after 2/3 of 24 steps
    assert tf.train.load_checkpoint(runfolder.checkpoint_path(folder)).get_tensor("global_step") == 24
    assert runfolder.milestone_steps(folder) == [stopped_at, 24]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(sample_datapath, tmp_path):
    proc = run_script("train.py", *TINY_TRAIN_ARGS, "--datapath", sample_datapath, "--runs_root", tmp_path,
                      "--learnrate", "1e30", "--max_steps", "30", "--val_every", "1", "--log_every", "1",
                      check=False)
    assert proc.returncode == train.EXIT_NAN, proc.stdout + proc.stderr
    assert "loss is nan" in proc.stdout.lower() or "loss is inf" in proc.stdout.lower()
    assert "last good checkpoint is kept" in proc.stdout


def test_missing_pretrained_checkpoint_names_file_and_scratch_flag(tmp_path):
    with pytest.raises(ValueError) as err:
        resolve_pretrained(None, str(tmp_path), "mobilenet_v1")
    message = str(err.value)
    assert "mobilenet_v1_1.0_224.ckpt" in message and str(tmp_path) in message and "--pretrained none" in message
    assert resolve_pretrained("none", str(tmp_path), "mobilenet_v1") is None


def test_missing_tfrecords_names_the_command(tmp_path):
    proc = run_script("train.py", "--datapath", tmp_path, "--pretrained", "none", check=False)
    assert proc.returncode == exit_codes.DATA
    assert "python utils/tfrecordify.py --dataset_family camvid --datapath %s" % tmp_path in proc.stderr
    assert "Traceback" not in proc.stderr


def test_boolean_flags_accept_both_forms_and_reject_garbage():
    parser = train.build_parser()
    assert parser.parse_args(["--fcn16=False"]).fcn16 is False
    assert parser.parse_args(["--no-fcn16"]).fcn16 is False
    assert parser.parse_args(["--fcn8"]).fcn8 is True
    assert parser.parse_args(["--decaylr=True"]).decaylr is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--fcn16=maybe"])


def test_decay_schedule_thirds():
    assert [learning_rate_at(s, 1.0, 45, True) for s in (1, 15, 16, 30, 31, 45)] == \
        [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]


def test_keep_best_and_init_from_with_another_class_count(tiny_run, sample_datapath, tmp_path):
    """--init_from restores every matching variable of another run (the 11-class classifier does not fit 12
    classes: listed as skipped); --keep_best keeps the best full-validation checkpoint, test.py picks it."""
    proc = run_script("train.py", *TINY_TRAIN_ARGS, "--datapath", sample_datapath, "--runs_root", tmp_path,
                      "--num_classes", "12", "--init_from", tiny_run["folder"], "--keep_best", "--max_steps", "3",
                      "--val_every", "1", "--loss", "ce+lovasz", "--lr_schedule", "cosine", "--warmup_steps", "1")
    folder = os.path.join(tmp_path, os.listdir(tmp_path)[0])
    log = open(os.path.join(folder, runfolder.RUNLOG)).read()
    assert "initialised from %s" % os.path.join(tiny_run["folder"], "latest", "model.ckpt-6") in log
    assert "skipped  decoder/final/logits/weights graph [1, 1, 32, 12] vs checkpoint [1, 1, 32, 11]" in log
    restored = [line for line in log.splitlines() if line.startswith("  restored ")]
    assert len(restored) > 200 and "  restored resnet_v1_18/conv1/weights" in log
    scores = [float(line.split("full-val mIoU ")[1].split()[0]) for line in log.splitlines()
              if "| full-val mIoU" in line]
    best = runfolder.read_best(folder)
    assert len(scores) == 3 and best["mIoU"] == pytest.approx(max(scores), abs=1e-3)
    assert runfolder.checkpoint_path(folder, "best").endswith("model.ckpt-%d" % best["step"])
    assert runfolder.milestone_steps(os.path.join(folder, runfolder.BEST_DIR)) == [best["step"]]  # one best kept
    # best/ shares latest/'s files of its step: at the last step also the milestone's (three names), earlier its own
    links = os.stat(runfolder.checkpoint_path(folder, "best") + ".index").st_nlink
    assert links == (3 if best["step"] == 3 else 1), (best, links)
    config = RunConfig.load(folder)
    assert config.train.class_weights == "enet" and len(config.train.class_weight_values) == 12  # camvid's default
    assert "class weights enet [" in log and "loss ce+lovasz" in log and "cosine schedule" in log
    scored = run_script("test.py", "--traindir", folder, "--afteriter", "best", "--bootstrap", "0", "--last2viz", "-1",
                        "--outdir", tmp_path / "scores")
    assert "step %d" % best["step"] in scored.stdout
    results = json.load(open(tmp_path / "scores" / "results.json"))
    assert results["step"] == best["step"] and results["checkpoint"].endswith(runfolder.checkpoint_path(folder, "best"))


@pytest.mark.parametrize("flags,message", [
    (("--loss", "foo"), "--loss 'foo'"),
    (("--scale_range", "2,1"), "--scale_range 2,1"),
    (("--color_jitter", "-1"), "--color_jitter"),
    (("--lr_schedule", "linear"), "--lr_schedule"),
    (("--class_weights", "{wrong}"), "holds 2 weights; the model has 11 classes"),
])
def test_bad_recipe_values_name_their_flag(sample_datapath, tmp_path, flags, message):
    wrong = tmp_path / "weights.json"
    wrong.write_text("[1, 2]")
    flags = tuple(str(wrong) if f == "{wrong}" else f for f in flags)
    proc = run_script("train.py", *TINY_TRAIN_ARGS, "--datapath", sample_datapath, "--runs_root", tmp_path / "runs",
                      *flags, check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not os.path.exists(tmp_path / "runs")  # refused before a run folder was made

"""The main job on the embedded CamVid sample: convert -> train briefly -> test -> pictures.

    make demo                      # installs .venv first, then runs this
    python demo.py --steps 300     # train longer

Each stage is the command a researcher would type, run as a subprocess and
printed first, so the demo doubles as a walk-through of the README's tour:

1. utils/tfrecordify.py  data/camvid_sample -> tmp/demo_data/camvid/{training,validation}.tfrecords
2. train.py              ResNet18-LinkNet from scratch (no ImageNet checkpoint needed), CPU-sized
3. test.py               mIoU with a bootstrap CI on the sample's validation frames, pictures
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join("data", "camvid_sample")
DATAPATH = os.path.join("tmp", "demo_data")
RUNS = "tmp"
NET = ("--basenet", "resnet_v1_18", "--extended_arch", "LinkNet")


def run(*args):
    command = [sys.executable] + list(args)
    print("\n$ python " + " ".join(args), flush=True)
    tic = time.time()
    subprocess.run(command, cwd=ROOT, check=True)
    print("  (%.0f s)" % (time.time() - tic), flush=True)


def newest_run(before):
    runs = [os.path.join(RUNS, d) for d in os.listdir(os.path.join(ROOT, RUNS))
            if "resnet_v1_18_LinkNet__" in d and os.path.join(RUNS, d) not in before]
    return max(runs, key=lambda d: os.path.getmtime(os.path.join(ROOT, d)))


def next_steps(run_folder):
    """[(what, shell command)] to try next, the commands the README gives for them (`make tensorboard`, `make
    notebook`): the demo's last words teach only documented commands, which tests/test_readme_commands.py checks."""
    return [("the run's settings and log", "cat %s/runargs; tail %s/runlog" % (run_folder, run_folder)),
            ("pictures and results.json", "ls %s/test_validation_*/" % run_folder),
            ("TensorBoard", "make tensorboard"),
            ("notebook", "make notebook")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps (batch 4, 256 px)")
    args = parser.parse_args(argv)
    os.makedirs(os.path.join(ROOT, RUNS), exist_ok=True)
    before = {os.path.join(RUNS, d) for d in os.listdir(os.path.join(ROOT, RUNS))}

    run("utils/tfrecordify.py", "--dataset_family", "camvid", "--camvid_path", SAMPLE, "--datapath", DATAPATH,
        "--no_progress")
    run("train.py", *NET, "--dataset_family", "camvid", "--datapath", DATAPATH, "--pretrained", "none",
        "--pixels", "256", "--batch_size", "4", "--learnrate", "1e-3", "--batch_norm_decay", "0.9", "--max_steps", str(args.steps),
        "--val_every", str(max(1, args.steps // 4)), "--save_every", str(max(1, args.steps // 2)),
        "--log_every", "10", "--seed", "1")
    run_folder = newest_run(before)
    run("test.py", "--traindir", run_folder, "--first2viz", "0", "--last2viz", "3", "--bootstrap", "200")
    print("\nDone.  Run folder: %s" % run_folder)
    for what, command in next_steps(run_folder):
        print("  %s: %s" % (what, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())

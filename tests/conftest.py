"""Shared pytest fixtures: every test gets a fresh TF1 graph; paths to shared data."""
import os
import shutil
import sys

import pytest

import arch
import decoders
import nets
from utils.compat import tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
CAMVID = os.path.join(SHARED, "data", "camvid")
SLIM_VARS = os.path.join(SHARED, "reference", "slim_vars")


@pytest.fixture(autouse=True)
def fresh_graph():
    """Each test builds into its own default graph, so variable names never collide."""
    graph = tf.Graph()
    with graph.as_default():
        yield graph


def requires(path):
    return pytest.mark.skipif(not os.path.exists(path), reason="needs %s" % path)

# Encoders for the tests that hang every decoder on every encoder (their cost grows with both): the
# FC-DenseNet depths are one net function with other layer counts, so fc_densenet_56 stands for 67 and 103
# there; those two are built with their own decoder and by every encoder test in test_nets.py.
# EfficientNet-B1..B3 are B0's code wider and deeper: efficientnet_b0 (and _lite0) stand for them there; mit_b0
# stands for MiT-B1 / B2 likewise.
CROSS_ENCODERS = tuple(name for name in nets.NAMES if name not in ("fc_densenet_67", "fc_densenet_103",
                                                                   "efficientnet_b1", "efficientnet_b2",
                                                                   "efficientnet_b3", "mit_b1", "mit_b2"))

SAMPLE = os.path.join(ROOT, "data", "camvid_sample")
PYTHON = sys.executable

# Started first: pytest-xdist hands each worker runs of consecutive tests in collection order, and this test (a
# whole study: eight trainings, their tests and benchmarks, in subprocesses; the longest by far in --durations)
# collected near the end kept one worker busy long after the other had run out of tests.
LONGEST_FIRST = ("tests/test_study.py::test_a_tiny_study_runs_resumes_and_tabulates",)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.nodeid not in LONGEST_FIRST)  # stable: the rest keep their order


def run_script(*args, timeout=600, check=True, env=None):
    """Run one of the project's scripts in a fresh interpreter (as a user would); returns CompletedProcess."""
    import subprocess
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    proc = subprocess.run([PYTHON] + [str(a) for a in args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d):\nSTDOUT:\n%s\nSTDERR:\n%s"
                             % (" ".join(map(str, args)), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc


@pytest.fixture(scope="session")
def sample_datapath(tmp_path_factory):
    """The embedded CamVid sample converted to tfrecords once per test session: <datapath>/camvid/."""
    datapath = tmp_path_factory.mktemp("sample_data")
    run_script("utils/tfrecordify.py", "--dataset_family", "camvid", "--camvid_path", SAMPLE,
               "--datapath", datapath, "--no_progress")
    return str(datapath)


# Tiny, fast training settings shared by the training and testing tests.
TINY_TRAIN_ARGS = ("--basenet", "resnet_v1_18", "--extended_arch", "LinkNet", "--pretrained", "none",
                   "--pixels", "64", "--batch_size", "2", "--learnrate", "1e-3", "--seed", "7")


@pytest.fixture(scope="session")
def tiny_run(sample_datapath, tmp_path_factory):
    """A short real training run on the sample: 6 steps, monitor every 3, milestones every 3."""
    runs = tmp_path_factory.mktemp("runs")
    proc = run_script("train.py", *TINY_TRAIN_ARGS, "--datapath", sample_datapath, "--runs_root", runs,
                      "--max_steps", "6", "--val_every", "3", "--save_every", "3", "--log_every", "2")
    folders = [os.path.join(runs, d) for d in os.listdir(runs)]
    assert len(folders) == 1, folders
    return {"folder": folders[0], "stdout": proc.stdout, "datapath": sample_datapath, "runs": str(runs)}


def build(encoder, decoder, num_classes, is_training=False, decoder_scope=arch.DECODER_SCOPE, **settings):
    """arch.build_model for a spec given as keywords, spec fields and decoder options side by side (an option
    no decoder declares is a test bug; one the chosen decoder lacks is left out, as for old runargs)."""
    options = {option for name in decoders.NAMES for option in decoders.get(name).make_options().__dict__}
    fields = set(arch.ModelSpec(encoder, decoder, num_classes).to_dict())
    assert set(settings) <= options | fields, set(settings) - options - fields
    spec = arch.ModelSpec.from_flat(dict(encoder=encoder, decoder=decoder, num_classes=num_classes, **settings))
    return arch.build_model(spec, is_training, decoder_scope)


def linked_run_copy(folder, parent):
    """A copy of the run folder `folder` under `parent` whose files are symlinks (nothing is copied) and without
    its outputs (test_*, export_*, tb_scores): a test that writes into a run folder gets its own, and the shared
    session runs stay as they were, whatever order the tests run in."""
    copy = os.path.join(str(parent), os.path.basename(folder))
    shutil.copytree(folder, copy, copy_function=os.symlink,
                    ignore=shutil.ignore_patterns("tb_scores", "test_*", "export_*", "segmented_*"))
    return copy

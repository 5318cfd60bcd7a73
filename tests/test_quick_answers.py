"""Fast answers: --help and usage errors before TensorFlow is imported; native libraries' log lines hidden.

TensorFlow takes seconds to import, so every command answers `--help` and a
usage error without it (utils/compat/tf1.py imports it at first use).  The
subprocesses below run each entry point as `python SCRIPT ...` would and say,
as they exit, whether TensorFlow was imported.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import PYTHON, ROOT, linked_run_copy
from utils.compat import quiet, tf, tf1
from utils.data import pipeline

# Runs SCRIPT ARGS... as its own __main__ and, at exit, tells whether TensorFlow was imported.
REPORTING = ("import atexit, os, runpy, sys\n"
             "atexit.register(lambda: sys.stderr.write('\\nTENSORFLOW IMPORTED: %s\\n'\n"
             "                                         % ('tensorflow' in sys.modules)))\n"
             "sys.argv = sys.argv[1:]\n"
             "sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))\n"
             "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT, **extra)
    if "SEGMENTOR_VERBOSE" not in extra:
        env.pop("SEGMENTOR_VERBOSE", None)
    return env


def _command(*args, **env):
    """(exit code, stderr without the report, whether TensorFlow was imported) of `python SCRIPT ARGS...`."""
    proc = subprocess.run([PYTHON, "-c", REPORTING] + [str(a) for a in args], cwd=ROOT, env=_env(**env),
                          capture_output=True, text=True, timeout=300)
    err, _, report = proc.stderr.rpartition("\nTENSORFLOW IMPORTED: ")
    assert report.strip() in ("True", "False"), proc.stderr[-2000:]
    return proc.returncode, err.strip(), report.strip() == "True"


def _seconds(*args):
    tic = time.perf_counter()
    subprocess.run([PYTHON] + list(args), cwd=ROOT, env=_env(), capture_output=True, check=True, timeout=300)
    return time.perf_counter() - tic


def test_help_answers_in_a_fraction_of_the_time_tensorflow_takes_to_import():
    """--help as a ratio to a bare interpreter start, against the same ratio of importing TensorFlow."""
    bare = min(_seconds("-c", "pass") for _ in range(3))
    tensorflow = _seconds("-c", "from utils.compat import tf; tf.Graph") / bare  # tf: imported at first use
    for script in ("train.py", "test.py"):
        ratio = min(_seconds(script, "--help") for _ in range(2)) / bare
        print("%s --help: %.0f x a bare interpreter start; importing TensorFlow: %.0f x" % (script, ratio, tensorflow))
        assert ratio < tensorflow / 4, (script, ratio, tensorflow)


def _no_images_folder(tmp_path):
    folder = tmp_path / "no_images"
    folder.mkdir()
    (folder / "notes.txt").write_text("no pictures here")
    return folder


USAGE_ERRORS = [  # (script and arguments, what its one error line says); RUN: the tiny run, TMP: a scratch folder
    (("train.py", "--help"), None),
    (("test.py", "--help"), None),
    (("arch.py", "--help"), None),
    (("study.py", "--help"), None),
    (("train.py", "--basenet", "resnet_v9"), "invalid choice: 'resnet_v9' (choose from 'vgg_16', 'inception_v1'"),
    (("train.py", "--extended_arch", "LinkNot"), "unknown --extended_arch 'LinkNot'; valid names: FCN, LinkNet"),
    (("train.py", "--datapath", "TMP/missing"), "python utils/tfrecordify.py --dataset_family camvid"),
    (("train.py", "--basenet", "vgg_16", "--extended_arch", "SegNet", "--datapath", "TMP/missing"),
     "python utils/tfrecordify.py"),  # SegNet's encoder arguments are read from the net function (nets/vgg.py)
    (("train.py", "--resume", "TMP/missing"), "is not a training run folder"),
    (("train.py", "--log_every", "0"), "--log_every must be >= 1"),
    (("test.py", "--traindir", "TMP/missing"), "--traindir TMP/missing does not exist"),
    (("test.py", "--traindir", "RUN", "--afteriter", "999"), "no checkpoint after 999 steps; saved steps:"),
    (("test.py", "--traindir", "RUN", "--imagepath", "TMP/no_images"), "no images found at TMP/no_images"),
    (("test.py", "--traindir", "RUN", "--moviepath", "TMP/missing.mp4"), "--moviepath TMP/missing.mp4: no such file"),
    (("test.py", "--traindir", "RUN", "--moviepath", "TMP/no_images/notes.txt"),
     "--moviepath TMP/no_images/notes.txt: cannot open video"),
    (("test.py", "--traindir", "RUN", "--split", "dev"), "unknown split 'dev'"),
    (("test.py", "--traindir", "RUN", "--datapath", "TMP/missing"), "python utils/tfrecordify.py"),
    (("arch.py", "--size", "360"), "--size 360: expected HxW"),
    (("arch.py", "--extended_arch", "LinkNot"), "valid names: FCN, LinkNet"),
    (("study.py", "TMP/missing.json"), "not a readable JSON study file"),
    (("demo.py", "--steps", "many"), "invalid int value: 'many'"),
    (("utils/tfrecordify.py", "--dataset_family", "camvids"), "unknown dataset family 'camvids'; valid names:"),
    (("utils/label_checker.py", "--tfrecords", "TMP/missing.tfrecords"), "no record file"),
    (("utils/convert_weights.py", "TMP/missing.pth"), "weights file not found"),
    (("bench/bench.py", "--basenet", "resnet_v9"), "invalid choice: 'resnet_v9'"),
    (("bench/bench_pipeline.py", "--datapath", "TMP/missing"), "python utils/tfrecordify.py"),
    (("bench/profile_step.py", "--help"), None),
    (("bench/bench_runtimes.py", "--help"), None),
    (("bench/bench_runtimes.py", "--traindir", "TMP/missing"), "is not a training run folder"),
]


@pytest.mark.parametrize("argv, says", USAGE_ERRORS, ids=[" ".join(argv) for argv, _ in USAGE_ERRORS])
def test_help_and_usage_errors_answer_before_tensorflow_is_imported(argv, says, tiny_run, tmp_path):
    _no_images_folder(tmp_path)
    argv = [a.replace("RUN", tiny_run["folder"]).replace("TMP", str(tmp_path)) for a in argv]
    code, err, imported = _command(*argv)
    assert not imported, (argv, err[-2000:])
    if says is None:
        assert code == 0 and err == ""
    else:
        assert code != 0 and says.replace("TMP", str(tmp_path)) in err, err[-2000:]
        assert "Traceback" not in err


def test_every_project_module_imports_without_tensorflow_and_arg_scopes_wait_for_it():
    """Importing is free: TensorFlow loads at the first use, through tf1's load() also when that use is a
    backend query, quietly; a function decorated with add_arg_scope before then works in slim.arg_scope."""
    code = ("import importlib, sys\n"
            "from tests.test_architecture import project_modules\n"
            "sys.path.insert(0, 'bench')\n"
            "for name in sorted(project_modules()):\n"
            "    if name.startswith('media') or name == 'bench.peer_bf16':\n"  # media: tools; peer_bf16: the peer's
            "        continue\n"
            "    importlib.import_module(name[len('bench.'):] if name.startswith('bench.') else name)\n"
            "    assert 'tensorflow' not in sys.modules, name\n"
            "from utils.compat import add_arg_scope, backend, slim, tf1\n"
            "@add_arg_scope\n"
            "def scaled(x, factor=1):\n"
            "    return x * factor\n"
            "assert 'tensorflow' not in sys.modules and not tf1.loaded()\n"
            "backend.onednn_enabled()\n"
            "assert tf1.loaded()\n"
            "with slim.arg_scope([scaled], factor=3):\n"
            "    print(scaled(2))\n")
    proc = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["6"] and proc.stderr == ""


def test_a_lazy_module_imports_at_first_use_and_forwards_writes(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    proxy = tf1.LazyModule("colorsys")
    assert not hasattr(proxy, "__wrapped__") and "colorsys" not in sys.modules  # introspection imports nothing
    assert proxy.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0) and "colorsys" in sys.modules
    proxy.patched = "by a test"  # a patch reaches the module itself (utils/compat/replicas.py's arg scopes)
    assert sys.modules["colorsys"].patched == "by a test" and proxy.__file__ == sys.modules["colorsys"].__file__
    del proxy.patched
    assert not hasattr(sys.modules["colorsys"], "patched")


def test_autotune_literal_is_tensorflows():
    assert pipeline.AUTOTUNE == tf.data.AUTOTUNE


# ----------------------------------------------------------------------------- native libraries' log lines
FFMPEG_LINE = "moov atom not found"
CONVERTER_LINE = "fully_quantize: 0, inference_type: 6"
XNNPACK_LINE = "Created TensorFlow Lite XNNPACK delegate"


def test_a_file_that_is_no_movie_gives_our_one_line_and_verbose_shows_ffmpegs(tiny_run, tmp_path):
    movie = tmp_path / "notavideo.mp4"
    movie.write_bytes(np.random.RandomState(0).bytes(5000))
    code, err, imported = _command("test.py", "--traindir", tiny_run["folder"], "--moviepath", movie)
    assert code == 2 and not imported
    assert err == "error: --moviepath %s: cannot open video %s (not a video, or damaged: %s)" % (movie, movie,
                                                                                                FFMPEG_LINE)
    code, err, _ = _command("test.py", "--traindir", tiny_run["folder"], "--moviepath", movie, "--verbose")
    first = err.splitlines()[0]
    assert code == 2 and first.startswith("[mov,mp4") and first.endswith(FFMPEG_LINE), err  # ffmpeg's own line


def test_int8_export_and_its_interpreter_keep_their_log_lines_to_themselves(tiny_run, tmp_path):
    """test.py --quantized: the TFLite converter (int8) and the LiteRT interpreter in one real command."""
    run = linked_run_copy(tiny_run["folder"], tmp_path)  # its own export_tflite_int8_6: the converter runs here
    code, err, _ = _command("test.py", "--traindir", run, "--quantized", "--calibration_images", "2",
                            "--num_images", "1", "--bootstrap", "0", "--last2viz", "-1", "--outdir", tmp_path / "out")
    assert code == 0, err[-3000:]
    assert CONVERTER_LINE not in err and XNNPACK_LINE not in err, err[-3000:]
    assert json.load(open(tmp_path / "out" / "results.json"))["precision"] == "int8"


# The converter and the interpreter on a one-conv graph; LiteRT logs its delegate line once per process.
CONVERT_AND_LOAD = """
import sys, numpy as np
from utils.compat import tf
from utils.inference import deploy, runtimes
graph = tf.Graph()
with graph.as_default():
    images = tf.placeholder(tf.float32, [1, 8, 8, 3], name=deploy.INPUT)
    kernel = tf.constant(np.random.RandomState(0).rand(3, 3, 3, 4).astype(np.float32))
    tf.identity(tf.nn.conv2d(images, kernel, [1, 1, 1, 1], "SAME"), name="logits")
calibration = [np.random.RandomState(1).rand(8, 8, 3).astype(np.float32) * 255 for _ in range(2)]
open(sys.argv[1], "wb").write(deploy.convert_tflite(graph.as_graph_def(), "int8", "logits", calibration))
runtimes.TFLiteRunner(sys.argv[1], threads=1)
"""


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_converter_and_interpreter_lines_come_back_with_verbose(verbose, tmp_path):
    env = _env(SEGMENTOR_VERBOSE="1") if verbose else _env()
    proc = subprocess.run([PYTHON, "-c", CONVERT_AND_LOAD, str(tmp_path / "model.tflite")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (CONVERTER_LINE in proc.stderr) is verbose and (XNNPACK_LINE in proc.stderr) is verbose, proc.stderr


def test_a_failing_call_shows_what_it_logged(capfd):
    with pytest.raises(RuntimeError):
        with quiet.stderr_hidden() as log:
            os.write(2, b"native library: why it failed\n")
            raise RuntimeError("failed")
    assert log.text == "native library: why it failed\n"
    assert capfd.readouterr().err == "native library: why it failed\n"
    with quiet.stderr_hidden() as log:
        os.write(2, b"chatter\n")
    assert log.text == "chatter\n" and capfd.readouterr().err == ""

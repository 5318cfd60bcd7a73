"""test.py --export: a SavedModel that plain TensorFlow runs, equal to test.py's predictions."""
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.conftest import SAMPLE, run_script
from utils import export
from utils.inference import Segmenter

PLAIN_PROGRAM = """
import sys, numpy as np, tensorflow as tf
from PIL import Image
model = tf.saved_model.load(sys.argv[1])
run = model.signatures["serving_default"]
for i, path in enumerate(sys.argv[3:]):
    image = np.asarray(Image.open(path).convert("RGB"), np.float32)[None]
    out = run(images=tf.constant(image))
    np.save("%s/probabilities_%d.npy" % (sys.argv[2], i), out["probabilities"].numpy()[0])
    np.save("%s/classes_%d.npy" % (sys.argv[2], i), out["classes"].numpy()[0])
"""


def test_exported_saved_model_matches_test_py(tiny_run, tmp_path):
    folder = tiny_run["folder"]
    out = tmp_path / "exported"
    proc = run_script("test.py", "--traindir", folder, "--export", out)
    assert "batch norms folded" in proc.stdout and (out / "saved_model.pb").exists()

    images = sorted(os.path.join(SAMPLE, "val", f) for f in os.listdir(os.path.join(SAMPLE, "val")))[:2]
    script = tmp_path / "plain.py"
    script.write_text(PLAIN_PROGRAM)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no seg-mentor code on the path
    subprocess.run([sys.executable, str(script), str(out), str(tmp_path)] + images, cwd=str(tmp_path), env=env,
                   check=True, capture_output=True, timeout=300)

    with Segmenter(folder) as segmenter:
        for i, path in enumerate(images):
            classes, probabilities = segmenter.segment(np.asarray(Image.open(path).convert("RGB")), probabilities=True)
            exported = np.load(tmp_path / ("probabilities_%d.npy" % i))
            assert exported.shape == probabilities.shape == (360, 480, 11)
            np.testing.assert_allclose(exported, probabilities, atol=1e-4)
            assert (np.load(tmp_path / ("classes_%d.npy" % i)) == classes).mean() > 0.999


def test_export_folds_every_batch_norm(tiny_run):
    frozen, _, _ = export.inference_graph_def(tiny_run["folder"])
    folded = export.fold_and_strip(frozen)
    assert export.count_ops(frozen, "FusedBatchNormV3") > 20
    assert export.count_ops(folded, "FusedBatchNormV3") == 0  # incl. the ones after transposed convs
    assert not any(node.op in ("VarHandleOp", "ReadVariableOp", "AssignVariableOp") for node in folded.node)


def test_export_refuses_a_non_empty_folder(tiny_run, tmp_path):
    (tmp_path / "x").write_text("keep me")
    proc = run_script("test.py", "--traindir", tiny_run["folder"], "--export", tmp_path, check=False)
    assert proc.returncode == 2 and "not empty" in proc.stderr

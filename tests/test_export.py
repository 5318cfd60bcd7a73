"""test.py --export: a SavedModel that plain TensorFlow runs, equal to test.py's predictions."""
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.conftest import SAMPLE, run_script
from utils.compat import slim, tf
from utils.inference import export
from utils.inference.folding import count_ops, fold_and_strip, freeze_and_fold
from utils.inference.segmenter import Segmenter

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

    for fold in (True, False):  # test.py's default (folded) and the variable graph as trained
        with Segmenter(folder, fold_batch_norms=fold) as segmenter:
            for i, path in enumerate(images):
                image = np.asarray(Image.open(path).convert("RGB"))
                classes, probabilities = segmenter.segment(image, probabilities=True)
                exported = np.load(tmp_path / ("probabilities_%d.npy" % i))
                assert exported.shape == probabilities.shape == (360, 480, 11)
                np.testing.assert_allclose(exported, probabilities, atol=1e-4)
                assert (np.load(tmp_path / ("classes_%d.npy" % i)) == classes).mean() > 0.999


def test_fold_batch_norms_is_exact_for_every_conv_kind():
    """Conv2D, depthwise and transposed convs, two copies sharing weights, batch norms with real statistics."""
    rng = np.random.RandomState(0)
    data = rng.rand(2, 9, 11, 4).astype(np.float32)
    images = tf.placeholder(tf.float32, [None, None, None, 4], name="images")
    batch_norm = dict(normalizer_fn=slim.batch_norm, normalizer_params=dict(is_training=False, scale=True))

    def net(x):
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d, slim.conv2d_transpose], **batch_norm):
            x = slim.conv2d(x, 6, 3, scope="conv")
            x = slim.separable_conv2d(x, None, 3, depth_multiplier=2, scope="depthwise")
            return slim.conv2d_transpose(x, 5, 4, stride=2, scope="transposed")

    with tf.variable_scope("net", reuse=tf.AUTO_REUSE):
        copies = [net(images), net(images * 0.5)]
    outputs = tf.concat(copies, axis=-1, name="outputs")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for variable in tf.global_variables():  # gamma, beta, moving mean / variance far from their init
            value = rng.uniform(0.5, 2.0, variable.shape) if "variance" in variable.name or "gamma" in variable.name \
                else rng.randn(*variable.shape.as_list())
            variable.load(value.astype(np.float32), sess)
        expected = sess.run(outputs, {images: data})
        folded = freeze_and_fold(sess, [images], [outputs])
    assert count_ops(folded, "FusedBatchNormV3") == 0
    assert {"Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput"} <= {node.op for node in folded.node}
    with tf.Graph().as_default():
        tf.import_graph_def(folded, name="")
        with tf.Session() as sess:
            got = sess.run("outputs:0", {"images:0": data})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert np.abs(expected).max() > 1.0  # the batch norms did something worth folding


def test_export_folds_every_batch_norm(tiny_run):
    frozen, _, _ = export.inference_graph_def(tiny_run["folder"])
    folded = fold_and_strip(frozen, [export.INPUT], export.OUTPUTS)
    assert count_ops(frozen, "FusedBatchNormV3") > 20
    assert count_ops(folded, "FusedBatchNormV3") == 0  # incl. the ones after transposed convs
    assert not any(node.op in ("VarHandleOp", "ReadVariableOp", "AssignVariableOp") for node in folded.node)


def test_export_refuses_a_non_empty_folder(tiny_run, tmp_path):
    (tmp_path / "x").write_text("keep me")
    proc = run_script("test.py", "--traindir", tiny_run["folder"], "--export", tmp_path, check=False)
    assert proc.returncode == 2 and "not empty" in proc.stderr

"""The single TensorFlow entry point: graph mode, the tf-slim shim, quiet start-up."""
import os
import subprocess
import sys

import numpy as np

from tests.conftest import ROOT
from utils.compat import tf1
from utils.compat import slim, tf


def test_graph_mode_not_eager():
    assert not tf.executing_eagerly()


def test_shim_makes_slim_batch_norm_work():
    # Without the alias, slim.batch_norm raises ModuleNotFoundError on TF >= 2.17.
    images = tf.placeholder(tf.float32, [2, 8, 8, 3])
    is_training = tf.placeholder_with_default(True, [])
    out = slim.conv2d(images, 4, 3, normalizer_fn=slim.batch_norm,
                      normalizer_params={"is_training": is_training, "scale": True})
    names = sorted(v.op.name for v in tf.global_variables())
    assert names == ["Conv/BatchNorm/beta", "Conv/BatchNorm/gamma", "Conv/BatchNorm/moving_mean",
                     "Conv/BatchNorm/moving_variance", "Conv/weights"]
    assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) == 2
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        value = sess.run(out, {images: np.ones((2, 8, 8, 3), np.float32)})
    assert value.shape == (2, 8, 8, 4)


def test_shim_makes_fused_batch_norm_with_tensor_is_training_work():
    # updates_collections=None takes tf-slim's _fused_batch_norm path, whose smart_cond
    # checks isinstance(x, ops.Tensor): gone from TF 2.21's framework.ops without the shim.
    images = tf.placeholder(tf.float32, [2, 8, 8, 3])
    is_training = tf.placeholder_with_default(True, [])
    out = slim.batch_norm(images, is_training=is_training, updates_collections=None, fused=True)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        data = np.random.RandomState(0).rand(2, 8, 8, 3).astype(np.float32)
        train_mode = sess.run(out, {images: data})
        infer_mode = sess.run(out, {images: data, is_training: False})
    assert np.abs(train_mode.mean()) < 1e-3 and not np.allclose(train_mode, infer_mode)


def test_graph_building_is_linear_in_the_variable_count(monkeypatch):
    """A second ResNet-50 in the same graph costs what the first did: no per-weight pass over every variable
    that asks TensorFlow's eager-mode question (quadratic build time with tensor equality on)."""
    from tensorflow.python.framework import ops  # deferred: the private module only this check patches
    import nets  # deferred: the encoders, only for this graph

    calls = [0]
    original = ops.executing_eagerly_outside_functions

    def counting():
        calls[0] += 1
        return original()

    monkeypatch.setattr(ops, "executing_eagerly_outside_functions", counting)
    per_copy = []
    with tf.Graph().as_default():
        for copy in range(2):
            before = calls[0]
            with tf.variable_scope("copy%d" % copy):
                nets.get("resnet_v1_50").build(tf.placeholder(tf.float32, [1, 64, 64, 3]), is_training=False)
            per_copy.append(calls[0] - before)
    assert per_copy[1] <= 1.1 * per_copy[0], per_copy


def test_is_training_switches_batch_norm_with_tf1_control_flow():
    """Switch/Merge, as TF 1.x built it and as TensorFlow lowers a functional If to anyway, not an If with
    branch functions per batch norm (slower to build, to differentiate and to optimise at start-up)."""
    images = tf.placeholder(tf.float32, [2, 8, 8, 3])
    is_training = tf.placeholder_with_default(True, [])
    out = slim.conv2d(images, 4, 3, normalizer_fn=slim.batch_norm, normalizer_params={"is_training": is_training})
    tf.gradients(tf.reduce_sum(out), tf.trainable_variables())
    kinds = {op.type for op in tf.get_default_graph().get_operations()}
    assert {"Switch", "Merge"} <= kinds and not kinds & {"If", "StatelessIf"}
    assert not tf.get_default_graph().as_graph_def().library.function


def test_shim_is_idempotent():
    assert tf1.install_tf_slim_shim() is False  # already importable now
    assert "tf_keras.legacy_tf_layers.normalization" in sys.modules


def _run_python(code, **env):
    full_env = dict(os.environ, PYTHONPATH=ROOT, **env)
    full_env.pop("SEGMENTOR_VERBOSE", None)
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)


def test_import_is_quiet_by_default_and_verbose_on_request():
    code = ("from utils.compat import tf, slim\n"
            "with tf.Session() as s: print(s.run(tf.constant(3)))")
    quiet = _run_python(code)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip() == "3"
    assert quiet.stderr.strip() == "", quiet.stderr
    loud = _run_python(code, SEGMENTOR_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="0")
    assert loud.returncode == 0
    assert loud.stderr.strip() != ""  # TensorFlow's own start-up log is back

"""Fast paths shared by train.py, test.py and bench/: fused batch norm, mixed precision, XLA flag."""
import os
import subprocess
import sys

import numpy as np

import arch
from tests.conftest import ROOT
from utils.compat import tf
from utils.data.spec import DataSpec
from utils.training.config import RunConfig, TrainSettings
from utils.training.optimizer import train_op
from utils.training.step import TrainStep


def _tiny(mode="fp32"):
    return RunConfig(arch.ModelSpec("resnet_v1_18", "LinkNet", 4, weight_decay=1e-4),
                     TrainSettings(learnrate=1e-3, momentum=0.9, difflr=1.0, decaylr=False, total_steps=10,
                                   mixed_precision=mode, precision=mode, precision_reason="test"),
                     DataSpec(ignore_label=4))


def _batch():
    rng = np.random.RandomState(0)
    return (tf.constant(rng.randn(2, 64, 64, 3).astype(np.float32)),
            tf.constant(rng.randint(0, 4, (2, 64, 64)).astype(np.int32)))


def _op_types(graph):
    """Op types of the graph and of every function in its library (cond branches live there)."""
    types = [op.type for op in graph.get_operations()]
    for function in graph.as_graph_def().library.function:
        types.extend(node.op for node in function.node_def)
    return types


def test_every_batch_norm_is_fused_in_training_and_inference_graphs():
    images, labels = _batch()
    step = TrainStep(images, labels, tf.placeholder_with_default(True, []), _tiny())
    layers = len([v for v in tf.global_variables() if v.op.name.endswith("BatchNorm/moving_mean")])
    types = _op_types(tf.get_default_graph())
    assert layers > 20
    assert "FusedBatchNorm" not in types and types.count("FusedBatchNormV3") >= 2 * layers  # train + inference branch
    assert not {"Moments", "SquaredDifference"} & set(types)  # no unfused batch norm math anywhere
    with tf.Graph().as_default():
        model = arch.build_model(arch.ModelSpec("mobilenet_v2", "DeepLabV3Plus", 4), is_training=False)
        model.build(tf.placeholder(tf.float32, [1, 64, 64, 3]))
        layers = len([v for v in tf.global_variables() if v.op.name.endswith("BatchNorm/moving_mean")])
        assert _op_types(tf.get_default_graph()).count("FusedBatchNormV3") == layers
    assert step.train_op is not None


def test_float16_scales_the_loss_and_keeps_float32_weights():
    """bf16 needs no loss scaling (float32's exponent range); its rewrite and losses: tests/test_precision.py."""
    images, labels = _batch()
    step = TrainStep(images, labels, tf.placeholder_with_default(True, []), _tiny("fp16"))
    assert {"current_loss_scale", "good_steps"} <= {v.op.name for v in tf.global_variables()}
    assert all(v.dtype.base_dtype == tf.float32 for v in tf.global_variables() if "weights" in v.op.name)
    assert step.train_op is not None


def test_loss_scaling_skips_overflowing_steps_and_halves_the_scale():
    weight = tf.Variable(1.0)
    global_step = tf.train.get_or_create_global_step()
    loss = weight * 1e36  # x 32768 (initial scale) overflows float32
    op = train_op(loss, global_step, 0.1, 0.9, [], [weight], loss_scaling=True)
    scale = [v for v in tf.global_variables() if v.op.name == "current_loss_scale"][0]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        before = sess.run(scale)
        sess.run(op)
        assert sess.run(weight) == 1.0  # step skipped, weights untouched
        assert sess.run(scale) == before / 2 and sess.run(global_step) == 1


XLA_PROBE = """
import numpy as np
import arch
from utils.compat import tf
from utils.compat.session import session_config
images = tf.placeholder(tf.float32, [1, 64, 64, 3])
logits = arch.build_model(arch.ModelSpec("resnet_v1_18", "FCN", 4)).build(images)
with tf.Session(config=session_config(2, xla=%s)) as sess:
    sess.run(tf.global_variables_initializer())
    metadata = tf.RunMetadata()
    sess.run(logits, {images: np.zeros((1, 64, 64, 3), np.float32)},
             options=tf.RunOptions(output_partition_graphs=True), run_metadata=metadata)
print(sum(n.op.startswith("_Xla") for g in metadata.partition_graphs for n in g.node))
"""


def test_xla_flag_compiles_clusters_on_cpu_too():
    # XLA reads its flags once per process, at the first session: probe in fresh interpreters.
    counts = []
    for xla in (False, True):
        proc = subprocess.run([sys.executable, "-c", XLA_PROBE % xla], cwd=ROOT, capture_output=True, text=True,
                              timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
        assert proc.returncode == 0, proc.stderr
        counts.append(int(proc.stdout.split()[-1]))
    assert counts[0] == 0 and counts[1] > 0

"""utils/compat/session.py: without a GPU, Grappler's GPU-only passes are off, and the graphs a training step
runs are the ones TensorFlow's default configuration makes (so the step is as fast; only start-up is cheaper)."""
import hashlib

import numpy as np
import pytest

import arch
from utils.compat import tf
from utils.compat.session import rewriter_config_pb2, session_config
from utils.data.spec import DataSpec
from utils.training.config import RunConfig, TrainSettings
from utils.training.step import TrainStep

# Set by the memory pass on Assign ops (lets an initial value's buffer become the variable's instead of a copy):
# the one trace it leaves on a CPU graph.
MEMORY_PASS_MARK = "_grappler_relax_allocator_constraints"
RewriterConfig = rewriter_config_pb2.RewriterConfig


def _optimized_step_graph(decoder, precision, config):
    """The partition graphs of a tiny training step's first run, as comparable tuples (constants named by value:
    constant folding names them in the order it meets them)."""
    with tf.Graph().as_default():
        rng = np.random.RandomState(0)
        images = tf.constant(rng.rand(2, 64, 64, 3).astype(np.float32))
        labels = tf.constant(rng.randint(0, 4, (2, 64, 64)).astype(np.int32))
        is_training = tf.placeholder_with_default(True, [], name="is_training")
        run = RunConfig(arch.ModelSpec("resnet_v1_18", decoder, 4),
                        TrainSettings(batch_size=2, learnrate=1e-3, total_steps=10, mixed_precision=precision,
                                      precision=precision, precision_reason="test"), DataSpec(ignore_label=4))
        step = TrainStep(images, labels, is_training, run)
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            metadata = tf.RunMetadata()
            sess.run(step.train_op, options=tf.RunOptions(output_partition_graphs=True), run_metadata=metadata)
    nodes = [node for graph in metadata.partition_graphs for node in graph.node]
    renamed = {node.name: "const:" + hashlib.sha1(node.attr["value"].SerializeToString(deterministic=True))
               .hexdigest() for node in nodes if node.op == "Const"}

    def source(name):
        control, bare = name.startswith("^"), name.lstrip("^")
        node, _, port = bare.partition(":")
        return ("^" if control else "") + renamed.get(node, node) + (":" + port if port else "")

    return sorted((renamed.get(node.name, node.name), node.op, node.device, tuple(sorted(map(source, node.input))),
                   tuple(sorted((key, value.SerializeToString(deterministic=True)) for key, value in node.attr.items()
                                if key != MEMORY_PASS_MARK)))
                  for node in nodes)


def test_a_cpu_session_skips_the_gpu_only_passes():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: the layout and memory passes stay on")
    rewrite = session_config(2).graph_options.rewrite_options
    assert rewrite.layout_optimizer == RewriterConfig.OFF
    assert rewrite.memory_optimization == RewriterConfig.NO_MEM_OPT


@pytest.mark.backend
@pytest.mark.parametrize("decoder, precision", [("LinkNet", "fp32"), ("FCN", "bf16")])
def test_skipping_them_leaves_the_training_graph_as_tensorflows_defaults_make_it(decoder, precision):
    ours = session_config(2, precision=precision)
    defaults = session_config(2, precision=precision)
    defaults.graph_options.rewrite_options.layout_optimizer = RewriterConfig.DEFAULT
    defaults.graph_options.rewrite_options.memory_optimization = RewriterConfig.DEFAULT_MEM_OPT
    lean, full = _optimized_step_graph(decoder, precision, ours), _optimized_step_graph(decoder, precision, defaults)
    assert len(lean) > 1000  # the whole step, oneDNN's or Eigen's kernels
    assert lean == full

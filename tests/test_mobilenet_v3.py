"""MobileNet v3 Large/Small: the zoo checkpoints' variables, their restore, dilation, one block against numpy, size.

The variable lists (tests/fixtures/slim_vars, see its README) come from the reference definitions in
tensorflow/models research/slim/nets/mobilenet/; the reference code itself is not kept, so the numerical
check here is one hard-swish squeeze-excite bottleneck recomputed in numpy with the same random weights.
"""
import os

import numpy as np
import pytest

import nets
from nets import checkpoints, mobilenet_v3
from tests.test_nets import assert_same_variables, randomize_variables_op, session, variable_shapes
from utils.compat import slim, tf
from utils.graphs import count_macs, count_params

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "slim_vars")
VARIANTS = ("mobilenet_v3_large", "mobilenet_v3_small")
# Howard et al. 2019, Table 3 (224x224, depth multiplier 1.0, with the classifier): million params, MMAdds
PAPER = {"mobilenet_v3_large": (5.4, 219), "mobilenet_v3_small": (2.5, 56)}


def zoo_variables(name):
    """{name: shape} of the zoo checkpoint of `name` (tests/fixtures/slim_vars/<name>.txt)."""
    with open(os.path.join(FIXTURES, name + ".txt")) as f:
        return {var: tuple(int(d) for d in shape.split(",")) for var, shape in (line.split() for line in f)}


def without_head(variables, entry):
    return {k: v for k, v in variables.items() if not any(k.startswith(s + "/") for s in entry.head_scopes)}


def build_classifier(name, size=224):
    entry = nets.get(name)
    images = tf.placeholder(tf.float32, [1, size, size, 3])
    with slim.arg_scope(entry.arg_scope_fn(weight_decay=0.0)):
        return entry.net_fn(images, num_classes=1001, is_training=True)


@pytest.mark.parametrize("name", VARIANTS)
def test_classifier_has_the_zoo_checkpoint_variables_and_the_papers_size(name):
    """Exactly the checkpoint's names and shapes; parameters and MACs (convs, as arch.py counts) within 2%."""
    logits, _ = build_classifier(name)
    assert logits.shape.as_list() == [1, 1001]
    assert_same_variables(variable_shapes(), zoo_variables(name))
    params, macs = count_params(tf.trainable_variables()), count_macs(tf.get_default_graph(), [logits])
    paper_params, paper_mmacs = PAPER[name]
    assert abs(params / 1e6 / paper_params - 1) < 0.02, params
    assert abs(macs / 1e6 / paper_mmacs - 1) < 0.02, macs


@pytest.mark.parametrize("name,output_stride", [("mobilenet_v3_large", 16), ("mobilenet_v3_small", 8)])
def test_base_only_is_the_checkpoint_minus_head_and_dilates(name, output_stride):
    """Strides 4/8/16/32 at the registry's taps; output_stride turns the later strides into dilation."""
    entry = nets.get(name)
    features = entry.build(tf.placeholder(tf.float32, [1, 224, 224, 3]), is_training=True,
                           output_stride=output_stride)
    assert_same_variables(variable_shapes(), without_head(zoo_variables(name), entry))
    for stride, tap in features.taps.items():
        assert tap.shape.as_list()[1] == 224 // min(stride, output_stride), (stride, tap)
    dilated = [op for op in tf.get_default_graph().get_operations()
               if op.type == "DepthwiseConv2dNative" and op.get_attr("dilations") != [1, 1, 1, 1]]
    dilated += [op for op in tf.get_default_graph().get_operations() if op.type == "SpaceToBatchND"]
    assert dilated, "no dilated depthwise conv after the output stride"


def test_zoo_checkpoint_restores_into_the_encoder_with_conv_2_as_head(tmp_path):
    """Conv_2 (after the classifier's pool) and Logits are the head: unused, not 'unexpected'."""
    entry = nets.get("mobilenet_v3_small")
    path = str(tmp_path / "v3-small.ckpt")
    with tf.Graph().as_default():
        build_classifier("mobilenet_v3_small", size=32)
        with session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver(tf.model_variables()).save(sess, path)
    entry.build(tf.placeholder(tf.float32, [1, 32, 32, 3]), is_training=False)
    with session() as sess:
        report = checkpoints.restore_registry_entry(sess, path, entry)
    assert report.unexpected == []
    assert report.unused_head == sorted(k for k in zoo_variables(entry.name) if k.startswith(entry.head_scopes))
    assert {"MobilenetV3/Conv_2/weights", "MobilenetV3/Logits/Conv2d_1c_1x1/weights"} <= set(report.unused_head)
    assert len(report.restored) == len(without_head(zoo_variables(entry.name), entry))


def test_hard_swish_and_the_zoo_gate_at_known_points():
    x = tf.constant([-4.0, -3.0, -1.0, 0.0, 1.0, 3.0, 5.0])
    with session() as sess:
        swish, gate = sess.run([mobilenet_v3.hard_swish(x), mobilenet_v3.hard_sigmoid(x)])
    np.testing.assert_allclose(swish, [0, 0, -1 / 3., 0, 2 / 3., 3, 5], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gate, np.array([0, 0, 2, 3, 4, 6, 6]) * 0.16667, rtol=1e-6)


# ---------------------------------------------------------------- one bottleneck against numpy

def numpy_bottleneck(x, w, gate=lambda v: np.clip(v + 3, 0, 6) * 0.16667, activation=None):
    """expand 1x1 + BN + h-swish -> depthwise 3x3 SAME + BN + h-swish -> SE -> project 1x1 + BN -> + x."""
    activation = activation or (lambda v: v * np.clip(v + 3, 0, 6) / 6)

    def bn(v, scope):
        mean, var = w[scope + "/BatchNorm/moving_mean"], w[scope + "/BatchNorm/moving_variance"]
        return (v - mean) / np.sqrt(var + 1e-3) * w[scope + "/BatchNorm/gamma"] + w[scope + "/BatchNorm/beta"]

    net = activation(bn(x @ w["expand/weights"][0, 0], "expand"))
    kernel = w["depthwise/depthwise_weights"][:, :, :, 0]
    padded = np.pad(net, [(1, 1), (1, 1), (0, 0)])
    net = sum(padded[a:a + x.shape[0], b:b + x.shape[1]] * kernel[a, b] for a in range(3) for b in range(3))
    net = activation(bn(net, "depthwise"))
    squeezed = np.maximum(net.mean((0, 1)) @ w["squeeze_excite/Conv/weights"][0, 0]
                          + w["squeeze_excite/Conv/biases"], 0)
    net = net * gate(squeezed @ w["squeeze_excite/Conv_1/weights"][0, 0] + w["squeeze_excite/Conv_1/biases"])
    return bn(net @ w["project/weights"][0, 0], "project") + x


def test_hard_swish_squeeze_excite_bottleneck_equals_numpy():
    """Block(3x3, x3, SE, h-swish) over 8 channels, inference BN, random weights; negative controls: a
    sigmoid gate or ReLU in place of the hard ones are 100x outside the tolerance."""
    tf.set_random_seed(0)
    block = mobilenet_v3.Block(3, 3, 8, 1, True, True)
    x = np.random.RandomState(3).uniform(-2, 2, [6, 6, 8]).astype(np.float32)
    inputs = tf.constant(x[None])
    with slim.arg_scope(mobilenet_v3.mobilenet_v3_arg_scope()), slim.arg_scope([slim.batch_norm], is_training=False):
        out = mobilenet_v3.expanded_conv(inputs, block, 8, 1, 1, {}, "layer", scope="block")
    variables = tf.global_variables("block/")
    assert {v.op.name for v in variables} >= {"block/expand/weights", "block/squeeze_excite/Conv_1/biases"}
    with session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(randomize_variables_op("block"))
        values = sess.run({v.op.name[len("block/"):]: v for v in variables})
        ours = sess.run(out)[0]
    assert values["squeeze_excite/Conv/weights"].shape == (1, 1, 24, 8)  # make_divisible(24 / 4) = 8
    scale = np.abs(ours).max()
    assert np.abs(ours - numpy_bottleneck(x, values)).max() <= 1e-5 * scale
    sigmoid = numpy_bottleneck(x, values, gate=lambda v: 1 / (1 + np.exp(-v)))
    relu = numpy_bottleneck(x, values, activation=lambda v: np.maximum(v, 0))
    for wrong in (sigmoid, relu):
        assert np.abs(ours - wrong).max() > 1e-3 * scale

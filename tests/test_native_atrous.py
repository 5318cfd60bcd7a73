"""Dilated convs run as one native Conv2D, with the results and gradients of the space-to-batch path."""
import numpy as np
import pytest

import arch
from utils.compat import slim, tf


@pytest.mark.parametrize("rate,padding", [(2, "SAME"), (6, "SAME"), (3, "VALID")])
def test_native_dilated_conv_matches_space_to_batch(rate, padding):
    rng = np.random.RandomState(rate)
    x = tf.constant(rng.rand(2, 23, 29, 5).astype(np.float32))
    with tf.variable_scope("layer"):
        y = slim.conv2d(x, 4, 3, rate=rate, padding=padding, activation_fn=None)
    kernel, bias = tf.global_variables()
    reference = tf.nn.bias_add(tf.nn.atrous_conv2d(x, kernel, rate, padding), bias)  # space-to-batch
    grads = tf.gradients(tf.reduce_sum(y * y), [x, kernel])
    reference_grads = tf.gradients(tf.reduce_sum(reference * reference), [x, kernel])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        ours, theirs, g1, g2 = sess.run([y, reference, grads, reference_grads])
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    types = [op.type for op in tf.get_default_graph().get_operations() if op.name.startswith("layer/")]
    assert "SpaceToBatchND" not in types and types.count("Conv2D") == 1


def test_dilated_encoder_and_aspp_have_no_space_to_batch():
    model = arch.build_model(arch.ModelSpec("resnet_v1_50", "DeepLabV3", 4, output_stride=8))
    model.build(tf.placeholder(tf.float32, [1, 128, 128, 3]))
    ops = tf.get_default_graph().get_operations()
    dilated = [op for op in ops if op.type == "Conv2D" and op.get_attr("dilations") != [1, 1, 1, 1]]
    assert len(dilated) >= 3 + 6  # ASPP's three branches + the dilated 3x3s of blocks 3 and 4
    assert not [op for op in ops if op.type == "SpaceToBatchND"]

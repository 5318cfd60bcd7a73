"""LR-ASPP: the MobileNetV3 paper's head (gated 1x1 conv at stride 16 + stride-8 class projection), any encoder."""
import numpy as np
import pytest

import decoders
from tests.conftest import build
from tests.test_nets import randomize_variables_op, session
from utils.compat import tf


def decoder_shapes(model):
    return {v.op.name: v.shape.as_list() for v in model.decoder_variables()}


@pytest.mark.parametrize("encoder", ("mobilenet_v3_large", "resnet_v1_18"))
def test_lraspp_layers_and_strides(encoder):
    """Dilated to stride 16 by default; 1x1 conv + BN and a biased 1x1 gate on the top, two class scorers."""
    model = build(encoder, "LRASPP", 5)
    logits = model.build(tf.placeholder(tf.float32, [1, 96, 160, 3]))
    assert logits.shape.as_list() == [1, 96, 160, 5]
    assert model.features.true_stride(32) == 16 and model.active_skip_strides() == (8,)
    top, low = (int(model.features.taps[s].shape[-1]) for s in (32, 8))
    shapes = decoder_shapes(model)
    assert shapes["decoder/lraspp/conv/weights"] == [1, 1, top, 128]
    assert "decoder/lraspp/conv/BatchNorm/moving_mean" in shapes and "decoder/lraspp/conv/biases" not in shapes
    assert shapes["decoder/lraspp/gate/weights"] == [1, 1, top, 128] and shapes["decoder/lraspp/gate/biases"] == [128]
    assert shapes["decoder/lraspp/logits/weights"] == [1, 1, 128, 5]
    assert shapes["decoder/up8/low_level_logits/weights"] == [1, 1, low, 5]
    assert len(shapes) == 11  # conv (weights + 4 BN), gate (2), logits (2), low-level logits (2): nothing else


def test_lraspp_equals_the_papers_formula_in_numpy():
    """Stride-16 scores = W_cls (ReLU(BN(W x)) * sigmoid(W_g mean(x) + b_g)) + b_cls; at stride 8 they are
    upsampled and the low-level scores W_low x8 + b_low added; channels option honoured.  Negative control:
    without the gate the numbers are far off."""
    tf.set_random_seed(0)
    model = build("mobilenet_v3_small", "LRASPP", 3, lraspp_channels=16)
    model.build(tf.placeholder_with_default(np.random.RandomState(0).uniform(0, 255, [1, 64, 64, 3])
                                            .astype(np.float32), [1, 64, 64, 3]))
    high, combined = model.pyramid[32], model.pyramid[8]  # keyed by nominal stride: the top is 32
    upsampled = model.resize_to(high, model.features.taps[8])
    with session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run([randomize_variables_op(model.encoder.scope), randomize_variables_op("decoder")])
        w = sess.run({v.op.name: v for v in model.decoder_variables()})
        top, low, high_v, combined_v, upsampled_v = sess.run(
            [model.features.taps[32], model.features.taps[8], high, combined, upsampled])

    def conv(x, scope):
        out = x @ w["decoder/%s/weights" % scope][0, 0]
        return out + w["decoder/%s/biases" % scope] if "decoder/%s/biases" % scope in w else out

    bn = {k: w["decoder/lraspp/conv/BatchNorm/" + k] for k in ("gamma", "beta", "moving_mean", "moving_variance")}
    features = np.maximum((conv(top, "lraspp/conv") - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-5)
                          * bn["gamma"] + bn["beta"], 0)
    gate = 1 / (1 + np.exp(-conv(top.mean((1, 2), keepdims=True), "lraspp/gate")))
    expected = conv(features * gate, "lraspp/logits")
    scale = np.abs(expected).max()
    assert np.abs(high_v - expected).max() <= 1e-4 * scale
    assert np.abs(high_v - conv(features, "lraspp/logits")).max() > 1e-2 * scale  # the gate matters: 100x the tolerance
    np.testing.assert_allclose(combined_v, upsampled_v + conv(low, "up8/low_level_logits"), rtol=1e-5, atol=1e-5)


def test_lraspp_is_registered_with_its_option():
    cls = decoders.get("lraspp")
    assert cls.name == "LRASPP" and cls.default_output_stride == 16
    assert cls.make_options().lraspp_channels == 128

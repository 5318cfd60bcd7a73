"""Xception-65 (nets/xception.py) against DeepLab's own research/deeplab/core/xception.py.

The reference is tests/fixtures/deeplab_xception_65/, made once by running DeepLab's code under tf_slim
(make_fixture.py there): the variable layout of DeepLab's xception_65 (its model zoo checkpoint's names and
shapes) and DeepLab's end points for seeded random variables, regenerated here with numpy, on a real frame.
"""
import os

import numpy as np
import pytest

import nets
from tests.conftest import ROOT, build
from tests.fixtures.deeplab_xception_65.random_weights import random_variables, read_layout
from tests.test_nets import assert_same_variables, session, variable_shapes
from utils.compat import slim, tf
from utils.training.config import resolve_pretrained

FIXTURE_DIR = os.path.join(ROOT, "tests", "fixtures", "deeplab_xception_65")
LAYOUT = read_layout(os.path.join(FIXTURE_DIR, "variables.txt"))
TOLERANCE = 1e-4  # max |ours - DeepLab's| / max |DeepLab's|, per end point
PERTURBED = "xception_65/middle_flow/block1/unit_9/xception_module/separable_conv2_depthwise/depthwise_weights"
ENTRY = nets.get("xception_65")


def max_relative_difference(ours, reference):
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def test_variables_are_deeplabs():
    """The classifier builds exactly DeepLab's variables; base_only all but `xception_65/logits`."""
    with slim.arg_scope(ENTRY.arg_scope_fn()):
        logits, _ = ENTRY.net_fn(tf.placeholder(tf.float32, [1, 64, 96, 3]), num_classes=1001, is_training=True)
    assert logits.shape.as_list() == [1, 1001]
    assert_same_variables(variable_shapes(), LAYOUT)
    with tf.Graph().as_default():
        ENTRY.build(tf.placeholder(tf.float32, [1, 64, 96, 3]), is_training=True)
        encoder = {k: v for k, v in LAYOUT.items() if not k.startswith(ENTRY.head_scope + "/")}
        assert_same_variables(variable_shapes(), encoder)
        assert len(encoder) == len(LAYOUT) - 2


@pytest.fixture(scope="module")
def outputs():
    """Our end points at output strides 32, 16, 8 with the fixture's variables; again with one kernel flipped."""
    reference = dict(np.load(os.path.join(FIXTURE_DIR, "end_points.npz")))
    image = reference.pop("image")
    seed, step = int(reference.pop("seed")), int(reference.pop("channel_step"))
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, image.shape)
        points = {}
        with slim.arg_scope(ENTRY.arg_scope_fn()):
            for i, stride in enumerate((32, 16, 8)):
                top, end_points = ENTRY.net_fn(images, is_training=False, base_only=True, reuse=i > 0,
                                               output_stride=None if stride == 32 else stride)
                points.update({key: end_points["xception_65/" + key.split("|")[1]]
                               for key in reference if key.startswith("os%d|" % stride)})
                points["top%d" % stride] = top
        variables = {v.op.name: v for v in tf.global_variables()}
        values = random_variables({k: v.shape.as_list() for k, v in variables.items()}, seed)
        feed = {images: ENTRY.preprocess(tf.constant(image, tf.float32)).eval(session=tf.Session())}
        with session() as sess:
            for name, value in values.items():
                variables[name].load(value, sess)
            ours = sess.run(points, feed)
            variables[PERTURBED].load(values[PERTURBED][::-1, ::-1], sess)  # convolution for correlation
            perturbed = sess.run(points, feed)
    crop = {key: value[..., ::step] for key, value in ours.items()}
    return reference, crop, {key: value[..., ::step] for key, value in perturbed.items()}, ours


def test_end_points_equal_deeplabs(outputs):
    reference, ours, _, _ = outputs
    assert len(reference) == 11
    differences = {key: max_relative_difference(ours[key], value) for key, value in reference.items()}
    print("max relative difference vs DeepLab: %s" % differences)
    assert max(differences.values()) <= TOLERANCE, differences


def test_a_changed_weight_is_caught_downstream_only(outputs):
    """Negative control: one middle-flow depthwise kernel flipped (a convolution where DeepLab correlates) breaks
    the comparison after it, not before."""
    reference, _, perturbed, _ = outputs
    before = "os32|entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise"
    assert max_relative_difference(perturbed[before], reference[before]) <= TOLERANCE
    for key in ("os32|middle_flow/block1", "os32|exit_flow/block2", "os8|exit_flow/block2"):
        assert max_relative_difference(perturbed[key], reference[key]) > 10 * TOLERANCE, key


def test_dense_equals_strided(outputs):
    """Symmetric explicit padding (DeepLab's fixed_padding): the dilated net sampled every 32/os pixels is the
    stride-32 net, exactly (64x96 divides by 32)."""
    full = outputs[3]
    assert full["top32"].shape == (1, 2, 3, 2048) and full["top8"].shape == (1, 8, 12, 2048)
    scale = np.abs(full["top32"]).max()
    for stride in (16, 8):
        np.testing.assert_allclose(full["top%d" % stride][:, ::32 // stride, ::32 // stride], full["top32"],
                                   atol=1e-5 * scale, rtol=0)


def test_deeplabv3plus_reads_deeplabs_stride_4_map():
    """DeepLab v3+ over Xception-65: output stride 16 by default, the decoder's 48-channel reduction reads
    entry_flow/block2/.../separable_conv2_pointwise (256 channels, stride 4), as DeepLab's feature_extractor."""
    model = build("xception_65", "DeepLabV3Plus", 5)
    logits = model.build(tf.placeholder(tf.float32, [1, 64, 96, 3]))
    assert logits.shape.as_list() == [1, 64, 96, 5] and model.features.true_stride(32) == 16
    low_level = [op for op in tf.get_default_graph().get_operations()
                 if op.type == "Conv2D" and op.name.endswith("low_level/Conv2D")]
    assert len(low_level) == 1
    source = low_level[0].inputs[0]
    assert source.shape.as_list() == [1, 16, 24, 256]
    assert "entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise" in source.op.name


def test_missing_checkpoint_names_deeplabs_file(tmp_path):
    with pytest.raises(ValueError) as info:
        resolve_pretrained(None, str(tmp_path), "xception_65")
    message = str(info.value)
    assert os.path.join(str(tmp_path), "xception_65_imagenet", "model.ckpt") in message
    assert "DeepLab's model zoo (xception_65_imagenet_2018_05_04.tar.gz" in message

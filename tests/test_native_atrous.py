"""Dilated convs: the route follows the backend, and both routes give the results and gradients of a plain
convolution with a zero-inserted kernel (an independent reference that runs on every backend)."""
import json
import os

import numpy as np
import pytest

import arch
from tests.conftest import run_script
from utils.compat import backend, native_atrous, slim, tf

pytestmark = pytest.mark.backend

ROUTES = (native_atrous.NATIVE, native_atrous.SPACE_TO_BATCH)


def dilate_kernel(kernel, rate):
    """A k x k kernel as a ((k - 1) rate + 1)^2 kernel with rate - 1 zeros between its taps (differentiable)."""
    k, channels = int(kernel.shape[0]), [int(d) for d in kernel.shape[2:]]
    size = (k - 1) * rate + 1
    taps = [[i * rate, j * rate] for i in range(k) for j in range(k)]
    return tf.scatter_nd(taps, tf.reshape(kernel, [k * k] + channels), [size, size] + channels)


def runnable(route):
    if route == native_atrous.NATIVE and native_atrous.decide(backend.onednn_enabled(),
                                                              backend.gpu_count()).name != route:
        pytest.skip("the native route has no backward pass here (%s): the space-to-batch route runs instead"
                    % backend.describe())


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("rate,padding", [(2, "SAME"), (6, "SAME"), (3, "VALID"), (25, "SAME"), (29, "SAME")])
def test_both_routes_match_a_zero_inserted_kernel(route, rate, padding):
    """Rate 25 reaches past the 23 rows, not the 29 columns; rate 29 past both: the centre tap alone."""
    runnable(route)
    rng = np.random.RandomState(rate)
    x = tf.constant(rng.rand(2, 23, 29, 5).astype(np.float32))
    with native_atrous.forced(route), tf.variable_scope("layer"):
        y = slim.conv2d(x, 4, 3, rate=rate, padding=padding, activation_fn=None)
    kernel, bias = tf.global_variables()
    reference = tf.nn.bias_add(tf.nn.conv2d(x, dilate_kernel(kernel, rate), [1, 1, 1, 1], padding), bias)
    grads = tf.gradients(tf.reduce_sum(y * y), [x, kernel, bias])
    reference_grads = tf.gradients(tf.reduce_sum(reference * reference), [x, kernel, bias])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        ours, theirs, g1, g2 = sess.run([y, reference, grads, reference_grads])
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    types = [op.type for op in tf.get_default_graph().get_operations() if op.name.startswith("layer/")]
    if rate == 29:  # centre tap: one 1x1 Conv2D on either route
        (conv,) = [op for op in tf.get_default_graph().get_operations() if op.type == "Conv2D"
                   and op.name.startswith("layer/")]
        assert conv.inputs[1].shape.as_list() == [1, 1, 5, 4] and conv.get_attr("dilations") == [1, 1, 1, 1]
        assert "SpaceToBatchND" not in types
    elif route == native_atrous.NATIVE:
        assert "SpaceToBatchND" not in types and types.count("Conv2D") == 1
    else:
        assert types.count("SpaceToBatchND") == 1 and types.count("BatchToSpaceND") == 1


@pytest.mark.parametrize("route", ROUTES)
def test_a_dilated_encoder_and_aspp_follow_the_route(route):
    with native_atrous.forced(route):
        model = arch.build_model(arch.ModelSpec("resnet_v1_50", "DeepLabV3", 4, output_stride=8))
        model.build(tf.placeholder(tf.float32, [1, 128, 128, 3]))
    ops = tf.get_default_graph().get_operations()
    dilated = [op for op in ops if op.type == "Conv2D" and op.get_attr("dilations") != [1, 1, 1, 1]]
    space_to_batch = [op for op in ops if op.type == "SpaceToBatchND"]
    # a 16x16 map: ASPP's rate 12 is dilated, rates 24 and 36 see it only through their centre tap
    centre = [op.name.split("/")[2] for op in ops if op.type == "Conv2D" and "aspp/conv_3x3" in op.name
              and op.inputs[1].shape.as_list()[:2] == [1, 1]]
    assert centre == ["conv_3x3_rate24", "conv_3x3_rate36"]
    if route == native_atrous.NATIVE:
        assert len(dilated) == 1 + 9 and not space_to_batch  # ASPP's rate 12 + the 3x3s of blocks 3 and 4
    else:
        assert not dilated and len(space_to_batch) == 1 + 9


@pytest.mark.parametrize("onednn, gpus, override, route", [
    (True, 0, None, "native"), (False, 0, None, "space_to_batch"), (False, 1, None, "native"),
    (True, 1, None, "native"), (True, 0, "space_to_batch", "space_to_batch"), (False, 0, "native", "native")])
def test_the_route_follows_the_kernels_that_will_run(onednn, gpus, override, route):
    chosen = native_atrous.decide(onednn, gpus, override)
    assert chosen.name == route
    assert ("oneDNN is off" in chosen.reason) == (route == "space_to_batch" and not override)
    assert ("your setting SEGMENTOR_DILATED_CONVS" in chosen.reason) == bool(override)


def test_this_process_decided_once_from_its_backend():
    expected = native_atrous.decide(backend.onednn_enabled(), backend.gpu_count(),
                                    os.environ.get(native_atrous.OVERRIDE))
    assert native_atrous.route() == expected
    with native_atrous.forced(native_atrous.SPACE_TO_BATCH):
        assert native_atrous.route().name == native_atrous.SPACE_TO_BATCH
    assert native_atrous.route() == expected
    with pytest.raises(ValueError, match="SEGMENTOR_DILATED_CONVS must be native or space_to_batch"):
        native_atrous.decide(True, 0, "fast")


DEEPLAB_ARGS = ("--decoder", "DeepLabV3", "--output_stride", "8", "--pretrained", "none", "--pixels", "64",
                "--batch_size", "2", "--val_every", "5", "--save_every", "5", "--log_every", "1", "--seed", "3")


def test_deeplab_os8_trains_where_onednn_is_off(sample_datapath, tmp_path):
    """The Eigen path (what an AVX2 CPU ran before oneDNN was asked for): space-to-batch, and it trains.  ResNet-18
    at output stride 8 dilates blocks 3 and 4 (rates 2 and 4) as ResNet-50 does, in a quarter of the time."""
    proc = run_script("train.py", "--encoder", "resnet_v1_18", *DEEPLAB_ARGS, "--max_steps", "5",
                      "--datapath", sample_datapath, "--runs_root", tmp_path, env={"TF_ENABLE_ONEDNN_OPTS": "0"})
    (folder,) = [os.path.join(tmp_path, d) for d in os.listdir(tmp_path)]
    runlog = open(os.path.join(folder, "runlog")).read()
    assert ("backend: oneDNN off, Eigen kernels (your setting TF_ENABLE_ONEDNN_OPTS=0) | dilated convolutions: "
            "space-to-batch around a plain Conv2D") in runlog, runlog
    assert "done: 5 steps" in proc.stdout + runlog
    provenance = json.load(open(os.path.join(folder, "runargs")))["provenance"]["backend"]
    assert (provenance["onednn"], provenance["setting"], provenance["dilated_convs"]) == (False, "user",
                                                                                         "space_to_batch")


def test_a_kernel_the_backend_lacks_is_named_not_blamed_on_the_data(sample_datapath, tmp_path):
    """A non-data InvalidArgumentError in a training step (Eigen's Conv2D has no dilated backward pass, so the
    native route forced with oneDNN off fails there): one line naming the op, TensorFlow's words and the fix."""
    proc = run_script("train.py", "--encoder", "resnet_v1_18", *DEEPLAB_ARGS, "--max_steps", "2",
                      "--datapath", sample_datapath, "--runs_root", tmp_path, check=False,
                      env={"TF_ENABLE_ONEDNN_OPTS": "0", "SEGMENTOR_DILATED_CONVS": "native"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: training stopped: op ") and "Conv2DBackprop" in lines[0], lines
    assert "do not yet support dilation rates larger than 1" in lines[0]
    assert "oneDNN off" in lines[0] and lines[0].endswith("set TF_ENABLE_ONEDNN_OPTS=1")
    assert "record file" not in lines[0] and not os.listdir(tmp_path)

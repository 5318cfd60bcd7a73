"""EfficientNet-B0..B3 / Lite0: the TPU checkpoints' variables, the reference's end points, one MBConv block in
numpy, dilation, preprocessing, restoring a checkpoint of the published names.

The fixtures in tests/fixtures/efficientnet_vars/ come from the reference code itself (tensorflow/tpu
models/official/efficientnet), made by the reference.py there.
"""
import os

import numpy as np
import pytest

import arch
from nets import checkpoints, efficientnet, registry
from tests.test_nets import assert_same_variables, session, variable_shapes
from utils.compat import slim, tf
from utils.training import config

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "efficientnet_vars")
NETS = tuple(efficientnet.VARIANTS)
# Trainable parameters with the 1000-class classifier: Tan & Le 2019 Table 1 / Figure 5 (B0-B3), the TPU
# repository's lite/README.md (Lite0).
PAPER_MILLIONS = {"efficientnet_b0": 5.3, "efficientnet_b1": 7.8, "efficientnet_b2": 9.2, "efficientnet_b3": 12.0,
                  "efficientnet_lite0": 4.7}
TOLERANCE = 1e-4  # of the largest magnitude: float32 sums in another order


def shapes_of(net):
    """<net>.txt -> {variable name: shape}."""
    shapes = {}
    with open(os.path.join(FIXTURES, net + ".txt")) as f:
        for line in f:
            name, shape = line.split()
            shapes[name] = tuple(int(d) for d in shape.split(","))
    return shapes


def seeded_values(shapes, seed=0):
    """{name: float32 value} for {name: shape} from numpy (the same on any TF), BN statistics not trivial."""
    rng = np.random.RandomState(seed)
    values = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith(("moving_variance", "gamma")):
            values[name] = rng.uniform(0.5, 2.0, shape)
        elif name.endswith(("moving_mean", "beta", "bias")):
            values[name] = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = np.prod(shape[:2]) if name.endswith("depthwise_kernel") else np.prod(shape[:-1])
            values[name] = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    return {name: value.astype(np.float32) for name, value in values.items()}


def build_full(net, size=32, is_training=True):
    entry = registry.get(net)
    images = tf.placeholder(tf.float32, [1, size, size, 3])
    with slim.arg_scope(entry.arg_scope_fn(weight_decay=1e-5)):
        logits, end_points = entry.net_fn(entry.preprocess(images), num_classes=1000, is_training=is_training)
    return images, logits, end_points


def load(sess, values):
    for var in tf.global_variables():
        var.load(values[var.op.name], sess)


# ---------------------------------------------------------------- variables and sizes vs the checkpoints

@pytest.mark.parametrize("net", NETS)
def test_full_net_has_the_checkpoint_variables_and_the_paper_size(net):
    _, logits, _ = build_full(net)
    assert logits.shape.as_list() == [1, 1000]
    got = variable_shapes()
    assert got.pop("global_step") == ()  # training's stochastic depth seeds its masks with the step
    assert_same_variables(got, shapes_of(net))
    trainable = sum(int(np.prod(v.shape.as_list())) for v in tf.trainable_variables())
    assert abs(trainable / 1e6 - PAPER_MILLIONS[net]) <= 0.03 * PAPER_MILLIONS[net], trainable


def test_variable_check_catches_a_wrong_name_and_a_wrong_shape():
    """Negative control: the comparison above fails when one name or one shape differs."""
    build_full("efficientnet_lite0")
    got = variable_shapes()
    renamed = dict(got)
    renamed["efficientnet-lite0/blocks_1/conv2d_2/kernel"] = renamed.pop("efficientnet-lite0/blocks_1/conv2d_1/kernel")
    reshaped = dict(got, **{"efficientnet-lite0/stem/conv2d/kernel": (3, 3, 3, 16)})
    for wrong in (renamed, reshaped):
        with pytest.raises(AssertionError):
            assert_same_variables(wrong, shapes_of("efficientnet_lite0"))


def test_base_only_leaves_out_the_head_and_taps_strides_4_to_32():
    entry = registry.get("efficientnet_b2")
    features = entry.build(tf.placeholder(tf.float32, [1, 64, 96, 3]), is_training=False)
    expected = {k: v for k, v in shapes_of("efficientnet_b2").items() if not k.startswith(entry.head_scope + "/")}
    assert_same_variables(variable_shapes(), expected)
    depths = {stride: features.taps[stride].shape.as_list() for stride in (4, 8, 16, 32)}
    assert depths == {4: [1, 16, 24, 24], 8: [1, 8, 12, 48], 16: [1, 4, 6, 120], 32: [1, 2, 3, 352]}


@pytest.mark.parametrize("output_stride", (8, 16))
def test_output_stride_dilates_without_new_variables(output_stride):
    entry = registry.get("efficientnet_b0")
    features = entry.build(tf.placeholder(tf.float32, [1, 64, 64, 3]), is_training=False,
                           output_stride=output_stride)
    assert features.true_stride(32) == output_stride
    assert [features.true_stride(s) for s in (4, 8, 16)] == [min(s, output_stride) for s in (4, 8, 16)]
    expected = {k: v for k, v in shapes_of("efficientnet_b0").items() if not k.startswith(entry.head_scope + "/")}
    assert_same_variables(variable_shapes(), expected)
    rates = {int(tf.get_static_value(op.inputs[1])[0]) for op in tf.get_default_graph().get_operations()
             if op.type == "SpaceToBatchND"}  # atrous depthwise convs run as space-to-batch
    assert rates == ({2, 4} if output_stride == 8 else {2})


# ---------------------------------------------------------------- numerics

@pytest.mark.parametrize("net", ("efficientnet_b0", "efficientnet_lite0"))
def test_end_points_equal_the_tpu_reference(net):
    """endpoints_<net>.npz: the reference's end points on a 64x64 CamVid image with the seeded weights."""
    reference = np.load(os.path.join(FIXTURES, "endpoints_%s.npz" % net))
    images, logits, end_points = build_full(net, size=64, is_training=False)
    names = [k for k in reference.files if k != "image"]
    values = seeded_values(shapes_of(net))
    with session() as sess:
        load(sess, values)
        got = sess.run({k: logits if k == "logits" else end_points[k] for k in names},
                       {images: reference["image"].astype(np.float32)})
        name = "%s/blocks_3/tpu_batch_normalization_1/gamma" % efficientnet.VARIANTS[net].scope
        load(sess, dict(values, **{name: values[name] * 1.01}))  # negative control: one BN scale 1% off
        perturbed = sess.run(logits, {images: reference["image"].astype(np.float32)})
    for k in names:
        scale = np.abs(reference[k]).max()
        assert scale > 1e-3 and np.abs(got[k] - reference[k]).max() <= TOLERANCE * scale, k
    assert np.abs(perturbed - reference["logits"]).max() > 10 * TOLERANCE * np.abs(reference["logits"]).max()


def same_pad(x, kernel, stride, rate):
    """TF 'SAME' padding (the extra pixel after) of NHWC x for a k x k kernel at `rate`."""
    effective = kernel + (kernel - 1) * (rate - 1)
    pads = []
    for size in x.shape[1:3]:
        total = max((-(-size // stride) - 1) * stride + effective - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])


def numpy_depthwise(x, kernel, stride, rate):
    padded = same_pad(x, kernel.shape[0], stride, rate)
    out_h, out_w = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            window = padded[:, i * rate::stride, j * rate::stride][:, :out_h, :out_w]
            out += window * kernel[i, j, :, 0]
    return out


def numpy_mbconv(x, v, prefix, stride, rate, residual):
    """efficientnet_model.MBConvBlock (inference BN, swish, SE) written out in numpy."""
    swish = lambda t: t / (1 + np.exp(-t))  # noqa: E731
    sigmoid = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731

    def bn(t, name):
        p = {k: v["%s/%s/%s" % (prefix, name, k)] for k in ("gamma", "beta", "moving_mean", "moving_variance")}
        return (t - p["moving_mean"]) / np.sqrt(p["moving_variance"] + 1e-3) * p["gamma"] + p["beta"]

    def conv1x1(t, name, bias=False):
        out = t @ v["%s/%s/kernel" % (prefix, name)][0, 0]
        return out + v["%s/%s/bias" % (prefix, name)] if bias else out

    net = swish(bn(conv1x1(x, "conv2d"), "tpu_batch_normalization"))
    net = numpy_depthwise(net, v[prefix + "/depthwise_conv2d/depthwise_kernel"], stride, rate)
    net = swish(bn(net, "tpu_batch_normalization_1"))
    gate = swish(conv1x1(net.mean(axis=(1, 2), keepdims=True), "se/conv2d", bias=True))
    net = net * sigmoid(conv1x1(gate, "se/conv2d_1", bias=True))
    net = bn(conv1x1(net, "conv2d_1"), "tpu_batch_normalization_2")
    return net + x if residual else net


@pytest.mark.parametrize("depth,stride,rate", [(24, 2, 1), (16, 1, 2)])
def test_one_mbconv_block_equals_numpy(depth, stride, rate):
    """A strided 5x5 block (asymmetric 'SAME' padding) and a dilated residual one, against numpy."""
    x = np.random.RandomState(3).normal(0, 1, (2, 9, 11, 16)).astype(np.float32)
    inputs = tf.constant(x)
    with slim.arg_scope(efficientnet.efficientnet_arg_scope()), slim.arg_scope([slim.batch_norm], is_training=False):
        with tf.variable_scope("block"):
            out = efficientnet.mbconv_block(inputs, depth, 5, 6, stride, rate, tf.nn.swish, True,
                                            residual=stride == 1, end_points={}, prefix="block")
    values = seeded_values(variable_shapes(), seed=4)
    with session() as sess:
        load(sess, values)
        got = sess.run(out)
    expected = numpy_mbconv(x.astype(np.float64), values, "block", stride, rate, residual=stride == 1)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE * np.abs(expected).max()


# ---------------------------------------------------------------- preprocessing and checkpoints

def test_preprocessing_is_the_tpu_repositorys():
    images = np.random.RandomState(5).uniform(0, 255, (1, 4, 4, 3)).astype(np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255  # builder MEAN_RGB
    with session() as sess:
        b0, lite = sess.run([registry.get("efficientnet_b0").preprocess(tf.constant(images)),
                             registry.get("efficientnet_lite0").preprocess(tf.constant(images))])
    np.testing.assert_allclose(b0, (images - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lite, (images - 127.0) / 128.0, rtol=1e-6, atol=1e-6)


def test_a_checkpoint_with_the_published_names_restores_and_a_missing_one_is_named(tmp_path):
    """A file holding exactly the reference's variables (head included) fills a base_only build; the head is
    reported unused.  Without a file, the message names `<modelspath>/efficientnet-lite0/model.ckpt`."""
    entry = registry.get("efficientnet_lite0")
    values = seeded_values(shapes_of("efficientnet_lite0"))
    path = str(tmp_path / entry.checkpoint)
    with tf.Graph().as_default():
        variables = [tf.Variable(value, name=name) for name, value in values.items()]
        with session() as sess:
            sess.run(tf.variables_initializer(variables))
            tf.train.Saver(variables).save(sess, path, write_meta_graph=False)
    assert config.resolve_pretrained(None, str(tmp_path), "efficientnet_lite0") == path
    entry.build(tf.placeholder(tf.float32, [1, 32, 32, 3]), is_training=False)
    with session() as sess:
        report = checkpoints.restore_registry_entry(sess, path, entry)
        stem = sess.run(tf.global_variables("efficientnet-lite0/stem/conv2d/kernel")[0])
    np.testing.assert_array_equal(stem, values["efficientnet-lite0/stem/conv2d/kernel"])
    assert len(report.restored) == len(values) - 7 and not report.unexpected  # head: conv, BN (4), dense (2)
    assert sorted(report.unused_head)[0] == "efficientnet-lite0/head/conv2d/kernel"
    with pytest.raises(ValueError, match="efficientnet-lite0/model.ckpt"):
        config.resolve_pretrained(None, str(tmp_path / "elsewhere"), "efficientnet_lite0")


# ---------------------------------------------------------------- exponential-moving-average weights

def write_checkpoint(path, values):
    with tf.Graph().as_default():
        variables = [tf.Variable(value, name=name) for name, value in values.items()]
        with session() as sess:
            sess.run(tf.variables_initializer(variables))
            tf.train.Saver(variables).save(sess, path, write_meta_graph=False)


def with_averages(values):
    """The values plus `<name>/ExponentialMovingAverage` = value + 1 for each trainable one (as slim's
    MobileNetV3 checkpoints: batch-norm statistics have no average)."""
    averages = {name + checkpoints.EMA_SUFFIX: value + 1.0 for name, value in values.items()
                if not name.endswith(("moving_mean", "moving_variance"))}
    return dict(values, **averages)


def restore_lite0(path, **kwargs):
    """Build a base_only Lite0, restore `path` through the registry entry: (report, {name: value})."""
    entry = registry.get("efficientnet_lite0")
    entry.build(tf.placeholder(tf.float32, [1, 32, 32, 3]), is_training=False)
    with session() as sess:
        report = checkpoints.restore_registry_entry(sess, path, entry, **kwargs)
        got = {v.op.name: value for v, value in zip(tf.model_variables(), sess.run(tf.model_variables()))}
    return report, got


@pytest.mark.parametrize("ema", (True, False))
def test_the_checkpoints_moving_averages_restore_unless_the_raw_weights_are_asked(tmp_path, ema):
    """The TPU repository evaluates (and publishes accuracies of) `ema.variables_to_restore()`: each variable
    from its `<name>/ExponentialMovingAverage`.  Batch-norm statistics without an average restore as they are;
    the head's averages are not reported unexpected."""
    raw = seeded_values(shapes_of("efficientnet_lite0"))
    path = str(tmp_path / "model.ckpt")
    write_checkpoint(path, with_averages(raw))
    report, got = restore_lite0(path, ema=ema)
    stem = "efficientnet-lite0/stem/conv2d/kernel"
    mean = "efficientnet-lite0/blocks_3/tpu_batch_normalization/moving_mean"
    np.testing.assert_array_equal(got[stem], raw[stem] + 1.0 if ema else raw[stem])
    np.testing.assert_array_equal(got[mean], raw[mean])
    averaged = sorted(name for name in got if not name.endswith(("moving_mean", "moving_variance")))
    assert len(got) == len(report.restored) == len(raw) - 7 and len(averaged) < len(got)
    assert report.from_ema == (averaged if ema else [])
    assert not report.unexpected and len(report.unused_head) == 7  # the head's averages are not listed
    line = report.summary()
    if ema:
        assert "restored %d variables" % len(got) in line and ", %d from their ExponentialMovingAverage" % len(
            averaged) in line and "raw weights" not in line
    else:
        assert ", 0 from their ExponentialMovingAverage (raw weights asked: %d averages" % len(averaged) in line


def test_a_checkpoint_without_averages_restores_raw_and_says_0_from_them(tmp_path):
    raw = seeded_values(shapes_of("efficientnet_lite0"))
    path = str(tmp_path / "model.ckpt")
    write_checkpoint(path, raw)
    report, got = restore_lite0(path)
    for name, value in got.items():
        np.testing.assert_array_equal(value, raw[name], err_msg=name)
    assert report.from_ema == [] and ", 0 from their ExponentialMovingAverage" in report.summary()
    assert "raw weights" not in report.summary()


def test_a_mis_shaped_average_is_named(tmp_path):
    """Negative control: an average of the wrong shape is an error naming it, not a silent raw restore."""
    raw = seeded_values(shapes_of("efficientnet_lite0"))
    values = with_averages(raw)
    name = "efficientnet-lite0/stem/conv2d/kernel" + checkpoints.EMA_SUFFIX
    values[name] = np.zeros((3, 3, 3, 16), np.float32)
    path = str(tmp_path / "model.ckpt")
    write_checkpoint(path, values)
    with pytest.raises(checkpoints.CheckpointMismatchError, match=name):
        restore_lite0(path)


@pytest.mark.parametrize("mode", checkpoints.EMA_MODES)
def test_train_pretrained_ema_reaches_the_restore_and_the_runlog(tmp_path, mode):
    """utils.training.loop.initialise, as train.py calls it, with --pretrained_ema auto / off."""
    import types
    from utils.training import loop
    raw = seeded_values(shapes_of("efficientnet_lite0"))
    path = str(tmp_path / "model.ckpt")
    write_checkpoint(path, with_averages(raw))
    model = arch.build_model(arch.ModelSpec("efficientnet_lite0", "FCN", num_classes=3), is_training=False)
    model.build(tf.placeholder(tf.float32, [1, 32, 32, 3]))
    lines = []
    monitor = types.SimpleNamespace(log=lines.append, log_names=lambda prefix, names: None)
    graph = types.SimpleNamespace(step=types.SimpleNamespace(model=model, unused_variables=[]))
    train = config.TrainSettings(pretrained=path, pretrained_ema=mode)
    run = types.SimpleNamespace(train=train, model=model.spec)
    with session() as sess:
        sess.run(tf.global_variables_initializer())
        loop.initialise(sess, graph, run, monitor)
        stem = sess.run(tf.global_variables("efficientnet-lite0/stem/conv2d/kernel")[0])
    stem_raw = raw["efficientnet-lite0/stem/conv2d/kernel"]
    np.testing.assert_array_equal(stem, stem_raw + 1.0 if mode == "auto" else stem_raw)
    averaged = len([n for n in raw if not n.startswith("efficientnet-lite0/head/")
                    and not n.endswith(("moving_mean", "moving_variance"))])
    assert lines[0].startswith("restored %d encoder variables from %s, %d from their ExponentialMovingAverage"
                               % (len(raw) - 7, path, averaged if mode == "auto" else 0))


# ---------------------------------------------------------------- stochastic depth (drop connect)

def drop_connect_block(keep_prob, batch=4000, seed=1, step=0):
    """One residual MBConv block (inference batch norm) with drop connect in training, and the same block
    without it: (inputs, output, reference output) of a batch of 2x2x16 examples."""
    x = np.random.RandomState(6).normal(0, 1, (batch, 2, 2, 16)).astype(np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        block = dict(depth=16, kernel_size=3, expansion=6, stride=1, rate=1, activation=tf.nn.swish, use_se=True,
                     residual=True, end_points={}, prefix="block", is_training=True)
        with slim.arg_scope(efficientnet.efficientnet_arg_scope()), \
                slim.arg_scope([slim.batch_norm], is_training=False):
            with tf.variable_scope("block"):
                out = efficientnet.mbconv_block(tf.constant(x), keep_prob=keep_prob, **block)
            with tf.variable_scope("block", reuse=True):
                ref = efficientnet.mbconv_block(tf.constant(x), keep_prob=1.0, **block)
        step_variable = tf.train.get_or_create_global_step()
        with session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(step_variable.assign(step))
            got, expected = sess.run([out, ref])
    return x, got, expected


def dropped_examples(x, out):
    return np.all(out == x, axis=(1, 2, 3))


def test_drop_connect_drops_whole_examples_at_the_rate_and_scales_the_kept_ones():
    """The TPU repository's last residual block of B0 / Lite0 (block 14 of 16) keeps 1 - 0.2 * 14 / 16."""
    keep = 1.0 - efficientnet.DROP_CONNECT_RATE * 14 / 16
    x, out, ref = drop_connect_block(keep)
    dropped = dropped_examples(x, out)
    sigma = np.sqrt(keep * (1 - keep) / len(x))
    assert abs(dropped.mean() - (1 - keep)) < 4 * sigma, dropped.mean()
    branch = (ref - x)[~dropped]
    assert np.abs(branch).min(axis=(1, 2, 3)).max() > 0  # kept examples do change
    np.testing.assert_allclose((out - x)[~dropped], branch / keep, rtol=1e-4, atol=1e-5)
    assert not np.allclose((out - x)[~dropped], branch, rtol=1e-4, atol=1e-5)  # negative control: unscaled


def test_drop_connect_masks_follow_the_seed_and_the_step():
    keep = 0.5
    x, first, _ = drop_connect_block(keep, batch=256)
    _, again, _ = drop_connect_block(keep, batch=256)
    _, other_seed, _ = drop_connect_block(keep, batch=256, seed=2)
    _, next_step, _ = drop_connect_block(keep, batch=256, step=1)
    np.testing.assert_array_equal(first, again)
    mask = dropped_examples(x, first)
    assert (mask != dropped_examples(x, other_seed)).any() and (mask != dropped_examples(x, next_step)).any()


def test_drop_connect_rate_0_and_inference_are_the_identity():
    x, out, ref = drop_connect_block(1.0, batch=8)
    np.testing.assert_array_equal(out, ref)
    for rate, is_training, expected in ((0.0, True, 0), (None, False, 0), (None, True, 9), (0.3, True, 9)):
        with tf.Graph().as_default():
            registry.get("efficientnet_lite0").build(tf.placeholder(tf.float32, [2, 32, 32, 3]),
                                                     is_training=is_training, drop_connect_rate=rate)
            scopes = {op.name.split("/drop_connect/")[0] for op in tf.get_default_graph().get_operations()
                      if "/drop_connect/" in op.name}
        # Lite0's residual blocks (stride 1, depth kept): 2, 4, 6, 7, 9, 10, 12, 13, 14
        assert len(scopes) == expected, (rate, is_training, sorted(scopes))


def test_the_model_spec_sets_drop_connect_and_other_encoders_refuse_it():
    spec = arch.ModelSpec("efficientnet_lite0", "FCN", num_classes=3, drop_connect_rate=0.0)
    arch.build_model(spec, is_training=True).build(tf.placeholder(tf.float32, [2, 32, 32, 3]))
    assert not [op for op in tf.get_default_graph().get_operations() if "/drop_connect/" in op.name]
    assert arch.ModelSpec.from_dict(spec.to_dict()).drop_connect_rate == 0.0
    with pytest.raises(ValueError, match="--basenet resnet_v1_18 does not take it"):
        arch.ModelSpec("resnet_v1_18", "FCN", num_classes=3, drop_connect_rate=0.1)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        arch.ModelSpec("efficientnet_b0", "FCN", num_classes=3, drop_connect_rate=1.0)

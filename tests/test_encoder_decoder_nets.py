"""The survey's architectures: ENet, SegNet (pooling indices), RefineNet, FC-DenseNet 56/67/103.

Unpooling by hand, SegNet's encoder against the VGG-16 checkpoint, builds at 224x224 and 360x480 with
gradients reaching every variable, sizes against the papers, and the encoder/decoder pairing rules.
"""
import os

import numpy as np
import pytest

import arch
import decoders
import nets
from nets import checkpoints, fc_densenet, pooling, vgg
from nets import dropout as stateless
from tests.conftest import TINY_TRAIN_ARGS, build, run_script
from tests.test_nets import load_reference, variable_shapes
from utils.compat import slim, tf
from utils.training.config import PretrainedError, resolve_pretrained, scratch_reason

# (encoder, decoder): every new decoder over its own (or a representative) encoder
NETS = [("enet", "ENet"), ("vgg_16", "SegNet"), ("fc_densenet_56", "FCDenseNet"), ("fc_densenet_67", "FCDenseNet"),
        ("fc_densenet_103", "FCDenseNet"), ("resnet_v1_18", "RefineNet")]


# ---------------------------------------------------------------- max unpooling

def test_unpooling_puts_values_back_at_the_argmax_positions_by_hand():
    """A 4x4 map, 2 images x 2 channels, checked against positions worked out by hand."""
    x = np.array([[1, 5, 2, 0],
                  [3, 4, 8, 1],
                  [0, 0, 6, 7],
                  [9, 2, 5, 5.5]], np.float32)
    batch = np.stack([np.stack([x, -x], axis=-1), np.stack([x.T, 10 + x], axis=-1)])  # [2, 4, 4, 2]
    inputs = tf.constant(batch)
    record = {}
    pooled = pooling.max_pool_2x2(inputs, "pool", record=record, stride=1)
    grads = tf.placeholder(tf.float32, [2, 2, 2, 2])
    unpooled = pooling.unpool(grads, record[1])
    gradient = tf.gradients(tf.reduce_sum(unpooled * tf.constant(np.arange(64, dtype=np.float32).reshape(
        2, 4, 4, 2))), grads)[0]
    values = np.arange(1, 17, dtype=np.float32).reshape(2, 2, 2, 2)
    with tf.Session() as sess:
        pooled_v, out, grad_v = sess.run([pooled, unpooled, gradient], {grads: values})
    np.testing.assert_array_equal(pooled_v[0, :, :, 0], [[5, 8], [9, 7]])
    expected = np.zeros((4, 4), np.float32)  # image 0, channel 0: the maxima 5, 8, 9, 7 sit at
    expected[0, 1], expected[1, 2], expected[3, 0], expected[2, 3] = values[0, :, :, 0].ravel()
    np.testing.assert_array_equal(out[0, :, :, 0], expected)
    assert out.shape == (2, 4, 4, 2) and np.count_nonzero(out) == 16  # one value per 2x2 window, nothing lost
    for n in range(2):
        for c in range(2):
            mask = out[n, :, :, c] != 0
            window_max = batch[n, :, :, c].reshape(2, 2, 2, 2).max(axis=(1, 3)).repeat(2, 0).repeat(2, 1)
            assert np.all(batch[n, :, :, c][mask] == window_max[mask]), (n, c)  # every value went to its argmax
            np.testing.assert_array_equal(np.sort(out[n, :, :, c][mask]), np.sort(values[n, :, :, c].ravel()))
    # The gradient with respect to the pooled values reads the upstream gradient at the argmax positions.
    upstream = np.arange(64, dtype=np.float32).reshape(2, 4, 4, 2)
    np.testing.assert_array_equal(grad_v[0, :, :, 0], [[upstream[0, 0, 1, 0], upstream[0, 1, 2, 0]],
                                                        [upstream[0, 3, 0, 0], upstream[0, 2, 3, 0]]])


def test_unpooling_with_dynamic_shapes_and_odd_sizes():
    x = np.random.RandomState(0).rand(1, 5, 7, 3).astype(np.float32)
    inputs = tf.placeholder(tf.float32, [None, None, None, 3])
    record = {}
    pooled = pooling.max_pool_2x2(inputs, "pool", record=record, stride=1)
    out = pooling.unpool(pooled, record[1])
    assert out.shape.as_list() == [None, None, None, 3]
    with tf.Session() as sess:
        pooled_v, out_v = sess.run([pooled, out], {inputs: x})
    assert pooled_v.shape == (1, 3, 4, 3) and out_v.shape == x.shape  # 'SAME' pooling: ceil, and back
    mask = out_v != 0
    assert mask.sum() == pooled_v.size and np.all(out_v[mask] == x[mask])


# ---------------------------------------------------------------- VGG-16 for SegNet

def test_vgg_pools_with_indices_compute_the_same_and_keep_the_checkpoint_names():
    images = tf.placeholder(tf.float32, [1, 64, 96, 3])
    record = {}
    with slim.arg_scope(vgg.vgg_arg_scope()):
        plain, plain_points = vgg.vgg_16(images, is_training=False, base_only=True)
        top, points = vgg.vgg_16(images, is_training=False, base_only=True, fc_layers=False, pool_indices=record,
                                 reuse=True)
    assert sorted(record) == [1, 2, 4, 8, 16]
    assert [record[s].static_shape for s in (1, 16)] == [[1, 64, 96, 64], [1, 4, 6, 512]]
    assert top.shape.as_list() == [1, 2, 3, 512] and not any("fc" in key for key in points)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        x = np.random.RandomState(0).uniform(0, 255, [1, 64, 96, 3])
        ours, theirs = sess.run([top, plain_points["vgg_16/pool5"]], {images: x})
    np.testing.assert_array_equal(ours, theirs)


def test_segnet_encoder_is_the_vgg_checkpoint_without_fc_and_restores_from_it(tmp_path):
    """SegNet's encoder variables are exactly slim's vgg_16 minus fc6/fc7/fc8 (names and shapes, from the
    reference list of the released checkpoint), and a checkpoint with the *whole* list restores into it as
    train.py restores --pretrained: value for value, fc6-fc8 reported as the unused classifier, no warning."""
    reference = load_reference("vgg_16")
    convs = {name: shape for name, shape in reference.items() if not name.startswith("vgg_16/fc")}
    assert len(convs) == 26 and len(reference) == 32  # 13 convs, and fc6, fc7, fc8: weights and biases each
    path = str(tmp_path / "vgg_16.ckpt")
    rng = np.random.RandomState(0)
    saved = {name: rng.standard_normal(shape).astype(np.float32) * 0.01 for name, shape in convs.items()}
    with tf.Graph().as_default():  # fed, not embedded as constants; fc6-fc8 (123M values) are zeros
        fed = {name: tf.placeholder(tf.float32, shape) for name, shape in convs.items()}
        variables = [tf.Variable(fed[name] if name in fed else tf.zeros(shape), name=name)
                     for name, shape in reference.items()]
        with tf.Session() as sess:
            sess.run(tf.variables_initializer(variables), {fed[name]: value for name, value in saved.items()})
            tf.train.Saver(variables).save(sess, path)
    model = build("vgg_16", "SegNet", 12, is_training=True)
    model.build(tf.placeholder(tf.float32, [1, 64, 64, 3]))
    encoder = {name: shape for name, shape in variable_shapes().items() if name.startswith("vgg_16/")}
    assert encoder == convs
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        report = checkpoints.restore_registry_entry(sess, path, model.encoder, net_args=model.encoder_args)
        restored = dict(zip([v.op.name for v in model.encoder_variables()], sess.run(model.encoder_variables())))
    assert sorted(report.restored) == sorted(convs) and not report.unexpected
    assert report.unused_head == sorted(set(reference) - set(convs))
    for name in convs:
        np.testing.assert_array_equal(restored[name], saved[name], err_msg=name)
    # Built with its fc layers (FCN), the same entry expects only fc8 unused.
    assert model.encoder.unbuilt_scopes({}) == ("vgg_16/fc8",)


# ---------------------------------------------------------------- builds, gradients, sizes

@pytest.mark.parametrize("encoder,decoder", [pair for pair in NETS if pair[0] != "fc_densenet_67"])
def test_builds_at_224_and_360x480_and_gradients_reach_every_variable(encoder, decoder):
    """(FC-DenseNet67 is 56's code with 103's growth: its size is checked layer by layer below.)"""
    model = build(encoder, decoder, 12, is_training=True)
    images = tf.placeholder(tf.float32, [2, 224, 224, 3])
    logits = model.build(images)
    assert logits.shape.as_list() == [2, 224, 224, 12]
    trainable = tf.trainable_variables()
    grads = tf.gradients(tf.reduce_sum(logits), trainable)
    assert not [v.op.name for v, g in zip(trainable, grads) if g is None]
    assert model.encoder_variables() and model.decoder_variables()
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, 360, 480, 3])
        assert build(encoder, decoder, 12).build(images).shape.as_list() == [1, 360, 480, 12]


@pytest.mark.parametrize("encoder,decoder", [("enet", "ENet"), ("vgg_16", "SegNet"), ("fc_densenet_56", "FCDenseNet")])
def test_any_input_size_in_a_dynamic_graph(encoder, decoder):
    """test.py's one dynamic inference graph: unpooling and transitions up follow the runtime shapes."""
    images = tf.placeholder(tf.float32, [None, None, None, 3])
    logits = build(encoder, decoder, 5).build(images)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out = sess.run(logits, {images: np.random.RandomState(0).rand(1, 75, 97, 3)})
    assert out.shape == (1, 75, 97, 5) and np.all(np.isfinite(out))


def fc_densenet_parameters(config, num_classes, first=fc_densenet.FIRST_CONV_DEPTH):
    """FC-DenseNet's trainable parameters counted from the paper's layer table (conv biases, BN beta+gamma)."""
    k = config.growth

    def block(m, layers):
        count = sum(2 * (m + j * k) + 9 * (m + j * k) * k + k for j in range(layers))
        return count, m + layers * k

    total, m, skips = 27 * first + first, first, []
    for layers in config.down:
        count, m = block(m, layers)
        skips.append(m)
        total += count + 2 * m + m * m + m  # transition down: BN, 1x1 conv
    count, _ = block(m, config.bottleneck)
    total += count
    new = config.bottleneck * k
    for layers, skip in zip(reversed(config.down), reversed(skips)):
        total += 9 * new * new + new  # transition up
        count, m = block(new + skip, layers)
        total += count
        new = layers * k
    return total + m * num_classes + num_classes


PUBLISHED = [(encoder, decoder) for decoder in decoders.NAMES for encoder in decoders.get(decoder).published]


@pytest.mark.parametrize("encoder,decoder", PUBLISHED)
def test_sizes_against_the_papers(encoder, decoder):
    """Within 5 % of the published parameter counts, but FC-DenseNet56 (README): our FC-DenseNets follow the
    paper's layer table exactly (counted by hand here), and that count matches the paper for 67 and 103 only."""
    assert {pair for pair in PUBLISHED if pair[1] != "SegFormer"} == {pair for pair in NETS if pair[1] != "RefineNet"}
    row, = arch.published_rows(sizes=((64, 64),), pairs=[(encoder, decoder)])
    gap = (row["mparams"] - row["their_mparams"]) / row["their_mparams"]
    assert -0.09 < gap < -0.07 if encoder == "fc_densenet_56" else abs(gap) <= 0.05, row
    if decoder == "FCDenseNet":
        assert round(row["mparams"] * 1e6) == fc_densenet_parameters(fc_densenet.CONFIGS[encoder], 12)
    if decoder == "ENet":
        assert "| enet + ENet | 0.363 | 0.37 | -1.8 % |" in arch.format_published([row], sizes=((64, 64),))


def test_enet_output_stride_changes_nothing_and_refinenet_widths_follow_the_option():
    images = tf.placeholder(tf.float32, [1, 64, 64, 3])
    for output_stride in (8, 16, None):
        with tf.Graph().as_default():
            top = nets.get("enet").build(tf.zeros([1, 64, 64, 3]), False, output_stride=output_stride).top
            assert top.shape.as_list() == [1, 8, 8, 128]
    model = build("mobilenet_v2", "RefineNet", 3, refinenet_features=32)
    model.build(images)
    widths = {v.op.name: v.shape.as_list()[-1] for v in model.decoder_variables() if v.op.name.endswith("weights")}
    assert widths["decoder/refine32/adapt/conv/weights"] == 64 and widths["decoder/up4/refine4/crp/conv2/weights"] == 32


# ---------------------------------------------------------------- dropout a resumed run draws again

def masks_at(step, seed=3):
    """Two dropout layers' masks in a fresh graph with graph seed `seed`, the global step set to `step`."""
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        ones = tf.ones([2, 8, 8, 16])
        first = stateless.dropout(ones, 0.5, True, scope="a")
        second = stateless.dropout(ones, 0.5, True, whole_channels=True, scope="b")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(tf.train.get_global_step().assign(step))
            return sess.run([first, second])


def test_dropout_masks_follow_seed_layer_and_step_not_the_session():
    a0, b0 = masks_at(0)
    again_a0, again_b0 = masks_at(0)
    np.testing.assert_array_equal(a0, again_a0)  # a new graph at the same step: the resumed run's masks
    np.testing.assert_array_equal(b0, again_b0)
    a5, _ = masks_at(5)
    assert not np.array_equal(a0, a5) and not np.array_equal(a0, masks_at(0, seed=4)[0])
    assert set(np.unique(a0)) == {0.0, 2.0} and not np.array_equal(a0 != 0, b0 != 0)  # layers differ
    whole = b0 != 0
    assert np.all(whole == whole[:, :1, :1, :])  # whole channels: one draw per image and channel


@pytest.mark.parametrize("encoder,decoder", [("enet", "ENet"), ("fc_densenet_56", "FCDenseNet")])
def test_nets_trained_from_scratch_draw_no_stateful_random_numbers(encoder, decoder):
    """Their dropout is stateless (a resumed run reproduces the run); only initializers draw at random."""
    model = build(encoder, decoder, 5, is_training=tf.placeholder_with_default(True, []))
    model.build(tf.placeholder(tf.float32, [1, 64, 64, 3]))
    ops = tf.get_default_graph().get_operations()
    assert any(op.type == "StatelessRandomUniformV2" for op in ops)
    assert not [op.name for op in ops if op.type.startswith("Random") and "Initializer" not in op.name]


# ---------------------------------------------------------------- pairing rules, no checkpoint

def test_an_encoder_names_its_own_decoder_and_other_pairs_name_the_valid_ones():
    assert arch.ModelSpec("enet").decoder == "ENet" and arch.ModelSpec("fc_densenet_103").decoder == "FCDenseNet"
    assert arch.ModelSpec("vgg_16").decoder == "FCN" and arch.ModelSpec().decoder == "FCN"  # as before
    assert arch.ModelSpec("enet", "LinkNet").run_name == "enet_LinkNet"  # its encoder with our decoders
    with pytest.raises(arch.IncompatibleEncoderError, match="SegNet does not work over --basenet resnet_v1_18; "
                                                            "its encoders: vgg_16$"):
        arch.ModelSpec("resnet_v1_18", "SegNet")
    with pytest.raises(arch.IncompatibleEncoderError, match="its encoders: fc_densenet_56, fc_densenet_67, "
                                                            "fc_densenet_103$"):
        arch.ModelSpec("enet", "FCDenseNet")
    with pytest.raises(arch.IncompatibleEncoderError, match="--output_stride"):
        arch.ModelSpec("vgg_16", "SegNet", output_stride=16)
    spec = arch.ModelSpec.from_flat({"basenet": "fc_densenet_56", "num_classes": 3})  # runargs without a decoder
    assert spec.decoder == "FCDenseNet"


def test_no_imagenet_checkpoint_implies_from_scratch_and_refuses_a_file(tmp_path):
    assert resolve_pretrained(None, str(tmp_path), "enet") is None
    assert resolve_pretrained("none", str(tmp_path), "fc_densenet_56") is None
    with pytest.raises(PretrainedError, match="enet has no ImageNet checkpoint"):
        resolve_pretrained(str(tmp_path / "x.ckpt"), str(tmp_path), "enet")
    with pytest.raises(ValueError, match="pretrained checkpoint for vgg_16 not found"):  # unchanged
        resolve_pretrained(None, str(tmp_path), "vgg_16")
    assert scratch_reason("enet") == "enet has no ImageNet checkpoint: --pretrained none implied"  # the runlog's
    assert scratch_reason("vgg_16") == "--pretrained none"


def test_train_py_refuses_a_checkpoint_for_enet_in_one_line(sample_datapath, tmp_path):
    """(A real ENet run's runlog: README "Encoder-decoder nets"; a graph-building minute is too long for here.)"""
    args = [a for a in TINY_TRAIN_ARGS if a not in ("--pretrained", "none", "--extended_arch", "LinkNet")]
    args[args.index("resnet_v1_18")] = "enet"
    bad = run_script("train.py", *args, "--pretrained", tmp_path / "imagenet.ckpt", "--datapath", sample_datapath,
                     "--runs_root", tmp_path, check=False)
    assert bad.returncode == 2 and "enet has no ImageNet checkpoint" in bad.stderr and "Traceback" not in bad.stderr
    assert not os.listdir(tmp_path)

"""Meta-architecture: BaseFcnArch skeleton, FCN32/16/8/4, LinkNet, learnable upsampling; arch.py's per-layer
table and --traindir."""
import json
import os

import numpy as np
import pytest

import arch
import decoders
from tests.conftest import CAMVID, CROSS_ENCODERS, TINY_TRAIN_ARGS, build
from utils.compat import slim, tf
from utils.data.dataset_info import load_dataset_info

DECODER_VARIANTS = {
    "FCN32": ("FCN", dict(fcn16=False)),
    "FCN16": ("FCN", dict(fcn16=True)),
    "FCN8": ("FCN", dict(fcn16=True, fcn8=True)),
    "FCN4": ("FCN", dict(fcn16=True, fcn8=True, fcn4=True)),
    "LinkNet": ("LinkNet", dict()),
}


def _camvid_image():
    path = os.path.join(CAMVID, "val", "0016E5_07959.png")
    if os.path.exists(path):
        from PIL import Image
        return np.asarray(Image.open(path).convert("RGB"), np.float32)[None] / 255.0
    return np.random.RandomState(0).rand(1, 360, 480, 3).astype(np.float32)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bilinear_transposed_conv_reproduces_bilinear_upsampling(factor):
    """The FCN blog's check: the bilinear-initialised transposed conv upsamples an image."""
    image = _camvid_image()[:, :90, :120]
    h, w = image.shape[1:3]
    kernel = arch.bilinear_kernel(factor, 3)
    assert kernel.shape == (2 * factor - factor % 2,) * 2 + (3, 3)
    up = tf.nn.conv2d_transpose(tf.constant(image), tf.constant(kernel), [1, h * factor, w * factor, 3],
                                [1, factor, factor, 1], padding="SAME")
    reference = tf.image.resize_bilinear(tf.constant(image), [h * factor, w * factor], half_pixel_centers=True)
    with tf.Session() as sess:
        ours, theirs = sess.run([up, reference])
    assert ours.shape == (1, h * factor, w * factor, 3)
    m = factor  # the borders differ only because a transposed conv sees zeros outside the image
    np.testing.assert_allclose(ours[:, m:-m, m:-m], theirs[:, m:-m, m:-m], atol=1e-5)
    assert np.abs(ours - theirs).max() > 1e-3  # ...and they do differ there, so the check is not vacuous


def test_fcn_learnable_upsampling_starts_bilinear_and_is_trainable():
    images = tf.placeholder(tf.float32, [1, 64, 64, 3])
    model = build("resnet_v1_18", "FCN", 5, is_training=True, fcn16=True, fcn8=True, trainable_upsampling=True)
    model.build(images)
    ups = [v for v in model.decoder_variables() if "upsample_x2" in v.op.name]
    assert len(ups) == 2 and all(v in tf.trainable_variables() for v in ups)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for value in sess.run(ups):
            np.testing.assert_array_equal(value, arch.bilinear_kernel(2, 5))


def test_zero_init_skips_start_at_zero():
    images = tf.placeholder(tf.float32, [1, 64, 64, 3])
    model = build("resnet_v1_18", "FCN", 4, fcn16=True, fcn8=True, zero_init_skips=True)
    model.build(images)
    skips = [v for v in model.decoder_variables() if "score_skip" in v.op.name]
    assert len(skips) == 4  # weights + biases for the 16 and 8 skips
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert all(not np.any(value) for value in sess.run(skips))


@pytest.mark.parametrize("size", [(360, 480), (512, 512)])
@pytest.mark.parametrize("encoder", CROSS_ENCODERS)
def test_every_net_and_decoder_builds_full_resolution_logits(encoder, size):
    """One encoder per graph, every decoder variant hung on it (building encoders dominates test time)."""
    images = tf.placeholder(tf.float32, [1, size[0], size[1], 3])
    first = None
    for variant, (decoder, flags) in DECODER_VARIANTS.items():
        model = build(encoder, decoder, 12, is_training=False, decoder_scope="decoder_" + variant, **flags)
        logits = model.build(images, features=first.features if first else None)
        assert logits.shape.as_list() == [1, size[0], size[1], 12], (encoder, variant)
        assert model.decoder_variables()
        first = first or model
    encoder, dec = set(first.encoder_variables()), set(tf.global_variables()) - set(first.encoder_variables())
    assert encoder and all(v.op.name.startswith(first.encoder.scope + "/") for v in encoder)
    assert all(v.op.name.startswith("decoder_") for v in dec)


def test_fcn_variants_use_the_requested_skips():
    expected = {"FCN32": [], "FCN16": [16], "FCN8": [16, 8], "FCN4": [16, 8, 4]}
    for variant, strides in expected.items():
        with tf.Graph().as_default():
            decoder, flags = DECODER_VARIANTS[variant]
            model = build("mobilenet_v1", decoder, 3, **flags)
            model.build(tf.placeholder(tf.float32, [1, 64, 64, 3]))
            names = {v.op.name for v in model.decoder_variables()}
            assert {"decoder/up%d/score_skip/weights" % s for s in strides} <= names
            assert sum("score_skip/weights" in n for n in names) == len(strides)


def test_any_input_size_is_padded_inside_and_cropped_back():
    images = tf.placeholder(tf.float32, [2, 100, 130, 3])
    logits = build("resnet_v1_18", "LinkNet", 6).build(images)
    assert logits.shape.as_list() == [2, 100, 130, 6]
    with tf.Graph().as_default():
        dynamic = tf.placeholder(tf.float32, [None, None, None, 3])
        logits = build("resnet_v1_18", "FCN", 6, fcn8=True).build(dynamic)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            out = sess.run(logits, {dynamic: np.zeros((1, 75, 97, 3), np.float32)})
        assert out.shape == (1, 75, 97, 6)


def test_unknown_decoder_lists_valid_names():
    with pytest.raises(arch.UnknownDecoderError) as err:
        decoders.get("SegNetX")
    assert "FCN" in str(err.value) and "LinkNet" in str(err.value)
    assert decoders.get("linknet").name == "LinkNet"
    assert decoders.get(None).name == "FCN"


def _train_steps(decoder, flags, steps=4):
    """Few Adam steps on a fixed random batch whose labels are the image quadrants; returns the losses."""
    rng = np.random.RandomState(0)
    images = tf.constant(rng.randn(2, 64, 64, 3).astype(np.float32))
    rows, cols = np.mgrid[:64, :64]
    quadrants = (rows >= 32) * 2 + (cols >= 32)
    labels = tf.constant(np.stack([quadrants, quadrants]).astype(np.int32))
    model = build("resnet_v1_18", decoder, 4, is_training=True, **flags)
    logits = model.build(images)
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        train_op = tf.train.AdamOptimizer(1e-3).minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        losses = [sess.run([train_op, loss])[1] for _ in range(steps)]
        losses.append(sess.run(loss))
    return losses


@pytest.mark.parametrize("variant", list(DECODER_VARIANTS))
def test_one_training_step_runs_for_each_decoder(variant):
    decoder, flags = DECODER_VARIANTS[variant]
    losses = _train_steps(decoder, dict(flags, trainable_upsampling=True))
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]


# ----------------------------------------------------------------------------- arch.py --layers, --traindir
@pytest.mark.parametrize("encoder, decoder", [("resnet_v1_18", "LinkNet"), ("mobilenet_v2", "FCN"), ("enet", None)])
def test_layer_table_adds_up_to_the_whole_net_counts(encoder, decoder):
    """Convs, depthwise and transposed convs: every parameter and MAC falls in one row, at any depth."""
    spec = arch.ModelSpec(encoder, decoder, num_classes=5)
    for depth in (0, 2):
        summary = arch.summarize(spec, 64, 96, layer_depth=depth)
        rows = summary["layers"]
        assert sum(row["params"] for row in rows) == summary["params"]
        assert sum(row["macs"] for row in rows) == summary["macs"] == round(summary["gmacs"] * 1e9)
        assert len({row["name"] for row in rows}) == len(rows) and all(row["output_shape"] for row in rows)
        assert all(row["name"].count("/") < depth for row in rows) if depth else len(rows) > 40
    assert [row["name"].split("/")[0] for row in rows] == sorted(  # depth 2: encoder blocks, then decoder blocks
        (row["name"].split("/")[0] for row in rows), key=lambda scope: scope == "decoder")


def test_layer_table_knows_a_3x3_conv():
    """ResNet-18's block2 3x3 conv, 128 -> 128 channels at stride 8 of a 64x96 input; its batch norm apart."""
    summary = arch.summarize(arch.ModelSpec("resnet_v1_18", "LinkNet", num_classes=5), 64, 96, layer_depth=0)
    rows = {row["name"]: row for row in summary["layers"]}
    conv = rows["resnet_v1_18/block2/unit_1/res_block_v1/conv2"]
    assert conv["output_shape"] == [1, 8, 12, 128]
    assert conv["params"] == 3 * 3 * 128 * 128 and conv["macs"] == 8 * 12 * 128 * (3 * 3 * 128)
    assert rows["resnet_v1_18/block2/unit_1/res_block_v1/conv2/BatchNorm"]["params"] == 2 * 128
    logits = rows["decoder/final/logits"]
    assert logits["params"] == 32 * 5 + 5 and logits["output_shape"] == [1, 64, 96, 5]


def test_arch_py_layers_prints_the_table_and_its_json(capsys):
    flags = ["--basenet", "mobilenet_v2", "--extended_arch", "FCN", "--num_classes", "5", "--size", "64x96",
             "--layers", "--depth", "1"]
    assert arch.main(flags) == 0
    text = capsys.readouterr().out
    assert arch.main(flags + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in summary["layers"]] == ["MobilenetV2", "decoder"]
    assert summary["layer_depth"] == 1
    total = [line for line in text.splitlines() if line.startswith("total ")]
    assert total and total[0].split()[-2:] == [format(summary["params"], ","), format(summary["macs"], ",")]
    assert "MobilenetV2 " in text and "[1, 64, 96, 5]" in text


def _model_flags(args, wanted=("--basenet", "--extended_arch", "--pixels")):
    """The flags of `args` (train.py's) that name the net and its input."""
    return [value for flag, value in zip(args, args[1:]) if flag in wanted for value in (flag, value)]


def test_arch_py_traindir_describes_the_trained_net(tiny_run, capsys):
    """The run folder's runargs give the net it was trained as: the same summary as the training flags'."""
    classes = load_dataset_info(tiny_run["datapath"], "camvid")["num_classes"]
    assert arch.main(["--traindir", tiny_run["folder"], "--json", "--layers"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    assert arch.main(_model_flags(TINY_TRAIN_ARGS) + ["--num_classes", str(classes), "--json", "--layers"]) == 0
    from_flags = json.loads(capsys.readouterr().out)
    assert from_run == from_flags
    assert from_run["run_name"] == "resnet_v1_18_LinkNet" and from_run["logits_shape"] == [1, 64, 64, classes]


def test_arch_py_traindir_usage_errors(tmp_path, capsys):
    missing = str(tmp_path / "nonexistent")
    assert arch.main(["--traindir", missing]) == 2
    assert "--traindir %s does not exist" % missing in capsys.readouterr().err
    assert arch.main(["--traindir", str(tmp_path)]) == 2
    assert "not a training run folder: it has no runargs" in capsys.readouterr().err
    (tmp_path / "runargs").write_text("{not json")
    assert arch.main(["--traindir", str(tmp_path)]) == 2
    assert "runargs: not a run configuration" in capsys.readouterr().err
    assert arch.main(["--traindir", str(tmp_path), "--basenet", "mobilenet_v2", "--num_classes", "3"]) == 2
    assert "drop --basenet, --num_classes" in capsys.readouterr().err


def test_arch_py_traindir_reads_flat_runargs_and_needs_a_size_for_native_resolution(tmp_path, capsys):
    """Runargs of schema 1 (one flat dict) still describe their net; a run at --pixels 0 has no fixed input."""
    (tmp_path / "runargs").write_text(json.dumps({"basenet": "mobilenet_v2", "extended_arch": "FCN", "fcn16": True,
                                                  "num_classes": 4, "pixels": 0, "learnrate": 1e-3}))
    assert arch.main(["--traindir", str(tmp_path)]) == 2
    assert "trained at native image size (--pixels 0): give --size HxW" in capsys.readouterr().err
    assert arch.main(["--traindir", str(tmp_path), "--size", "64x96", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["run_name"] == "mobilenet_v2_FCN16" and summary["logits_shape"] == [1, 64, 96, 4]

"""MiT-B0..B2 + SegFormer: Hugging Face's outputs reproduced from converted weights, the converter's refusals,
the encoder under the other decoders, drop path, weight decay, sizes against the paper, export.

The reference is tests/fixtures/hf_segformer/, made once with torch + transformers in a scratch environment
(make_fixture.py there): seeded random weights, regenerated here with numpy, and transformers' outputs.
"""
import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

import arch
import decoders
import nets
from decoders.base import IncompatibleEncoderError
from nets import checkpoints, mit, segformer_weights
from nets.segformer_weights import SegformerMismatchError, convert
from tests.conftest import ROOT, build
from tests.fixtures.hf_segformer.random_weights import random_images, random_state_dict
from tests.test_nets import session
from utils.compat import slim, tf
from utils.graphs import op_macs
from utils.training.optimizer import regularized_variables

FIXTURE_DIR = os.path.join(ROOT, "tests", "fixtures", "hf_segformer")
with open(os.path.join(FIXTURE_DIR, "fixture.json")) as _handle:
    FIXTURE = json.load(_handle)
TOLERANCE = 1e-4  # max |ours - transformers'| / max |transformers'|
STAGES = ("stage1", "stage2", "stage3", "stage4")


def state_dict(net, layout="layout", seed="seed"):
    info = FIXTURE["nets"][net]
    return random_state_dict(info[layout], info[seed])


def relative(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def images_of(size):
    image = FIXTURE["images"][size]
    return random_images(image["shape"], image["seed"]).astype(np.float32)


# ---------------------------------------------------------------- numerics: transformers' outputs

@pytest.mark.parametrize("net", ["mit_b0", "mit_b2"])
def test_converted_weights_give_transformers_stages_and_logits(net, tmp_path):
    """Hub-layout state dict -> detected net and head -> checkpoint -> MiT + SegFormer (one graph, any size, no
    padding): each stage and the stride-4 logits within 1e-4 of SegformerModel / ...ForSemanticSegmentation, at
    64x64 and 56x72.  Negative control: one Mix-FFN kernel 1 % off moves the logits far beyond the tolerance."""
    found, head = convert(state_dict(net), source=net)
    assert found.encoder == net and head == (FIXTURE["nets"][net]["config"]["decoder_hidden_size"], 6)
    path = segformer_weights.write_checkpoint(found.values, str(tmp_path / "segformer.ckpt"))
    reference = np.load(os.path.join(FIXTURE_DIR, FIXTURE["nets"][net]["outputs"]))
    images = tf.placeholder(tf.float32, [1, None, None, 3])
    model = build(net, "SegFormer", 6, segformer_channels=0)  # 0: the paper's width for the encoder
    logits = model.build(nets.get(net).preprocess(images))
    fetches = {"logits": model.stride4_logits, "full": logits}
    fetches.update({name: model.features.taps[s] for name, s in zip(STAGES, (4, 8, 16, 32))})
    with session() as sess:
        report = checkpoints.restore_matching(sess, path, tf.global_variables())
        assert report.not_in_checkpoint == [] and report.other_shape == [] and len(report.restored) == len(found.values)
        differences = {}
        for size in FIXTURE["images"]:
            got = sess.run(fetches, {images: images_of(size)})
            assert got["full"].shape[1:3] == images_of(size).shape[1:3]
            for name in STAGES + ("logits",):
                want = reference["%s/%s" % (size, name)]
                differences[size, name] = relative(got[name][..., :want.shape[-1]], want)
        kernel = [v for v in tf.global_variables() if v.op.name == net + "/block/1/0/mlp/dense1/weights"][0]
        kernel.load(found.values[kernel.op.name] * 1.01, sess)
        perturbed = sess.run(model.stride4_logits, {images: images_of("64x64")})
    print(net, {"%s %s" % key: "%.1e" % value for key, value in differences.items()})
    assert max(differences.values()) <= TOLERANCE, differences
    assert relative(perturbed, reference["64x64/logits"]) > 10 * TOLERANCE


def test_imagenet_model_gives_transformers_classification_logits(tmp_path):
    """nvidia/mit-b0's layout (SegformerForImageClassification): the mean-pooled classifier converted as well."""
    found, head = convert(state_dict("mit_b0", "imagenet_layout", "imagenet_seed"))
    assert head is None and "mit_b0/classifier/weights" in found.values
    entry = nets.get("mit_b0")
    path = segformer_weights.write_checkpoint(found.values, str(tmp_path / entry.checkpoint))
    images = tf.placeholder(tf.float32, [1, 64, 64, 3])
    with slim.arg_scope(entry.arg_scope_fn()):
        logits, _ = entry.net_fn(entry.preprocess(images), num_classes=1000, is_training=False)
    with session() as sess:
        report = checkpoints.restore_encoder(sess, path, entry.scope)
        got = sess.run(logits, {images: images_of("64x64")})
    want = np.load(os.path.join(FIXTURE_DIR, "mit_b0.npz"))["64x64/imagenet_logits"]
    assert report.unexpected == [] and relative(got, want) <= TOLERANCE


def test_preprocessing_is_the_image_processors():
    """SegformerImageProcessor(do_resize=False): rescale 1/255, ImageNet mean / std; ours is 'torchvision'."""
    small = FIXTURE["processor"]["small_image"]
    image = random_images(small["shape"], small["seed"]).astype(np.float32)
    expected = np.asarray(small["normalised"], np.float32).transpose(0, 2, 3, 1)
    with tf.Session() as sess:
        ours = sess.run(nets.get("mit_b0").preprocess(tf.constant(image)))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- the converter: names, refusals, the command

@pytest.mark.parametrize("net", ["mit_b0", "mit_b1", "mit_b2"])
def test_every_hub_key_has_a_variable_and_back(net):
    """A bijection between the Hub keys (less num_batches_tracked) and what MiT + SegFormer builds, shapes too."""
    model = build(net, "SegFormer", 6)
    model.build(tf.placeholder(tf.float32, [1, 64, 64, 3]))
    built = {v.op.name: tuple(v.shape.as_list()) for v in tf.model_variables()}
    built.update({v.op.name: tuple(v.shape.as_list()) for v in model.decoder_variables()})
    layout = [(k, tuple(s)) for k, s in FIXTURE["nets"][net]["layout"] if not k.endswith("num_batches_tracked")]
    names = {segformer_weights.variable_name(key, net): key for key, _ in layout}
    assert len(names) == len(layout) and set(names) == set(built), set(names) ^ set(built)
    for key, shape in layout:
        name = segformer_weights.variable_name(key, net)
        assert segformer_weights.torch_shape(name, built[name]) == shape, key


def test_wrong_size_is_refused_naming_the_first_tensor():
    """B2's file told to fill B0: widths differ from the first tensor on; B1's told to fill B2: blocks missing."""
    with pytest.raises(SegformerMismatchError) as info:
        convert(state_dict("mit_b2"), "mit_b0", source="b2.safetensors")
    message = str(info.value)
    assert message.startswith("b2.safetensors does not hold nvidia/mit-b0 weights for mit_b0 (Hugging Face")
    assert "first offending tensor decode_head.linear_c.0.proj.weight" in message
    assert "decode_head.linear_c.0.proj.weight [768, 64] vs [768, 32]" in message
    with pytest.raises(SegformerMismatchError) as info:
        convert(state_dict("mit_b1"), "mit_b2")
    assert info.value.first == "mit_b2/block/0/2/layer_norm_1/gamma"  # the first block B1 lacks
    assert info.value.match.unmapped == [] and info.value.match.wrong_shape == []
    assert convert(state_dict("mit_b1"))[0].encoder == "mit_b1"  # detected, not confused with B2


def test_a_missing_tensor_and_another_architecture_are_named():
    partial = {k: v for k, v in state_dict("mit_b0").items() if k != "segformer.encoder.block.3.1.mlp.dwconv.dwconv.bias"}
    with pytest.raises(SegformerMismatchError) as info:
        convert(partial, "mit_b0")
    assert info.value.first == "mit_b0/block/3/1/mlp/dwconv/dwconv/biases" and "[1024]" in str(info.value)
    no_head_bias = {k: v for k, v in state_dict("mit_b0").items() if k != "decode_head.classifier.bias"}
    with pytest.raises(SegformerMismatchError, match="decoder/classifier/biases"):
        convert(no_head_bias, "mit_b0")
    resnet = {"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)}
    assert not segformer_weights.is_segformer(resnet) and segformer_weights.is_segformer(state_dict("mit_b0"))
    with pytest.raises(ValueError, match="--encoder resnet_v1_18: a SegFormer / MiT file fills mit_b0"):
        convert(state_dict("mit_b0"), "resnet_v1_18")


def test_command_converts_a_segformer_file_and_still_resnets(tmp_path, capsys):
    """utils/convert_weights.py's main: a SegFormer model -> segformer_mit_b0.ckpt (encoder and head), told how to
    train; a wrong --encoder exits 1 naming the tensor; a ResNet file still goes to nets/torch_weights.py."""
    path = str(tmp_path / "model.safetensors")
    save_file(state_dict("mit_b0"), path)
    assert segformer_weights.main([path, "--modelspath", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "wrote %s: 207 variables of mit_b0 and the SegFormer head (256 channels, 6 classes)" % (
        tmp_path / "segformer_mit_b0.ckpt") in out
    assert "--extended_arch SegFormer --segformer_channels 256 --init_from" in out
    assert segformer_weights.main([path, "--encoder", "mit_b1", "--output", str(tmp_path / "x.ckpt")]) == 1
    assert "first offending tensor" in capsys.readouterr().err
    resnet = str(tmp_path / "r.safetensors")
    save_file({"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)}, resnet)
    assert segformer_weights.main([resnet, "--output", str(tmp_path / "r.ckpt")]) == 1
    assert "resnet18 weights for resnet_v1_18 (torchvision / timm keys)" in capsys.readouterr().err


# ---------------------------------------------------------------- the encoder in the framework

def test_output_stride_is_32_only():
    with pytest.raises(IncompatibleEncoderError, match="--basenet mit_b0 runs at --output_stride 32 only"):
        arch.ModelSpec("mit_b0", "FPN", 5, output_stride=16)
    with pytest.raises(ValueError, match="output_stride must be 32"):
        mit.mit_b0(tf.placeholder(tf.float32, [1, 64, 64, 3]), base_only=True, output_stride=16)
    model = build("mit_b0", "DeepLabV3Plus", 5)  # its default output stride 16 falls back to 32 over MiT
    model.build(tf.placeholder(tf.float32, [1, 64, 64, 3]))
    assert model.output_stride is None and model.features.true_stride(32) == 32


def test_mit_serves_the_other_decoders():
    """One encoder build, FPN, U-Net, LinkNet and DeepLabV3+ on its four taps: full-size logits (padded to /32)."""
    images = tf.placeholder(tf.float32, [1, 72, 88, 3])
    first = None
    for decoder in ("FPN", "UNet", "LinkNet", "DeepLabV3Plus"):
        model = build("mit_b0", decoder, 5, decoder_scope="decoder_" + decoder)
        logits = model.build(images, features=first.features if first else None)
        assert logits.shape.as_list() == [1, 72, 88, 5], decoder
        first = first or model
    assert [first.features.true_stride(s) for s in (4, 8, 16, 32)] == [4, 8, 16, 32]


def run_block_outputs(step, seed=3):
    """The MiT-B0 stage-4 output while training at `step`, in a new graph with graph seed `seed`."""
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        global_step = tf.train.get_or_create_global_step()
        images = tf.constant(np.random.RandomState(0).uniform(-1, 1, [2, 64, 64, 3]).astype(np.float32))
        top, _ = mit.mit_b0(images, base_only=True, is_training=True, drop_path_rate=0.5)
        with session() as sess:
            sess.run(tf.global_variables_initializer())  # random weights: the same within one seed
            global_step.load(step, sess)
            return sess.run(top)


def test_drop_path_is_stateless_and_seeded():
    """Same seed and step: the same masks (a resumed run draws the uninterrupted one's); another step: others.
    One draw per image: block 3/1 (rate 0.5) keeps or drops a whole example's branch."""
    first, again, later = run_block_outputs(5), run_block_outputs(5), run_block_outputs(6)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - later).max() > 1e-3
    with tf.Graph().as_default():
        mit.mit_b0(tf.placeholder(tf.float32, [2, 64, 64, 3]), base_only=True, is_training=True)
        drops = [op.name for op in tf.get_default_graph().get_operations() if op.type == "StatelessRandomUniformV2"
                 or op.type.startswith("StatelessRandom")]
        assert drops and not any("block/0/0/" in name for name in drops)  # rate 0 in the first block: no mask


def test_weight_decay_reaches_kernels_only():
    """L2 (and AdamW's decoupled decay, which decays the regularised variables) on linear / conv kernels: never
    a LayerNorm, a batch norm or a bias, as SegFormer's recipe has it."""
    model = build("mit_b0", "SegFormer", 5, weight_decay=0.01)
    model.build(tf.placeholder(tf.float32, [1, 64, 64, 3]))
    decayed = {v.op.name for v in regularized_variables(tf.trainable_variables())}
    trainable = {v.op.name for v in tf.trainable_variables()}
    assert decayed == {name for name in trainable if name.endswith("/weights")}
    assert any(name.endswith("layer_norm_1/gamma") for name in trainable - decayed)


def test_sizes_against_the_paper():
    """SegFormer-B0/B1/B2 at 150 classes (ADE20K): the paper's 3.8 / 13.7 / 27.5 M parameters within 2 %; the
    attention products are counted (BatchMatMul), as mit.macs_of_attention works them out."""
    for encoder, (mparams, _) in decoders.get("SegFormer").published.items():
        counts = arch.summarize(arch.ModelSpec(encoder, "SegFormer", 150), 128, 128)
        assert abs(counts["params"] / 1e6 - mparams) <= 0.02 * mparams, (encoder, counts["params"])
    with tf.Graph().as_default() as graph:
        mit.mit_b0(tf.placeholder(tf.float32, [1, 72, 88, 3]), base_only=True, is_training=False)
        products = sum(op_macs(op) for op in graph.get_operations() if op.type.startswith("BatchMatMul"))
    assert products == mit.macs_of_attention("mit_b0", 72, 88) > 0


def test_export_tflite_and_onnx(tmp_path):
    """MiT-B0 + SegFormer, frozen (batch norm folded) at 64x64: TFLite fp32 and ONNX equal the TF graph; int8
    converts and runs."""
    onnxruntime = pytest.importorskip("onnxruntime")
    from utils.inference import deploy
    from utils.inference.folding import freeze_and_fold
    tf.set_random_seed(1)
    images = tf.placeholder(tf.float32, [1, 64, 64, 3], name="images")
    model = build("mit_b0", "SegFormer", 5, segformer_channels=32)
    logits = tf.identity(model.build(nets.get("mit_b0").preprocess(images)), name="logits")
    canvas = images_of("64x64")
    with session() as sess:
        sess.run(tf.global_variables_initializer())
        expected = sess.run(logits, {images: canvas})
        graph_def = freeze_and_fold(sess, [images], [logits])
    scale = float(np.abs(expected).max())
    tflite = tf.lite.Interpreter(model_content=deploy.convert_tflite(graph_def, "fp32", "logits"))
    tflite.allocate_tensors()
    tflite.set_tensor(tflite.get_input_details()[0]["index"], canvas)
    tflite.invoke()
    np.testing.assert_allclose(tflite.get_tensor(tflite.get_output_details()[0]["index"]), expected,
                               atol=1e-4 * scale, rtol=0)
    onnx = onnxruntime.InferenceSession(deploy.convert_onnx(graph_def, "logits"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(onnx.run(["logits"], {"images": canvas})[0], expected, atol=1e-4 * scale, rtol=0)
    int8 = tf.lite.Interpreter(model_content=deploy.convert_tflite(graph_def, "int8", "logits", calibration=[canvas[0]]))
    int8.allocate_tensors()
    int8.set_tensor(int8.get_input_details()[0]["index"], canvas)
    int8.invoke()
    assert int8.get_tensor(int8.get_output_details()[0]["index"]).shape == expected.shape


def test_poly_power_one_is_segformers_linear_decay():
    """--poly_power 1.0 (SegFormer's poly) with --warmup_steps: the graph's rate equals the Python mirror."""
    from utils.training import schedule
    at = [schedule.learning_rate_at(s, 6e-5, 100, "poly", 10, 1.0) for s in (1, 10, 51, 100)]
    np.testing.assert_allclose(at, [6e-6, 6e-5 * 0.91, 3e-5, 6e-7], rtol=1e-6)
    step = tf.placeholder(tf.int64, [])
    rate = schedule.learning_rate(step, 6e-5, 100, "poly", 10, 1.0)
    with tf.Session() as sess:
        assert abs(sess.run(rate, {step: 50}) - at[2]) < 1e-12
    with pytest.raises(ValueError, match="--poly_power must be > 0"):
        schedule.ScheduleSettings(poly_power=0)


def test_train_and_test_py_with_segformers_recipe(sample_datapath, tmp_path, capsys):
    """A converted ADE-style SegFormer file, then train.py --init_from with the recipe's flags (the 6-class
    classifier stays new on CamVid), then test.py scores the run (both in this process: a fresh one costs
    a TensorFlow import each)."""
    import test as test_py
    import train
    weights, models, runs = str(tmp_path / "model.safetensors"), tmp_path / "models", tmp_path / "runs"
    save_file(state_dict("mit_b0"), weights)
    assert segformer_weights.main([weights, "--modelspath", str(models)]) == 0
    checkpoint = models / "segformer_mit_b0.ckpt"
    assert train.main(["--basenet", "mit_b0", "--extended_arch", "SegFormer", "--init_from", str(checkpoint),
                       "--datapath", sample_datapath, "--runs_root", str(runs), "--pixels", "64", "--batch_size",
                       "2", "--max_steps", "2", "--seed", "7", "--optimizer", "adamw", "--learnrate", "6e-5",
                       "--weight_decay", "0.01", "--lr_schedule", "poly", "--poly_power", "1.0", "--warmup_steps",
                       "1", "--difflr", "10"]) in (0, None)
    (folder,) = os.listdir(runs)
    runlog = open(os.path.join(runs, folder, "runlog")).read()
    assert "initialised from %s: 205 variables restored, 2 of another shape" % checkpoint in runlog
    assert test_py.main(["--traindir", os.path.join(runs, folder), "--bootstrap", "0", "--last2viz", "-1",
                         "--outdir", str(tmp_path / "scores")]) in (0, None)
    assert json.load(open(tmp_path / "scores" / "results.json"))["checkpoint"]

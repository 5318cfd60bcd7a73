"""torchvision / timm weights -> our checkpoints: torchvision's logits reproduced, its normalisation, clear refusals.

The reference is tests/fixtures/torchvision_resnet/, made once with torchvision
in a scratch environment (make_fixture.py there): seeded random weights,
regenerated here with numpy, and torchvision's logits for seeded random images.
"""
import importlib.util
import json
import os
import struct
import zipfile

import numpy as np
import pytest
from safetensors.numpy import save_file

import nets
from nets import checkpoints, preprocessing, torch_files, torch_weights
from nets.torch_files import WeightsFileError, read_state_dict
from nets.torch_weights import StateDictMismatchError, convert, write_checkpoint
from tests.conftest import ROOT, run_script
from tests.fixtures.torchvision_resnet.random_weights import random_images, random_state_dict
from utils.compat import slim, tf
from utils.training.config import resolve_pretrained

FIXTURE_DIR = os.path.join(ROOT, "tests", "fixtures", "torchvision_resnet")
with open(os.path.join(FIXTURE_DIR, "fixture.json")) as _handle:
    FIXTURE = json.load(_handle)
OURS = {"resnet18": "resnet_v1_18", "resnet34": "resnet_v1_34"}
TOLERANCE = 1e-4  # max |ours - torchvision's| / max |torchvision's|


def state_dict(torch_name):
    net = FIXTURE["nets"][torch_name]
    return random_state_dict(net["layout"], net["seed"])


@pytest.fixture(scope="module")
def resnet18_safetensors(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("weights") / "resnet18.safetensors")
    save_file(state_dict("resnet18"), path)
    return path


def full_net_logits(entry, checkpoint, images):
    """Our full ImageNet net on uint8 RGB images, through the registry's preprocessing: (logits, RestoreReport)."""
    inputs = tf.placeholder(tf.float32, images.shape)
    with slim.arg_scope(entry.arg_scope_fn()):
        logits, _ = entry.net_fn(entry.preprocess(inputs), num_classes=entry.imagenet_classes, is_training=False)
    with tf.Session() as sess:
        report = checkpoints.restore_encoder(sess, checkpoint, entry.scope)
        return sess.run(logits, {inputs: images.astype(np.float32)}), report


# ---------------------------------------------------------------- numerics: torchvision's logits

@pytest.mark.parametrize("torch_name", ["resnet18", "resnet34"])
def test_converted_weights_give_torchvisions_logits(torch_name, tmp_path):
    """safetensors file -> detected net -> checkpoint -> our net: torchvision's logits within 1e-4 relative."""
    path = str(tmp_path / (torch_name + ".safetensors"))
    save_file(state_dict(torch_name), path)
    found = convert(read_state_dict(path), source=path)  # no --encoder: told from the state dict
    assert found.encoder == OURS[torch_name]
    assert len(found.ignored) == sum(k.endswith("num_batches_tracked") for k, _ in FIXTURE["nets"][torch_name]["layout"])
    entry = nets.get(found.encoder)
    checkpoint = write_checkpoint(entry, found.values, str(tmp_path / entry.checkpoint))

    images = random_images(FIXTURE["images"]["shape"], FIXTURE["images"]["seed"])
    logits, report = full_net_logits(entry, checkpoint, images)
    expected = np.load(os.path.join(FIXTURE_DIR, FIXTURE["nets"][torch_name]["logits"]))
    assert report.unexpected == [] and report.skipped == [] and len(report.restored) == len(found.values)
    relative = np.abs(logits - expected).max() / np.abs(expected).max()
    assert relative < TOLERANCE, relative
    assert (logits.argmax(1) == expected.argmax(1)).all()


def test_converted_checkpoint_restores_into_the_encoder_graph(resnet18_safetensors, tmp_path):
    """What training builds (registry build, base_only): every variable restored, only the classifier unused."""
    found = convert(read_state_dict(resnet18_safetensors), "resnet_v1_18")
    entry = nets.get("resnet_v1_18")
    checkpoint = write_checkpoint(entry, found.values, str(tmp_path / "resnet_v1_18.ckpt"))
    assert sorted(os.listdir(tmp_path)) == ["resnet_v1_18.ckpt.data-00000-of-00001", "resnet_v1_18.ckpt.index"]
    entry.build(tf.placeholder(tf.float32, [1, 64, 64, 3]), is_training=True)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        report = checkpoints.restore_registry_entry(sess, checkpoint, entry)
        conv1 = sess.run(tf.model_variables("resnet_v1_18/conv1/weights")[0])
    assert report.unused_head == ["resnet_v1_18/logits/biases", "resnet_v1_18/logits/weights"]
    assert report.unexpected == [] and report.skipped == [] and len(report.restored) == 100
    np.testing.assert_array_equal(conv1, state_dict("resnet18")["conv1.weight"].transpose(2, 3, 1, 0))


def test_module_prefix_and_dtypes_are_accepted():
    """DataParallel's `module.` prefix is dropped; float16 / float64 tensors become float32."""
    plain = state_dict("resnet18")
    wrapped = {"module." + key: (value.astype(np.float16) if key == "fc.weight" else value)
               for key, value in plain.items()}
    got, want = convert(wrapped, "resnet_v1_18").values, convert(plain, "resnet_v1_18").values
    assert sorted(got) == sorted(want) and all(v.dtype == np.float32 for v in got.values())
    np.testing.assert_array_equal(got["resnet_v1_18/conv1/weights"], want["resnet_v1_18/conv1/weights"])
    np.testing.assert_allclose(got["resnet_v1_18/logits/weights"], want["resnet_v1_18/logits/weights"], atol=1e-3)
    assert got["resnet_v1_18/logits/weights"].shape == (1, 1, 512, 1000)


def test_every_torchvision_key_has_a_variable_and_back():
    """The name mapping alone, both nets: a bijection between torchvision's keys (less num_batches_tracked) and ours."""
    for torch_name, ours in OURS.items():
        entry = nets.get(ours)
        shapes = torch_weights.expected_shapes(entry)
        keys = [k for k, _ in FIXTURE["nets"][torch_name]["layout"] if not k.endswith("num_batches_tracked")]
        names = [torch_weights.variable_name(k, entry.scope) for k in keys]
        assert sorted(names) == sorted(shapes), torch_name
        for key, shape in FIXTURE["nets"][torch_name]["layout"]:
            name = torch_weights.variable_name(key, entry.scope)
            if name:
                assert torch_weights.torch_shape(name, shapes[name]) == tuple(shape), key


# ---------------------------------------------------------------- preprocessing: torchvision's normalisation

@pytest.mark.parametrize("encoder", ["resnet_v1_18", "resnet_v1_34"])
def test_registry_preprocessing_is_torchvisions_normalisation(encoder):
    """ToTensor ([0, 1]) + Normalize(mean, std) of the weights' own transforms, on an RGB PIL image."""
    torch_name = torch_weights.TORCH_MODELS[encoder]
    assert list(preprocessing.TORCH_MEAN_RGB) == FIXTURE["nets"][torch_name]["mean"]
    assert list(preprocessing.TORCH_STD_RGB) == FIXTURE["nets"][torch_name]["std"]
    image = random_images(FIXTURE["small_image"]["shape"], FIXTURE["small_image"]["seed"]).astype(np.float32)
    expected = np.asarray(FIXTURE["small_image"]["normalised"], np.float32).transpose(0, 2, 3, 1)  # NCHW -> NHWC
    entry = nets.get(encoder)
    with tf.Session() as sess:
        ours, swapped = sess.run([entry.preprocess(tf.constant(image)), entry.preprocess(tf.constant(image[..., ::-1]))])
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)
    assert np.abs(swapped - expected).max() > 0.1  # the check sees channel order (BGR would fail it)


# ---------------------------------------------------------------- bad input: the file and the first tensor named

def test_a_different_architecture_is_refused_naming_the_first_tensor():
    """A torchvision ResNet-50 state dict (bottleneck units): the first bottleneck 1x1 conv is named."""
    resnet50 = {key: np.broadcast_to(np.float32(0), shape) for key, shape in FIXTURE["other_layouts"]["resnet50"]}
    with pytest.raises(StateDictMismatchError) as info:
        convert(resnet50, source="resnet50.pth")
    message = str(info.value)
    assert info.value.first == "layer1.0.conv1.weight"
    assert message.startswith("resnet50.pth does not hold resnet")
    assert "first offending tensor layer1.0.conv1.weight" in message
    assert "layer1.0.conv1.weight [64, 64, 1, 1] vs [64, 64, 3, 3]" in message
    assert "layer1.0.conv3.weight [256, 64, 1, 1]" in message  # unmapped, listed
    assert ("fc.weight", (1000, 2048), (1000, 512)) in info.value.match.wrong_shape
    assert "a ResNet-50/101? our resnet_v1_50/101 take the TF-Slim model-zoo checkpoints" in message


def test_resnet34_weights_for_resnet_v1_18_name_the_extra_unit():
    with pytest.raises(StateDictMismatchError) as info:
        convert(state_dict("resnet34"), "resnet_v1_18", source="r34.safetensors")
    assert info.value.first == "layer1.2.conv1.weight"
    assert info.value.match.missing == [] and info.value.match.wrong_shape == []
    assert "r34.safetensors" in str(info.value)


def test_a_missing_tensor_is_named():
    partial = {k: v for k, v in state_dict("resnet18").items() if k != "layer3.1.bn2.running_var"}
    with pytest.raises(StateDictMismatchError) as info:
        convert(partial, "resnet_v1_18", source="partial.safetensors")
    assert info.value.first == "resnet_v1_18/block3/unit_2/res_block_v1/conv2/BatchNorm/moving_variance"
    assert "[256]" in str(info.value)


def test_a_truncated_safetensors_file_names_the_first_tensor_cut_off(resnet18_safetensors, tmp_path):
    data = open(resnet18_safetensors, "rb").read()
    header, start = torch_files.safetensors_header(resnet18_safetensors)
    cut = len(data) // 2
    first_cut = next(key for key, info in header.items() if start + info["data_offsets"][1] > cut)
    path = str(tmp_path / "truncated.safetensors")
    open(path, "wb").write(data[:cut])
    with pytest.raises(WeightsFileError) as info:
        read_state_dict(path)
    assert info.value.tensor == first_cut and str(info.value).startswith(path + ": truncated: tensor " + first_cut)

    open(path, "wb").write(data[:100])  # not even the whole header
    with pytest.raises(WeightsFileError, match="truncated: its safetensors header alone needs"):
        read_state_dict(path)


def test_an_unknown_format_is_named(tmp_path):
    path = str(tmp_path / "weights.h5")
    open(path, "wb").write(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(WeightsFileError) as info:
        read_state_dict(path)
    assert str(info.value).startswith(path + ": unknown format (it starts with b'\\x89HDF")
    assert ".safetensors" in str(info.value) and ".pth" in str(info.value)


def test_bfloat16_safetensors_are_widened_exactly(tmp_path):
    """numpy has no bfloat16: the raw 16 bits are read and widened (1.0, 2.0, -0.5)."""
    header = json.dumps({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    path = str(tmp_path / "bf16.safetensors")
    open(path, "wb").write(struct.pack("<Q", len(header)) + header + bytes([0x80, 0x3F, 0x00, 0x40, 0x00, 0xBF]))
    got = read_state_dict(path)["x"]
    assert got.dtype == np.float32 and got.tolist() == [1.0, 2.0, -0.5]


def test_a_pth_file_without_torch_says_how_to_make_safetensors(tmp_path):
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here; test_a_pth_file_with_torch covers .pth files")
    path = str(tmp_path / "resnet18.pth")
    with zipfile.ZipFile(path, "w") as archive:  # what torch.save writes: a zip archive
        archive.writestr("resnet18/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(WeightsFileError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert message.startswith(path + ": a PyTorch file, and torch is not installed here")
    assert "save_file(torch.load('%s', map_location='cpu', weights_only=True), '%s')" % (
        path, str(tmp_path / "resnet18.safetensors")) in message


def test_a_pth_file_with_torch(tmp_path):
    """Only where torch is installed (never in CI): torch.save'd state dicts, plain and wrapped, read exactly."""
    torch = pytest.importorskip("torch")
    plain = state_dict("resnet18")
    path = str(tmp_path / "resnet18.pth")
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in plain.items()}}, path)
    got = read_state_dict(path)
    assert list(got) == list(plain)
    np.testing.assert_array_equal(got["layer4.1.conv2.weight"], plain["layer4.1.conv2.weight"])
    open(path + ".cut", "wb").write(open(path, "rb").read()[:1000])
    with pytest.raises(WeightsFileError, match="torch cannot load it"):
        read_state_dict(path + ".cut")


# ---------------------------------------------------------------- the command, and training from its output

def test_command_refuses_bad_files_and_overwrites(resnet18_safetensors, tmp_path, capsys):
    """main() (what utils/convert_weights.py runs): one error line block, no traceback, the right exit codes."""
    assert torch_weights.main([str(tmp_path / "nothing.pth")]) == 2
    assert "weights file not found" in capsys.readouterr().err
    resnet34 = str(tmp_path / "r34.safetensors")
    save_file(state_dict("resnet34"), resnet34)
    assert torch_weights.main([resnet34, "--encoder", "resnet_v1_18", "--output", str(tmp_path / "x.ckpt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: %s does not hold resnet18 weights for resnet_v1_18" % resnet34)
    assert "first offending tensor layer1.2.bn1.bias" in err and "Traceback" not in err  # the file's order
    assert not os.path.exists(str(tmp_path / "x.ckpt.index"))

    assert torch_weights.main([resnet18_safetensors, "--modelspath", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "wrote %s" % (tmp_path / "resnet_v1_18.ckpt") in out and "11689512 trainable parameters" in out
    assert torch_weights.main([resnet18_safetensors, "--modelspath", str(tmp_path)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert torch_weights.main([resnet18_safetensors, "--modelspath", str(tmp_path), "--overwrite"]) == 0


def test_missing_checkpoint_of_a_torchvision_net_points_to_the_converter(tmp_path):
    with pytest.raises(ValueError) as info:
        resolve_pretrained(None, str(tmp_path), "resnet_v1_34")
    assert "python utils/convert_weights.py <resnet34 .pth or .safetensors> --modelspath %s" % tmp_path \
        in str(info.value)


def test_train_from_a_converted_checkpoint(resnet18_safetensors, sample_datapath, tmp_path):
    """The command's checkpoint, then train.py --pretrained: restored and new variables listed in the runlog."""
    models, runs = tmp_path / "models", tmp_path / "runs"
    proc = run_script("utils/convert_weights.py", resnet18_safetensors, "--modelspath", models)
    assert "wrote %s" % (models / "resnet_v1_18.ckpt") in proc.stdout
    run_script("train.py", "--basenet", "resnet_v1_18", "--extended_arch", "LinkNet", "--modelspath", models,
               "--datapath", sample_datapath, "--runs_root", runs, "--pixels", "64", "--batch_size", "2",
               "--max_steps", "2", "--seed", "7")
    (folder,) = os.listdir(runs)
    runlog = open(os.path.join(runs, folder, "runlog")).read()
    assert "restored 100 encoder variables from %s" % (models / "resnet_v1_18.ckpt") in runlog
    restored = [line.split()[1] for line in runlog.splitlines() if line.startswith("  restored ")]
    new = [line.split()[1] for line in runlog.splitlines() if line.startswith("  new ")]
    assert len(restored) == 100 and all(name.startswith("resnet_v1_18/") for name in restored)
    assert "decoder/final/block_stride1/expand/weights" in new
    assert not [name for name in new if name.startswith("resnet_v1_18/") and not name.endswith(("/Adam", "/Adam_1"))]
    assert "the checkpoint's ImageNet classifier is not used: resnet_v1_18/logits/biases" in runlog
    assert "match nothing in the graph" not in runlog

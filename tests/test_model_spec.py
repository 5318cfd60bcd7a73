"""One model spec: declared settings become flags everywhere, runargs sections, old run folders still load."""
import dataclasses
import os

import numpy as np
import pytest

import arch
import decoders
import train
from tests.conftest import ROOT, run_script
from utils.compat import tf
from utils.data.spec import DataSpec
from utils.training.config import RunConfig, TrainSettings
from utils.training.step import TrainStep

LEGACY = os.path.join(ROOT, "tests", "fixtures", "legacy_runs")


def _checkpoint_variables(run):
    with open(os.path.join(LEGACY, run, "checkpoint_variables.txt")) as handle:
        return sorted((name, shape) for name, shape in (line.split() for line in handle))


def _graph_variables():
    return sorted((v.op.name, "x".join(map(str, v.shape.as_list())) or "scalar") for v in tf.global_variables())


@pytest.mark.parametrize("run", ["resnet_v1_18_FCN8", "resnet_v1_18_PSPNet"])
def test_run_folders_written_before_the_sections_still_load(run):
    """A flat runargs of the previous code: its spec, settings and data, and the training graph it builds has
    exactly the variables of that run's checkpoint (so test.py and --resume restore it)."""
    config = RunConfig.load(os.path.join(LEGACY, run))
    assert config.net_name == run and config.provenance == {"runargs_schema": 1}
    assert config.model.encoder == "resnet_v1_18" and config.model.num_classes == 11
    assert config.data.class_names[3] == "Road" and config.data.ignore_label == 11 and config.data.pixels == 64
    assert config.train.seed == 7 and config.train.batch_size == 2
    if run.endswith("FCN8"):
        assert config.model.decoder_options == decoders.get("FCN").Options(fcn16=True, fcn8=True)
        assert config.train.total_steps == 4 and config.replicas["num_replicas"] == 1
    else:
        assert config.model.encoder_stride == 16 and config.model.decoder_options.aux_loss_weight == 0.4
        assert config.train.sync_batch_norm and config.replicas["num_replicas"] == 2
    images, labels = tf.zeros([2, 64, 64, 3]), tf.zeros([2, 64, 64], tf.int32)
    TrainStep(images, labels, tf.placeholder_with_default(True, []), config)
    assert _graph_variables() == _checkpoint_variables(run)
    assert RunConfig.from_runargs(config.to_runargs()) == config


def test_runargs_have_model_train_and_data_sections_that_round_trip():
    config = RunConfig(arch.ModelSpec("mobilenet_v2", "UNet", 5, encoder_stride=16,
                                      decoder_options={"trainable_upsampling": True}),
                       TrainSettings(batch_size=4, total_steps=10), DataSpec(pixels=128, ignore_label=5))
    runargs = config.to_runargs()
    assert {"schema", "net_name", "model", "train", "data", "replicas", "provenance"} == set(runargs)
    assert runargs["model"]["decoder_options"] == {"trainable_upsampling": True}
    assert runargs["net_name"] == "mobilenet_v2_UNet" and runargs["train"]["batch_size"] == 4
    assert RunConfig.from_runargs(runargs) == config


def test_decoder_options_are_checked_against_the_decoder():
    with pytest.raises(arch.DecoderOptionError, match="--fcn8 is not an option of LinkNet"):
        arch.ModelSpec("resnet_v1_18", "LinkNet", 3, decoder_options={"fcn8": True})
    with pytest.raises(arch.UnknownDecoderError, match="valid names"):
        arch.ModelSpec("resnet_v1_18", "SegNetX", 3)
    spec = arch.ModelSpec("resnet_v1_18", "fcn", 3, decoder_options={"fcn8": True, "trainable_upsampling": True})
    assert spec.decoder == "FCN" and spec.run_name == "resnet_v1_18_FCN8"
    unet = spec.replace(decoder="UNet")  # the options UNet also declares carry over
    assert unet.decoder_options == decoders.get("UNet").Options(trainable_upsampling=True)
    with pytest.raises(ValueError, match="num_classes"):
        arch.build_model(arch.ModelSpec("resnet_v1_18", "FCN"))


def _every_option():
    return [(name, field.name) for name in decoders.NAMES
            for field in dataclasses.fields(decoders.get(name).Options)]


def test_every_declared_setting_is_a_flag_of_every_command():
    """Settings are declared once; train.py, arch.py and bench.py generate their flags from the declarations."""
    parsers = {"train.py": train.build_parser(), "arch.py": arch.build_parser()}
    bench_help = run_script("bench/bench.py", "--help").stdout
    for command, parser in parsers.items():
        flags = {s for action in parser._actions for s in action.option_strings}
        for name, option in _every_option():
            assert "--" + option in flags and "--" + option in bench_help, (command, name, option)
        assert {"--basenet", "--encoder", "--extended_arch", "--decoder", "--encoder_stride"} <= flags, command
    args = parsers["train.py"].parse_args(["--decoder", "PSPNet", "--aux_loss_weight", "0.2", "--encoder",
                                           "mobilenet_v2", "--num_classes", "4"])
    spec = arch.model_spec_from_args(args)
    assert (spec.encoder, spec.decoder, spec.decoder_options.aux_loss_weight) == ("mobilenet_v2", "PSPNet", 0.2)
    foreign = parsers["train.py"].parse_args(["--extended_arch", "LinkNet", "--fcn8"])
    with pytest.raises(arch.DecoderOptionError, match="its options: none"):
        arch.model_spec_from_args(foreign, num_classes=4)


def test_train_py_rejects_an_option_of_another_decoder(tmp_path):
    proc = run_script("train.py", "--extended_arch", "UNet", "--aux_loss_weight", "0.3", "--datapath", tmp_path,
                      check=False)
    assert proc.returncode == 2 and "--aux_loss_weight is not an option of UNet" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_pyramid_and_the_static_shape_declaration():
    """Every block reads the pyramid built so far; a decoder that needs static shapes declares it."""
    model = arch.build_model(arch.ModelSpec("resnet_v1_18", "LinkNet", 3, encoder_stride=16))
    model.build(tf.placeholder(tf.float32, [1, 64, 96, 3]))
    assert sorted(model.pyramid) == [4, 8, 16]
    assert model.pyramid[4].shape.as_list()[1:3] == [16, 24] and model.pyramid[16].shape.as_list()[1:3] == [4, 6]
    assert [name for name in decoders.NAMES if decoders.get(name).needs_static_shapes] == ["DeepLabV3",
                                                                                             "DeepLabV3Plus"]
    assert np.all([decoders.get(name).run_name(decoders.get(name).make_options()) for name in decoders.NAMES])

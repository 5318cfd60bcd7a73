"""Train a segmentation net: `python train.py --basenet resnet_v1_18 --extended_arch LinkNet --dataset_family camvid &`

Reads top to bottom like the data path: tfrecords -> tf.data (one feedable
iterator for training and the quarter-validation monitor) -> encoder ->
decoder -> loss / metrics -> run folder (runargs, runlog, checkpoints,
TensorBoard events) under tmp/<YYYYMMDD>_<NETNAME>__<#RUN>.

Every flag but the run and distribution ones is generated from where its
setting is declared: the model spec (arch.ModelSpec) and each decoder's
options, the training settings (utils/training/config.py) and the data
(utils/data/spec.py); runargs keeps them as those three sections.

Nothing is lost: SIGINT/SIGTERM save a final checkpoint (a milestone, as the
last step of every run is) and exit with 128 + the signal, `--resume <run folder>`
continues at the same step, epoch, learning-rate schedule and runlog window, and
a NaN/Inf loss stops the run keeping the last good checkpoint.  Exit codes:
utils/training/exit_codes.py (and --help).
"""
import argparse
import dataclasses
import os
import sys

import arch
import nets
from utils.data.dataset_info import DATA_ERRORS
from utils.data.spec import DataSpec, resolve as resolve_data
from utils.data.statistics import split_statistics
from utils.flags import add_gpu_flag, add_setting_flags, apply_gpu_flag_early, settings_from_args
from utils.training import class_weights, exit_codes
from utils.training import placement as placements
from utils.training import runfolder
from utils.training.config import RunConfig, TrainSettings, provenance, resolve_pretrained, total_steps
from utils.training.loop import RunFailed, run

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_RUNS_ROOT = os.path.join(HERE, "tmp")
# Where and how to run, always from the command line (also when resuming): never part of the run's config.
EXECUTION = ("runs_root", "resume", "threads", "gpu") + placements.EXECUTION_FLAGS
EXIT_NAN = exit_codes.NAN  # train.py's NaN/Inf exit code, as tests and schedulers read it


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=exit_codes.help_text())
    groups = arch.add_model_flags(parser)
    add_setting_flags(parser, TrainSettings, groups=groups)
    add_setting_flags(parser, DataSpec, groups=groups)
    run = groups["run"]
    run.add_argument("--runs_root", default=DEFAULT_RUNS_ROOT, help="where run folders are created (default: tmp/)")
    run.add_argument("--resume", default=None, metavar="RUN_FOLDER", help="continue a run where it stopped")
    run.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads (0 = TF default)")
    add_gpu_flag(run)
    run.add_argument("--verbose", action="store_true", help="show TensorFlow's own log")
    placements.add_flags(groups["distribution"])
    return parser


# ----------------------------------------------------------------------------- configuration
# Settings a resumed run may change (the run's length and its monitoring); every other one is the run's own.
CHANGEABLE_ON_RESUME = ("max_steps", "epochs", "val_every", "save_every", "milestones", "log_every")


def execution_of(args):
    return {key: getattr(args, key) for key in EXECUTION}


def given_flags(parser, argv):
    """dests of the flags written on the command line `argv` (whatever their value)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    given = set()
    for action in parser._actions:
        for option in action.option_strings:
            if any(arg == option or arg.startswith(option + "=") for arg in argv):
                given.add(action.dest)
    return given


def resolve_config(args, argv=None, log=print):
    """The run's RunConfig: from the flags and what the dataset knows, or, with --resume, from its runargs."""
    if args.resume:
        return resumed_config(args, argv, log)
    # Bad flag values stop here, before any data is read; a missing tfrecords file next, naming its command.
    model = arch.model_spec_from_args(args)
    train = TrainSettings(**settings_from_args(args, TrainSettings))
    data, dataset_classes = resolve_data(DataSpec(**settings_from_args(args, DataSpec)))
    model = model.replace(num_classes=model.num_classes or dataset_classes)
    check_label_range(data, model.num_classes, log)
    if train.init_from:
        train = dataclasses.replace(train, init_from=resolve_init_from(train.init_from), pretrained="none")
    train = dataclasses.replace(
        train, seed=train.seed if train.seed is not None else placements.default_seed(execution_of(args)),
        pretrained=resolve_pretrained(train.pretrained, train.modelspath, model.encoder),
        total_steps=total_steps(train, data.total_train_images))
    choice, weights = resolve_class_weights(train.class_weights, data, model.num_classes, log)
    train = dataclasses.replace(train, class_weights=choice, class_weight_values=weights)
    return RunConfig(model, train, data, provenance=provenance(argv))


def resumed_config(args, argv, log):
    """The run folder's RunConfig, with the length and monitoring settings the command line changes (logged);
    any other run setting on the command line is refused rather than silently ignored."""
    config = RunConfig.load(args.resume)
    settings = {f.name for f in dataclasses.fields(TrainSettings)} | {f.name for f in dataclasses.fields(DataSpec)} \
        | {f.name for f in dataclasses.fields(arch.ModelSpec)} | {option for option, _ in option_names()}
    given = given_flags(build_parser(), argv) & settings
    refused = sorted(given - set(CHANGEABLE_ON_RESUME))
    if refused:
        raise ValueError("--resume continues the run with the settings in its runargs: %s cannot change "
                         "(a resumed run may change %s)" % (", ".join("--" + name for name in refused),
                                                            ", ".join("--" + name for name in CHANGEABLE_ON_RESUME)))
    changes = {name: getattr(args, name) for name in given}
    if not changes:
        return config
    train = dataclasses.replace(config.train, **changes)
    train = dataclasses.replace(train, total_steps=total_steps(train, config.data.total_train_images))
    for name, value in sorted(changes.items()):
        log("resume: --%s %s (was %s)" % (name, value, getattr(config.train, name)))
    if train.total_steps != config.train.total_steps:
        log("resume: the run now ends at step %d (was %d); the learning-rate schedule follows the new length"
            % (train.total_steps, config.train.total_steps))
    config = config.replace(train=train, provenance=dict(config.provenance, resumed_with=provenance(argv)))
    config.save(args.resume)
    return config


def option_names():
    return [(field.name, meta) for field, meta, _ in arch.decoder_option_declarations()[0]]


def check_label_range(data, num_classes, log):
    """The records' labels must fit the model: a class beyond --num_classes would be dropped from the loss
    without a word.  Read once from dataset.json's class statistics (counted once for older conversions)."""
    for split in ("training", data.val_split):
        pixels = split_statistics(data.datapath, data.dataset_family, split, log=log)["class_pixels"]
        beyond = {value: count for value, count in enumerate(pixels) if value >= num_classes and count}
        if beyond:
            names = ["%d %s (%d pixels)" % (value, data.class_names[value], count) for value, count in beyond.items()]
            raise ValueError("--num_classes %d, but the %s labels hold classes beyond it: %s; use --num_classes %d "
                             "(the dataset's), or relabel the data" % (num_classes, split, ", ".join(names[:6]),
                                                                        len(pixels)))


def resolve_class_weights(choice, data, num_classes, log=print):
    """(--class_weights as resolved, the weights or None); enet / median_freq read the training statistics."""
    choice = class_weights.default_choice(data.dataset_family) if choice is None else choice
    names = list(data.class_names)[:num_classes]
    names += ["class_%d" % index for index in range(len(names), num_classes)]  # the model may have more
    if choice in ("enet", "median_freq"):
        stats = split_statistics(data.datapath, data.dataset_family, "training", log=log)
        stats = {key: (list(values) + [0] * num_classes)[:num_classes] for key, values in stats.items()}
        return class_weights.resolve(choice, names, stats)
    return class_weights.resolve(choice, names)


def resolve_init_from(path):
    """--init_from: a run folder's newest checkpoint, or a checkpoint prefix; missing ones stop with a message."""
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, runfolder.RUNARGS)):
        return runfolder.checkpoint_path(path)
    if os.path.exists(path + ".index") or os.path.exists(path):
        return path
    raise FileNotFoundError("--init_from %s: neither a run folder (with runargs) nor a checkpoint (no %s.index)"
                            % (path, path))


def main(argv=None):
    apply_gpu_flag_early(argv)  # before the first session: CUDA reads CUDA_VISIBLE_DEVICES once
    parser = build_parser()
    args = parser.parse_args(argv)
    execution = execution_of(args)
    try:  # a bad value, a missing file, data that does not fit: one line naming it, exit 2 (4: the data), no folder
        config = resolve_config(args, argv)
        placement = placements.resolve_placement(execution)
        config = config.replace(replicas=placements.describe(placement, config.train, config.data.total_train_images))
    except DATA_ERRORS as error:
        print("error: %s" % error, file=sys.stderr)
        return exit_codes.DATA
    except (arch.UnknownDecoderError, arch.DecoderOptionError, nets.UnknownNetError, ValueError,
            FileNotFoundError) as error:
        print("error: %s" % error, file=sys.stderr)
        return exit_codes.USAGE
    try:
        return run(config, execution, placement)
    except (FileNotFoundError, RunFailed) as error:
        print("error: %s" % error, file=sys.stderr)
        return getattr(error, "exit_code", exit_codes.DATA if isinstance(error, DATA_ERRORS) else exit_codes.USAGE)


if __name__ == "__main__":
    sys.exit(main())

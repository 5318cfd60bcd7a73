"""Train a segmentation net: `python train.py --basenet resnet_v1_18 --extended_arch LinkNet --dataset_family camvid &`

Reads top to bottom like the data path: tfrecords -> tf.data (one feedable
iterator for training and the quarter-validation monitor) -> encoder ->
decoder -> loss / metrics -> run folder (runargs, runlog, checkpoints,
TensorBoard events) under tmp/<YYYYMMDD>_<NETNAME>__<#RUN>.

Every flag but the run and distribution ones is generated from where its
setting is declared: the model spec (arch.ModelSpec) and each decoder's
options, the training settings (utils/training/config.py) and the data
(utils/data/spec.py); runargs keeps them as those three sections.

Nothing is lost: SIGINT/SIGTERM save a final checkpoint and exit cleanly,
`--resume <run folder>` continues at the same step, epoch and learning-rate
schedule, and a NaN/Inf loss stops the run keeping the last good checkpoint.
"""
import argparse
import dataclasses
import math
import os
import signal
import sys
import time

import arch
import nets
from nets import checkpoints
from utils.compat import tf
from utils.compat.session import session_config
from utils.data import pipeline
from utils.data.dataset_info import dataset_files
from utils.data.spec import DataSpec, resolve as resolve_data
from utils.data.statistics import split_statistics
from utils.flags import add_gpu_flag, add_setting_flags, apply_gpu_flag_early, settings_from_args
from utils.training import class_weights
from utils.training import placement as placements
from utils.training import runfolder
from utils.training.config import RunConfig, TrainSettings, provenance, resolve_pretrained, total_steps
from utils.training.monitor import Monitor
from utils.training.replicas import ReplicatedTrainStep, start_like_single_device
from utils.training.step import TrainStep

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_RUNS_ROOT = os.path.join(HERE, "tmp")
# Where and how to run, always from the command line (also when resuming): never part of the run's config.
EXECUTION = ("runs_root", "resume", "log_every", "threads", "gpu") + placements.EXECUTION_FLAGS

EXIT_NAN = 3


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    groups = arch.add_model_flags(parser)
    add_setting_flags(parser, TrainSettings, groups=groups)
    add_setting_flags(parser, DataSpec, groups=groups)
    run = groups["run"]
    run.add_argument("--runs_root", default=DEFAULT_RUNS_ROOT, help="where run folders are created (default: tmp/)")
    run.add_argument("--resume", default=None, metavar="RUN_FOLDER", help="continue a run where it stopped")
    run.add_argument("--log_every", type=int, default=20, help="steps between runlog lines (default: 20)")
    run.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads (0 = TF default)")
    add_gpu_flag(run)
    run.add_argument("--verbose", action="store_true", help="show TensorFlow's own log")
    placements.add_flags(groups["distribution"])
    return parser


# ----------------------------------------------------------------------------- configuration
def execution_of(args):
    return {key: getattr(args, key) for key in EXECUTION}


def resolve_config(args, argv=None):
    """The run's RunConfig: from the flags and what the dataset knows, or, with --resume, from its runargs."""
    if args.resume:
        return RunConfig.load(args.resume)
    # Bad flag values stop here, before any data is read; a missing tfrecords file next, naming its command.
    model = arch.model_spec_from_args(args)
    train = TrainSettings(**settings_from_args(args, TrainSettings))
    data, dataset_classes = resolve_data(DataSpec(**settings_from_args(args, DataSpec)))
    model = model.replace(num_classes=model.num_classes or dataset_classes)
    if train.init_from:
        train = dataclasses.replace(train, init_from=resolve_init_from(train.init_from), pretrained="none")
    train = dataclasses.replace(
        train, seed=train.seed if train.seed is not None else placements.default_seed(execution_of(args)),
        pretrained=resolve_pretrained(train.pretrained, train.modelspath, model.encoder),
        total_steps=total_steps(train, data.total_train_images))
    choice, weights = resolve_class_weights(train.class_weights, data, model.num_classes)
    train = dataclasses.replace(train, class_weights=choice, class_weight_values=weights)
    return RunConfig(model, train, data, provenance=provenance(argv))


def resolve_class_weights(choice, data, num_classes):
    """(--class_weights as resolved, the weights or None); enet / median_freq read the training statistics."""
    choice = class_weights.default_choice(data.dataset_family) if choice is None else choice
    names = list(data.class_names)[:num_classes]
    names += ["class_%d" % index for index in range(len(names), num_classes)]  # the model may have more
    if choice in ("enet", "median_freq"):
        stats = split_statistics(data.datapath, data.dataset_family, "training")
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


# ----------------------------------------------------------------------------- graph
class TrainGraph:
    """Everything the loop runs: one graph, a feedable iterator over train and val data, one step."""

    def __init__(self, config, placement=None):
        data, train = config.data, config.train
        tf.set_random_seed(train.seed)
        common = dict(preprocessing=nets.get(config.model.encoder).preprocessing, pixels=data.pixels,
                      batch_size=train.batch_size, ignore_label=data.ignore_label)
        train_files = dataset_files(data.datapath, data.dataset_family, "training")
        val_files = dataset_files(data.datapath, data.dataset_family, "validation")
        train_data = pipeline.make_dataset(train_files, training=True, augment=data.augment, seed=train.seed,
                                           repeat=True, drop_remainder=True, scale_range=data.scale_bounds,
                                           flip=data.flip, color_jitter=data.color_jitter, **common)
        # The monitor's data: shuffled and repeating, so each monitor run sees another random subset.
        val_data = pipeline.make_dataset(val_files, training=True, augment=False, seed=train.seed + 1,
                                         repeat=True, drop_remainder=False, **common)
        datasets = [train_data, val_data]
        if train.keep_best:  # --keep_best scores the whole validation set, one pass in file order
            datasets.append(pipeline.make_dataset(val_files, training=False, **common))
        self.feed = pipeline.make_feedable_iterator(*datasets)
        batch = self.feed.next_batch
        self.is_training = tf.placeholder_with_default(False, [], name="is_training")
        replicated = placement is not None and placement.replicated
        self.step = (ReplicatedTrainStep(placement, batch["image"], batch["label"], config) if replicated
                     else TrainStep(batch["image"], batch["label"], self.is_training, config))
        self.init = tf.global_variables_initializer()
        self.latest_saver = tf.train.Saver(max_to_keep=1, name="latest_saver")
        self.milestone_saver = tf.train.Saver(max_to_keep=None, name="milestone_saver")
        self.best_saver = tf.train.Saver(max_to_keep=1, name="best_saver") if train.keep_best else None


# ----------------------------------------------------------------------------- loop
class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves and exits at the next step boundary."""

    def __init__(self):
        self.signal = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.signal is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum


def train(config, execution):
    placement = placements.resolve_placement(execution)
    config = config.replace(replicas=placements.describe(placement, config.train, config.data.total_train_images))
    chief = placement.is_chief  # only the chief writes the run folder; other workers' monitors write to scratch
    resume = execution.get("resume")
    folder = (resume or runfolder.create(execution["runs_root"], config.net_name)) if chief \
        else placements.scratch_folder()
    if chief and not resume:
        config.save(folder)
    graph = TrainGraph(config, placement)
    session = placement.session_config(
        session_config(execution["threads"], config.train.xla, config.train.mixed_precision))

    step_tensors = graph.step
    monitor = Monitor(folder, config, graph.feed.handle, graph.is_training, step_tensors.monitor,
                      execution["log_every"])
    stop = StopRequest()
    total = config.train.total_steps
    with tf.Session(placement.session_target(session), config=session) as sess:
        sess.run(graph.init)
        if placement.replicated and not resume:
            start_like_single_device(sess, graph.latest_saver, lambda: TrainGraph(config))
        start_step = restore(sess, graph, config, resume, monitor)
        handles = graph.feed.start(sess)
        train_feed = {graph.feed.handle: handles[0], graph.is_training: True}
        monitor.start(sess, handles[1], start_step)
        monitor.log(placements.summary_line(placement, config.replicas, config.train.learnrate))
        monitor.log(recipe_line(config))
        best = runfolder.read_best(folder) if chief else None
        step = start_step
        last_good = None
        fetches = step_tensors.fetches
        while step < total:
            tic = time.time()
            values = sess.run(fetches, train_feed)
            step += 1  # == global_step after the update (fetching global_step alongside would race it)
            if not math.isfinite(values["loss"]):
                monitor.log("loss is %s at step %d: stopping. The last good checkpoint is kept: %s. "
                            "Try a lower --learnrate, or check the data with utils/label_checker.py."
                            % (values["loss"], step, last_good or "none saved yet"))
                monitor.close()
                return EXIT_NAN
            monitor.after_step(sess, step, values["loss"], values["learning_rate"], values["confusion"],
                               time.time() - tic)
            if chief and (step % config.train.val_every == 0 or step == total):
                monitor.validate(sess, step)
                last_good = save(sess, graph, folder, step, latest=True)
                if graph.best_saver is not None:
                    best = keep_if_best(sess, graph, folder, step, handles[2], monitor, best)
            if chief and step % config.train.save_every == 0:
                last_good = save(sess, graph, folder, step, latest=False)
            if stop.signal is not None:
                last_good = save(sess, graph, folder, step, latest=True) if chief else None
                monitor.log("stopped by signal %d at step %d; checkpoint %s; continue with: "
                            "python train.py --resume %s" % (stop.signal, step, last_good, folder))
                monitor.close()
                return 0
        if chief:
            save(sess, graph, folder, step, latest=True)
        monitor.log("done: %d steps, run folder %s" % (step, folder))
        monitor.close()
    return 0


def recipe_line(config):
    """One runlog line: optimizer, schedule, loss, class weights, augmentation."""
    train, data = config.train, config.data
    weights = "none" if train.class_weight_values is None else "%s [%s]" % (
        train.class_weights, ", ".join("%.3g" % w for w in train.class_weight_values))
    return ("recipe: %s lr %.2e, %s schedule, warm-up %d steps | loss %s%s%s | class weights %s | augmentation %s"
            % (train.optimizer, config.effective_learnrate, train.lr_schedule, train.warmup_steps, train.loss,
               " (gamma %g)" % train.focal_gamma if "focal" in train.loss_terms else "",
               ", hardest %g of pixels" % train.ohem_top_k if train.ohem_top_k < 1 else "", weights,
               "off" if not data.augment else "scale %s, flip %s, colour jitter %g"
               % (data.scale_range, data.flip, data.color_jitter)))


def keep_if_best(sess, graph, folder, step, full_val_handle, monitor, best):
    """--keep_best: score the whole validation set; a better mIoU replaces the checkpoint in best/."""
    miou, images = monitor.validate_full(sess, full_val_handle, graph.feed.iterators[2].initializer, step)
    if best is not None and miou <= best["mIoU"]:
        return best
    directory = os.path.join(folder, runfolder.BEST_DIR)
    os.makedirs(directory, exist_ok=True)
    path = graph.best_saver.save(sess, os.path.join(directory, runfolder.CKPT_PREFIX), global_step=step,
                                 write_meta_graph=False)
    best = {"step": step, "mIoU": miou, "images": images, "checkpoint": os.path.relpath(path, folder)}
    runfolder.write_best(folder, best)
    monitor.log("step %d | new best full-val mIoU %.3f (%d images): kept in %s" % (step, miou, images, path))
    return best


def restore(sess, graph, config, resume, monitor):
    """Resume from the run folder, or initialise: from --init_from, or the encoder from its ImageNet checkpoint."""
    if resume:
        path = runfolder.checkpoint_path(resume)  # == folder, except on a non-chief worker
        graph.latest_saver.restore(sess, path)
        step = int(sess.run(graph.step.global_step))
        monitor.log("resumed from %s at step %d" % (path, step))
        return step
    if config.train.init_from:
        model = graph.step.model
        report = checkpoints.restore_matching(sess, config.train.init_from,
                                              model.encoder_variables() + model.decoder_variables())
        monitor.log("initialised from %s: %d variables restored, %d of another shape and %d absent left new"
                    % (config.train.init_from, len(report.restored), len(report.other_shape),
                       len(report.not_in_checkpoint)))
        monitor.log_names("  restored ", report.restored)
        monitor.log_names("  skipped  ", report.other_shape + ["%s (not in the checkpoint)" % name
                                                              for name in report.not_in_checkpoint])
    elif config.train.pretrained:
        report = checkpoints.restore_encoder(sess, config.train.pretrained, graph.step.model.encoder.scope)
        restored = set(report.restored)
        monitor.log("restored %d encoder variables from %s:" % (len(restored), config.train.pretrained))
        monitor.log_names("  restored ", sorted(restored))
        monitor.log_names("  new      ", sorted(v.op.name for v in tf.global_variables()
                                                 if v.op.name not in restored))
    else:
        monitor.log("training from scratch (--pretrained none): all variables are new")
    unused = graph.step.unused_variables
    if unused:
        monitor.log("%d variables the loss does not reach (beyond --encoder_stride %s) are saved but not trained:"
                    % (len(unused), config.model.encoder_stride))
        monitor.log_names("  unused   ", sorted(v.op.name for v in unused))
    return 0


def save(sess, graph, folder, step, latest):
    if latest:
        directory = os.path.join(folder, runfolder.LATEST_DIR)
        os.makedirs(directory, exist_ok=True)
        return graph.latest_saver.save(sess, os.path.join(directory, runfolder.CKPT_PREFIX), global_step=step,
                                       write_meta_graph=False)
    return graph.milestone_saver.save(sess, os.path.join(folder, runfolder.CKPT_PREFIX), global_step=step,
                                      write_meta_graph=False)


def main(argv=None):
    apply_gpu_flag_early(argv)  # before the first session: CUDA reads CUDA_VISIBLE_DEVICES once
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = resolve_config(args, argv)
    except FileNotFoundError as error:  # missing tfrecords / run folder: say what to run, no traceback
        print("error: %s" % error, file=sys.stderr)
        return 2
    except (arch.UnknownDecoderError, arch.DecoderOptionError, nets.UnknownNetError, ValueError) as error:
        parser.error(str(error))
    return train(config, execution_of(args))


if __name__ == "__main__":
    sys.exit(main())

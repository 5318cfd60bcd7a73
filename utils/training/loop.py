"""One training run, start to end: the graph, the loop, its checkpoints, and what keeps it safe.

train.py resolves the configuration; `run(config, execution)` does the rest:
  * one graph: a feedable iterator over the training and validation data, one
    train step (TrainStep, or ReplicatedTrainStep over replicas);
  * the run folder is locked while it trains (a second `--resume` refuses);
  * what is saved where (latest/, milestones, best/): utils/training/checkpointing.py;
    nothing non-finite is ever saved: a NaN/Inf loss, or weights that turned
    non-finite, stop the run before the save, so the last good checkpoint stays;
  * `--resume` restarts from the newest intact checkpoint (a damaged newer one
    is skipped, saying so), with the data exactly where the uninterrupted run
    would read it (the seeded order, skipped past the batches already taken),
    the runlog and TensorBoard trimmed of steps the checkpoint does not hold, and the
    runlog's window (the steps since its last line) as the checkpoint kept it;
  * a new run that fails before its first checkpoint removes its folder;
  * the exit code says how it ended (utils/training/exit_codes.py).
"""
import math
import os
import shutil
import signal
import time

import nets
from nets import checkpoints
from utils.compat import backend, native_atrous, tf
from utils.compat.session import session_config
from utils.data import pipeline
from utils.data.dataset_info import dataset_files
from utils.data.records import first_damaged_file
from utils.training import checkpoint_check, exit_codes, runfolder
from utils.training import placement as placements
from utils.training.checkpointing import Checkpoints, NonFiniteWeights
from utils.training.config import scratch_reason
from utils.training.monitor import LogWindow, Monitor, monitor_batches
from utils.training.replicas import ReplicatedTrainStep, start_like_single_device
from utils.training.step import TrainStep

EXIT_NAN = exit_codes.NAN


class RunFailed(RuntimeError):
    """A run that cannot go on: the message names the file or flag and the fix; exit_code: how train.py ends."""

    def __init__(self, message, exit_code=exit_codes.USAGE):
        super().__init__(message)
        self.exit_code = exit_code


# ----------------------------------------------------------------------------- graph
class TrainGraph:
    """Everything the loop runs: one graph, a feedable iterator over train and val data, one step.

    start_step: the steps a resumed run has taken; the data streams skip what those steps consumed.
    """

    def __init__(self, config, placement=None, start_step=0):
        data, train = config.data, config.train
        tf.set_random_seed(train.seed)
        common = dict(preprocessing=nets.get(config.model.encoder).preprocessing, pixels=data.pixels,
                      batch_size=train.batch_size, ignore_label=data.ignore_label)
        self.train_files = dataset_files(data.datapath, data.dataset_family, "training")
        self.val_files = dataset_files(data.datapath, data.dataset_family, data.val_split)
        train_data = pipeline.make_dataset(self.train_files, training=True, augment=data.augment, seed=train.seed,
                                           repeat=True, drop_remainder=True, scale_range=data.scale_bounds,
                                           flip=data.flip, color_jitter=data.color_jitter, crop=data.crop,
                                           skip=start_step * train.batch_size, **common)
        # The monitor's data: shuffled and repeating, so each monitor run sees another random subset.
        monitored = (start_step // train.val_every) * monitor_batches(config) * train.batch_size
        val_data = pipeline.make_dataset(self.val_files, training=True, augment=False, seed=train.seed + 1,
                                         repeat=True, drop_remainder=False, skip=monitored, **common)
        datasets = [train_data, val_data]
        if train.keep_best:  # --keep_best scores the whole validation set, one pass in file order
            datasets.append(pipeline.make_dataset(self.val_files, training=False, **common))
        self.feed = pipeline.make_feedable_iterator(*datasets)
        batch = self.feed.next_batch
        self.is_training = tf.placeholder_with_default(False, [], name="is_training")
        replicated = placement is not None and placement.replicated
        self.step = (ReplicatedTrainStep(placement, batch["image"], batch["label"], config) if replicated
                     else TrainStep(batch["image"], batch["label"], self.is_training, config))
        self.window = LogWindow(config.model.num_classes,
                                placement.host_device if placement is not None else "/device:CPU:0")
        self.init = tf.global_variables_initializer()
        self.checkpoints = Checkpoints(config, self.window)


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves and exits at the next step boundary."""

    def __init__(self):
        self.signal = None  # train.py then exits with 128 + signal (exit_codes.stopped_by)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.signal is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum


# ----------------------------------------------------------------------------- the run
def run(config, execution, placement, log=print):
    """Train `config` on `placement` (config.replicas describes it); `execution` holds the command line's
    where-and-how (runs_root, resume, threads).  Returns the exit code (exit_codes); RunFailed for a run that
    cannot start or go on."""
    chief = placement.is_chief  # only the chief writes the run folder; other workers' monitors write to scratch
    resume = execution.get("resume")
    lock = None
    if not chief:
        folder = placements.scratch_folder()
    elif resume:
        folder = resume
        try:
            lock = runfolder.RunLock(folder).acquire()
        except runfolder.RunFolderBusy as busy:
            raise RunFailed(str(busy)) from None
    else:
        folder = runfolder.create(execution["runs_root"], config.net_name)
        lock = runfolder.RunLock(folder).acquire()
        config.save(folder)
    run_state = {"saved": bool(resume)}
    try:
        return _train(config, execution, placement, folder, resume, run_state, log)
    except (checkpoints.CheckpointMismatchError, checkpoint_check.DamagedCheckpoint) as error:
        raise RunFailed(str(error)) from None
    finally:
        if lock is not None:
            lock.release()
        if chief and not resume and not run_state["saved"] and os.path.isdir(folder):
            shutil.rmtree(folder, ignore_errors=True)
            log("removed the run folder %s: the run stopped before its first checkpoint" % folder)


def _train(config, execution, placement, folder, resume, run_state, log):
    chief = placement.is_chief
    checkpoint, start_step, dropped, graph = None, 0, 0, None
    if resume:
        if chief:
            runfolder.remove_stale_temporaries(folder)
        checkpoint = checkpoint_check.newest_intact(resume, log=log, resumable=True)
        start_step = int(tf.train.load_checkpoint(checkpoint).get_tensor("global_step"))
        dropped = runfolder.trim_runlog(folder, start_step) if chief else 0
    graph = TrainGraph(config, placement, start_step)
    session = placement.session_config(
        session_config(execution["threads"], config.train.xla, config.train.precision))
    monitor = Monitor(folder, config, graph.feed.handle, graph.is_training, graph.step.monitor, graph.window)
    stop = StopRequest()
    total = config.train.total_steps
    try:
        with tf.Session(placement.session_target(session), config=session) as sess:
            sess.run(graph.init)
            if placement.replicated and not resume:
                start_like_single_device(sess, graph.checkpoints.latest_saver, lambda: TrainGraph(config))
            if resume:
                graph.checkpoints.restore(sess, checkpoint)
                monitor.resumed(start_step, checkpoint, dropped)
            else:
                initialise(sess, graph, config, monitor)
            handles = graph.feed.start(sess)
            monitor.start(sess, handles[1], start_step)
            monitor.log(placements.summary_line(placement, config.replicas, config.train.learnrate))
            monitor.log(recipe_line(config))
            monitor.log(backend_line())
            lag_warning = batch_norm_lag(config)
            if lag_warning:
                monitor.log(lag_warning)
            graph.checkpoints.begin(sess, folder, run_state, monitor.log, restored_from=checkpoint)
            code = _loop(sess, graph, config, folder, handles, monitor, stop, start_step, total, chief)
    except tf.errors.OpError as error:
        raise graph_error(error, graph) from None
    finally:
        monitor.close()
    return code


def _loop(sess, graph, config, folder, handles, monitor, stop, step, total, chief):
    train_feed = {graph.feed.handle: handles[0], graph.is_training: True}
    best = runfolder.read_best(folder) if chief else None
    saves, last_good = graph.checkpoints, None
    fetches = graph.step.fetches
    try:
        if chief and step and step % config.train.save_every == 0:
            # killed between latest/'s save and the milestone's of the same step: the milestone is still owed
            last_good = saves.save_milestone(sess, step)
        while step < total:
            tic = time.time()
            values = sess.run(fetches, train_feed)
            step += 1  # == global_step after the update (fetching global_step alongside would race it)
            if not math.isfinite(values["loss"]):
                raise NonFiniteWeights("loss is %s at step %d" % (values["loss"], step))
            monitor.after_step(sess, step, values["loss"], values["learning_rate"], values["confusion"],
                               time.time() - tic)
            if chief and (step % config.train.val_every == 0 or step == total):
                monitor.validate(sess, step)
                last_good = saves.save_latest(sess, step)
                if config.train.keep_best:
                    best = keep_if_best(sess, graph, folder, step, handles[2], monitor, best)
            if chief and (step % config.train.save_every == 0 or step == total):
                last_good = saves.save_milestone(sess, step)
            if stop.signal is not None:
                last_good = saves.save_milestone(sess, step) if chief else None
                code = exit_codes.stopped_by(stop.signal)
                monitor.log("stopped by signal %d at step %d (exit code %d); checkpoint %s; continue with: "
                            "python train.py --resume %s" % (stop.signal, step, code, last_good, folder))
                return code
        if chief:
            saves.save_milestone(sess, step)  # the run's last step is a milestone (no-op when saved above)
    except NonFiniteWeights as problem:
        kept = last_good or (runfolder.checkpoint_candidates(folder) or ["none saved yet"])[0]
        monitor.log("%s: stopping without saving. The last good checkpoint is kept: %s. Try a lower --learnrate, "
                    "or check the data with utils/label_checker.py." % (problem, kept))
        return exit_codes.NAN
    monitor.log("done: %d steps, run folder %s" % (step, folder))
    return exit_codes.FINISHED


# The ops through which the data reaches the graph: an error raised in one of them came from reading or
# decoding records (the dataset's functions run inside them).
READER_OPS = ("IteratorGetNext", "IteratorGetNextSync", "IteratorGetNextAsOptional", "OptionalGetValue")
# What TensorFlow says when the backend has no kernel for an op's settings (Eigen: dilated backward passes).
MISSING_KERNEL = ("Current CPU implementations do not yet support", "No OpKernel was registered",
                  "not supported on CPU", "only supports NHWC")


def graph_error(error, graph):
    """RunFailed for an error a session run raised: a damaged record file (exit_codes.DATA) only when reading
    records failed, otherwise the op that failed and TensorFlow's message (and, for a kernel this backend lacks,
    what to set)."""
    op = getattr(error, "op", None)
    if isinstance(error, tf.errors.DataLossError) or op is None or op.type in READER_OPS:
        return data_error(error, graph, only_if_damaged=op is None and not isinstance(error, tf.errors.DataLossError))
    message = _first_line(error)
    line = "training stopped: op %s (%s) failed: %s" % (op.name, op.type, message)
    if any(marker in message for marker in MISSING_KERNEL):
        line += " | this backend lacks that kernel (%s; dilated convolutions: %s)%s" % (
            backend.describe(), native_atrous.route().name,
            ": set TF_ENABLE_ONEDNN_OPTS=1" if not backend.onednn_enabled() else "")
    return RunFailed(line, exit_codes.USAGE)


def data_error(error, graph, only_if_damaged=False):
    """RunFailed for a damaged record file (exit_codes.DATA): which one, and the command that remakes it.
    only_if_damaged: the error may have another cause, so it is blamed on the data only when a file is found
    damaged."""
    if graph is None:
        return RunFailed("the data cannot be read: %s" % _first_line(error), exit_codes.DATA)
    files = list(graph.train_files) + list(graph.val_files)
    damaged = first_damaged_file(files)
    if only_if_damaged and not damaged:
        return RunFailed("training stopped: %s" % _first_line(error), exit_codes.USAGE)
    where = "%s (%s)" % damaged if damaged else "one of %s" % ", ".join(files)
    return RunFailed("a record file is damaged (truncated or overwritten?): %s; convert the dataset again with "
                     "utils/tfrecordify.py" % where, exit_codes.DATA)


def _first_line(error):
    """TensorFlow's own words: a graph execution error wraps them in "Graph execution error:", the node's
    stack ("Detected at node ...") and "Node: '...'"; they follow the last of those."""
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines() if line.strip()]
    if lines and lines[0].startswith("Graph execution error"):
        nodes = [i for i, line in enumerate(lines) if line.startswith("Node: ")]
        lines = lines[nodes[-1] + 1:] if nodes else lines[1:]
    lines = [line for line in lines if not line.startswith("[[")] or lines or [str(error)]
    return lines[0][:300]


# ----------------------------------------------------------------------------- pieces
def recipe_line(config):
    """One runlog line: optimizer, schedule, loss, class weights, augmentation, precision (and why)."""
    train, data = config.train, config.data
    weights = "none" if train.class_weight_values is None else "%s [%s]" % (
        train.class_weights, ", ".join("%.3g" % w for w in train.class_weight_values))
    return ("recipe: %s lr %.2e, %s schedule, warm-up %d steps | loss %s%s%s | class weights %s | augmentation %s"
            " | precision %s (%s)"
            % (train.optimizer, config.effective_learnrate, train.lr_schedule, train.warmup_steps, train.loss,
               " (gamma %g)" % train.focal_gamma if "focal" in train.loss_terms else "",
               ", hardest %g of pixels" % train.ohem_top_k if train.ohem_top_k < 1 else "", weights,
               "off" if not data.augment else "scale %s, flip %s, colour jitter %g%s"
               % (data.scale_range, data.flip, data.color_jitter, ", %dx%d windows" % (data.crop, data.crop)
                  if data.crop else ""), train.precision, train.precision_reason))


def backend_line():
    """One runlog line: which kernels run (oneDNN or Eigen, and who decided) and how dilated convs are built."""
    return "backend: %s | dilated convolutions: %s" % (backend.describe(), native_atrous.route().reason)


def batch_norm_lag(config):
    """A warning when the run is too short for its batch-norm moving averages: after N steps a share decay**N
    of them is still the initial value, and test.py (inference mode) uses them, so scores lag the weights."""
    decay = (config.model.batch_norm_decay if config.model.batch_norm_decay is not None
             else config.model.decoder_class.default_batch_norm_decay)
    stale = decay ** config.train.total_steps
    if stale <= 0.05:
        return None
    return ("WARNING after %d steps %.0f %% of the batch-norm moving averages (decay %g) are still their initial "
            "values, so the scores of this run's checkpoints will lag its training; --batch_norm_decay %g suits a "
            "run this short" % (config.train.total_steps, 100 * stale, decay,
                                max(0.5, min(0.99, round(1 - 3.0 / config.train.total_steps, 2)))))


def keep_if_best(sess, graph, folder, step, full_val_handle, monitor, best):
    """--keep_best: score the whole validation set; a better mIoU replaces the checkpoint in best/."""
    miou, images = monitor.validate_full(sess, full_val_handle, graph.feed.iterators[2].initializer, step)
    if best is not None and miou <= best["mIoU"]:
        return best
    path = graph.checkpoints.save_best(sess, step)
    best = {"step": step, "mIoU": miou, "images": images, "checkpoint": os.path.relpath(path, folder)}
    runfolder.write_best(folder, best)
    monitor.log("step %d | new best full-val mIoU %.3f (%d images): kept in %s" % (step, miou, images, path))
    return best


def initialise(sess, graph, config, monitor):
    """A new run's weights: every matching variable of --init_from, or the encoder's ImageNet checkpoint."""
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
        model = graph.step.model
        report = checkpoints.restore_registry_entry(sess, config.train.pretrained, model.encoder,
                                                    net_args=model.encoder_args,
                                                    ema=config.train.pretrained_ema != "off")
        restored = set(report.restored)
        monitor.log("restored %d encoder variables from %s%s:" % (len(restored), config.train.pretrained,
                                                                   report.ema_text()))
        monitor.log_names("  restored ", sorted(restored))
        monitor.log_names("  new      ", sorted(v.op.name for v in tf.global_variables()
                                                 if v.op.name not in restored))
        if report.unused_head:
            monitor.log("  the checkpoint's ImageNet classifier is not used: %s" % ", ".join(report.unused_head))
        if report.unexpected:
            monitor.log("  WARNING %d checkpoint variables of %s match nothing in the graph: %s"
                        % (len(report.unexpected), report.scope, ", ".join(report.unexpected)))
    else:
        monitor.log("training from scratch (%s): all variables are new" % scratch_reason(config.model.encoder))
    unused = graph.step.unused_variables
    if unused:
        monitor.log("%d variables the loss does not reach (beyond --encoder_stride %s) are saved but not trained:"
                    % (len(unused), config.model.encoder_stride))
        monitor.log_names("  unused   ", sorted(v.op.name for v in unused))

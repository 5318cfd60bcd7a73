"""Train a segmentation net: `python train.py --basenet resnet_v1_18 --extended_arch LinkNet --dataset_family camvid &`

Reads top to bottom like the data path: tfrecords -> tf.data (one feedable
iterator for training and the quarter-validation monitor) -> feature extractor
-> decoder -> loss / metrics -> run folder (runargs, runlog, checkpoints,
TensorBoard events) under tmp/<YYYYMMDD>_<NETNAME>__<#RUN>.

Nothing is lost: SIGINT/SIGTERM save a final checkpoint and exit cleanly,
`--resume <run folder>` continues at the same step, epoch and learning-rate
schedule, and a NaN/Inf loss stops the run keeping the last good checkpoint.
"""
import argparse
import math
import os
import signal
import sys
import time

from utils.flags import add_bool_flag, add_gpu_flag, apply_gpu_flag_early

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_RUNS_ROOT = os.path.join(HERE, "tmp")

# Settings that define the model and data; --resume takes them from runargs, never from the command line.
RUN_SETTINGS = ("basenet", "extended_arch", "trainable_upsampling", "fcn16", "fcn8", "fcn4", "zero_init_skips",
                "output_stride", "encoder_stride", "batch_size", "epochs", "max_steps", "learnrate", "momentum", "difflr", "decaylr",
                "pixels", "datapath", "num_classes", "total_train_images", "dataset_family", "modelspath",
                "pretrained", "weight_decay", "batch_norm_decay", "seed", "val_every", "val_fraction", "save_every", "augment",
                "aux_loss_weight", "xla", "mixed_precision", "sync_batch_norm", "lr_scaling")

EXIT_NAN = 3


def build_parser():
    import arch
    import nets
    from utils import datasets, distribute
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    net = parser.add_argument_group("net")
    net.add_argument("--basenet", default="resnet_v1_18", choices=nets.NAMES, help="feature extractor (encoder)")
    net.add_argument("--extended_arch", default="FCN",
                     help="decoder: %s" % ", ".join(arch.decoder_names()))
    add_bool_flag(net, "trainable_upsampling", False, "learnable x2 upsampling, initialised to bilinear")
    add_bool_flag(net, "fcn16", True, "FCN: stride-16 skip connection")
    add_bool_flag(net, "fcn8", False, "FCN: stride-8 skip connection")
    add_bool_flag(net, "fcn4", False, "FCN: stride-4 skip connection")
    add_bool_flag(net, "zero_init_skips", False, "FCN: start skip scores at zero (VGG-FCN16 needs it)")
    net.add_argument("--output_stride", type=int, default=None, choices=[8, 16, 32],
                     help="dilate the encoder beyond this stride (atrous convolutions)")
    net.add_argument("--encoder_stride", type=int, default=32, choices=[8, 16, 32],
                     help="use the encoder only up to this stride's tap (later blocks are not computed)")
    net.add_argument("--aux_loss_weight", type=float, default=0.4, help="weight of auxiliary heads (PSPNet)")

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--batch_size", type=int, default=16)
    opt.add_argument("--epochs", type=float, default=45)
    opt.add_argument("--max_steps", type=int, default=None, help="stop after this many steps (overrides --epochs)")
    opt.add_argument("--learnrate", type=float, default=3e-4, help="Adam learning rate")
    opt.add_argument("--momentum", type=float, default=0.9, help="Adam beta1")
    opt.add_argument("--difflr", type=float, default=1.0, help="decoder learning rate = learnrate * difflr")
    add_bool_flag(opt, "decaylr", False, "divide the rate by 10 at 1/3 and 2/3 of training")
    opt.add_argument("--weight_decay", type=float, default=1e-4, help="L2 weight decay")
    opt.add_argument("--batch_norm_decay", type=float, default=None,
                     help="moving-average decay of batch norm statistics (default: each net's slim value, "
                          "~0.997; use ~0.9 for runs of a few hundred steps)")
    opt.add_argument("--seed", type=int, default=None, help="random seed (graph, data order, augmentation)")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset_family", default="camvid", choices=datasets.NAMES)
    data.add_argument("--datapath", default="/data", help="root of <dataset_family>/training.tfrecords")
    data.add_argument("--pixels", type=int, default=512, help="larger side scaled to this, padded square; 0 = native")
    data.add_argument("--num_classes", type=int, default=None, help="default: the dataset's")
    data.add_argument("--total_train_images", type=int, default=None, help="default: the dataset's")
    add_bool_flag(data, "augment", True, "random flip, stretch and crop")

    init = parser.add_argument_group("initialisation")
    init.add_argument("--modelspath", default="/data/models", help="folder of ImageNet slim checkpoints")
    init.add_argument("--pretrained", default=None,
                      help="encoder checkpoint; default <modelspath>/<net's file>; 'none' = from scratch")

    run = parser.add_argument_group("run")
    run.add_argument("--runs_root", default=DEFAULT_RUNS_ROOT, help="where run folders are created")
    run.add_argument("--resume", default=None, metavar="RUN_FOLDER", help="continue a run where it stopped")
    run.add_argument("--val_every", type=int, default=200, help="steps between quarter-validation monitors")
    run.add_argument("--val_fraction", type=float, default=0.25, help="share of the val set per monitor")
    run.add_argument("--save_every", type=int, default=2000, help="keep a checkpoint every N steps")
    run.add_argument("--log_every", type=int, default=20, help="steps between runlog lines")
    run.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads (0 = TF default)")
    add_bool_flag(run, "xla", False, "XLA JIT compilation of the graph")
    add_bool_flag(run, "mixed_precision", False, "float16 compute with loss scaling (GPUs)")
    add_gpu_flag(run)
    run.add_argument("--verbose", action="store_true", help="show TensorFlow's own log")
    distribute.add_flags(parser)
    return parser


# ----------------------------------------------------------------------------- settings
def resolve_settings(args):
    """Fill defaults the data knows, or take everything from runargs when resuming."""
    from utils import distribute, input_pipeline, runfolder
    if args.resume:
        saved = runfolder.read_runargs(args.resume)
        settings = dict(saved)
        settings.update(resume=args.resume, runs_root=args.runs_root, log_every=args.log_every,
                        threads=args.threads, gpu=args.gpu, **distribute.execution_flags(args))
        return settings
    settings = {key: getattr(args, key) for key in RUN_SETTINGS}
    settings.update(runs_root=args.runs_root, log_every=args.log_every, threads=args.threads, gpu=args.gpu,
                    resume=None, **distribute.execution_flags(args))
    # A missing tfrecords file stops here with the tfrecordify command that makes it.
    for split in ("training", "validation"):
        input_pipeline.dataset_files(args.datapath, args.dataset_family, split)
    info = input_pipeline.load_dataset_info(args.datapath, args.dataset_family)
    splits = info.get("splits", {})
    settings["num_classes"] = args.num_classes or info["num_classes"]
    settings["total_train_images"] = args.total_train_images or info.get("total_train_images") or \
        _count(input_pipeline.dataset_files(args.datapath, args.dataset_family, "training"))
    settings["num_val_images"] = splits.get("validation", {}).get("records") or \
        _count(input_pipeline.dataset_files(args.datapath, args.dataset_family, "validation"))
    settings["ignore_label"] = info["ignore_label"]
    settings["class_names"] = info["class_names"]
    settings["palette"] = info["palette"]
    if args.seed is None:
        settings["seed"] = distribute.default_seed(args)
    settings["pretrained"] = resolve_pretrained(args)
    settings["total_steps"] = total_steps(settings)
    settings["net_name"] = net_name(settings)
    return settings


def _count(files):
    from utils.tfrecord_io import count_records
    return count_records(files)


def total_steps(settings):
    if settings.get("max_steps"):
        return int(settings["max_steps"])
    return max(1, int(math.ceil(settings["epochs"] * settings["total_train_images"] / settings["batch_size"])))


def net_name(settings):
    from utils import runfolder
    import arch
    decoder = arch.get_arch_class(settings["extended_arch"]).name
    return runfolder.net_name(settings["basenet"], decoder, settings["fcn16"], settings["fcn8"], settings["fcn4"])


def resolve_pretrained(args):
    """Checkpoint path, or None for --pretrained none; a missing file stops with what to do."""
    import nets
    if args.pretrained is not None and args.pretrained.lower() in ("none", "scratch", ""):
        return None
    path = args.pretrained or os.path.join(args.modelspath, nets.get(args.basenet).checkpoint)
    if not (os.path.exists(path) or os.path.exists(path + ".index")):
        expected = nets.get(args.basenet).checkpoint
        raise SystemExit(
            "error: pretrained checkpoint for %s not found: %s\n"
            "  expected the TF-Slim ImageNet checkpoint '%s' under --modelspath %s\n"
            "  (download it from the TF-Slim model zoo, or pass --pretrained /path/to/file.ckpt),\n"
            "  or pass --pretrained none to train from scratch."
            % (args.basenet, path, expected, args.modelspath))
    return path


# ----------------------------------------------------------------------------- graph
class TrainGraph:
    """Everything the loop runs: one graph, a feedable iterator over train and val data."""

    def __init__(self, settings, placement=None):
        import nets
        from utils import distribute, input_pipeline, training
        from utils.tf1 import tf

        s = settings
        tf.set_random_seed(s["seed"])
        fe = nets.get(s["basenet"])
        common = dict(preprocessing=fe.preprocessing, pixels=s["pixels"], batch_size=s["batch_size"],
                      ignore_label=s["ignore_label"])
        train_files = input_pipeline.dataset_files(s["datapath"], s["dataset_family"], "training")
        val_files = input_pipeline.dataset_files(s["datapath"], s["dataset_family"], "validation")
        train_data = input_pipeline.make_dataset(train_files, training=True, augment=s["augment"],
                                                 seed=s["seed"], repeat=True, drop_remainder=True, **common)
        # The monitor's data: shuffled and repeating, so each monitor run sees another random subset.
        val_data = input_pipeline.make_dataset(val_files, training=True, augment=False, seed=s["seed"] + 1,
                                               repeat=True, drop_remainder=False, **common)
        self.feed = input_pipeline.make_feedable_iterator(train_data, val_data)
        self.handle = self.feed.handle
        batch = self.feed.next_batch
        self.images, self.labels = batch["image"], batch["label"]
        self.is_training = tf.placeholder_with_default(False, [], name="is_training")

        replicated = placement is not None and placement.replicated
        step = (distribute.ReplicatedTrainStep(placement, self.images, self.labels, s) if replicated
                else training.TrainStep(self.images, self.labels, self.is_training, s))
        # What the quarter-validation monitor runs: this graph, or the replicated step's single-device copy.
        self.monitor_graph = step.monitor_view(self) if replicated else self
        self.model, self.logits, self.loss, self.confusion = step.model, step.logits, step.loss, step.confusion
        self.predictions, self.global_step = step.predictions, step.global_step
        self.learning_rate, self.train_op = step.learning_rate, step.train_op
        self.unused_variables = getattr(step, "unused_variables", [])
        self.init = tf.global_variables_initializer()
        self.latest_saver = tf.train.Saver(max_to_keep=1, name="latest_saver")
        self.milestone_saver = tf.train.Saver(max_to_keep=None, name="milestone_saver")


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


def train(settings):
    from utils import distribute, runfolder, training
    from utils.monitor import Monitor
    from utils.tf1 import tf

    placement = distribute.resolve_placement(settings)
    settings = dict(settings, **distribute.describe(placement, settings))
    chief = placement.is_chief  # only the chief writes the run folder; other workers' monitors write to scratch
    folder = (settings["resume"] or runfolder.create(settings["runs_root"], settings["net_name"])) if chief \
        else distribute.scratch_folder()
    if chief and not settings["resume"]:
        runfolder.write_runargs(folder, {k: v for k, v in settings.items() if k not in ("resume",)})
    graph = TrainGraph(settings, placement)
    config = placement.session_config(
        training.session_config(settings["threads"], settings.get("xla"), settings.get("mixed_precision")))

    monitor = Monitor(folder, settings, graph.monitor_graph)
    stop = StopRequest()
    with tf.Session(placement.session_target(config), config=config) as sess:
        sess.run(graph.init)
        if placement.replicated and not settings["resume"]:
            distribute.start_like_single_device(sess, graph.latest_saver, lambda: TrainGraph(settings))
        start_step = restore(sess, graph, settings, folder, monitor)
        handles = graph.feed.start(sess)
        train_feed = {graph.handle: handles[0], graph.is_training: True}
        monitor.start(sess, handles[1], start_step)
        monitor.log(distribute.summary_line(placement, settings))
        step = start_step
        last_good = None
        while step < settings["total_steps"]:
            tic = time.time()
            _, loss, confusion, lr = sess.run(
                [graph.train_op, graph.loss, graph.confusion, graph.learning_rate], train_feed)
            step += 1  # == global_step after the update (fetching global_step alongside would race it)
            if not math.isfinite(loss):
                monitor.log("loss is %s at step %d: stopping. The last good checkpoint is kept: %s. "
                            "Try a lower --learnrate, or check the data with utils/label_checker.py."
                            % (loss, step, last_good or "none saved yet"))
                monitor.close()
                return EXIT_NAN
            monitor.after_step(sess, step, loss, lr, confusion, time.time() - tic)
            if chief and (step % settings["val_every"] == 0 or step == settings["total_steps"]):
                monitor.validate(sess, step)
                last_good = save(sess, graph, folder, step, settings, latest=True)
            if chief and step % settings["save_every"] == 0:
                last_good = save(sess, graph, folder, step, settings, latest=False)
            if stop.signal is not None:
                last_good = save(sess, graph, folder, step, settings, latest=True) if chief else None
                monitor.log("stopped by signal %d at step %d; checkpoint %s; continue with: "
                            "python train.py --resume %s" % (stop.signal, step, last_good, folder))
                monitor.close()
                return 0
        if chief:
            save(sess, graph, folder, step, settings, latest=True)
        monitor.log("done: %d steps, run folder %s" % (step, folder))
        monitor.close()
    return 0


def restore(sess, graph, settings, folder, monitor):
    """Resume from the run folder, or initialise the encoder from its ImageNet checkpoint."""
    from nets import checkpoints
    from utils import runfolder
    if settings["resume"]:
        path = runfolder.checkpoint_path(settings["resume"])  # == folder, except on a non-chief worker
        graph.latest_saver.restore(sess, path)
        step = int(sess.run(graph.global_step))
        monitor.log("resumed from %s at step %d" % (path, step))
        return step
    if settings["pretrained"]:
        report = checkpoints.restore_feature_extractor(sess, settings["pretrained"], graph.model.fe.scope)
        restored = set(report.restored)
        monitor.log("restored %d encoder variables from %s:" % (len(restored), settings["pretrained"]))
        monitor.log_names("  restored ", sorted(restored))
        monitor.log_names("  new      ", _new_variable_names(restored))
    else:
        monitor.log("training from scratch (--pretrained none): all variables are new")
    if graph.unused_variables:
        monitor.log("%d variables the loss does not reach (beyond --encoder_stride %s) are saved but not trained:"
                    % (len(graph.unused_variables), settings.get("encoder_stride")))
        monitor.log_names("  unused   ", sorted(v.op.name for v in graph.unused_variables))
    return 0


def _new_variable_names(restored):
    from utils.tf1 import tf
    return sorted(v.op.name for v in tf.global_variables() if v.op.name not in restored)


def save(sess, graph, folder, step, settings, latest):
    from utils import runfolder
    if latest:
        directory = os.path.join(folder, runfolder.LATEST_DIR)
        os.makedirs(directory, exist_ok=True)
        return graph.latest_saver.save(sess, os.path.join(directory, runfolder.CKPT_PREFIX), global_step=step,
                                       write_meta_graph=False)
    return graph.milestone_saver.save(sess, os.path.join(folder, runfolder.CKPT_PREFIX), global_step=step,
                                      write_meta_graph=False)


def main(argv=None):
    apply_gpu_flag_early(argv)  # before anything imports TensorFlow
    args = build_parser().parse_args(argv)
    try:
        settings = resolve_settings(args)
    except FileNotFoundError as error:  # missing tfrecords / run folder: say what to run, no traceback
        print("error: %s" % error, file=sys.stderr)
        return 2
    return train(settings)


if __name__ == "__main__":
    sys.exit(main())

"""Data-parallel training on tf.distribute, inside train.py's TF1 graph-mode loop.

Where things run
  * One replica (one GPU, or the CPU): nothing here builds anything; train.py
    builds its single-device graph exactly as before.
  * Several replicas on one machine (`--num_gpus N`, `--gpu 0,1,...`, or
    `--num_cpu_replicas N`, N logical CPU devices for development and tests):
    `MirroredStrategy`, one replica per device.
  * Several machines (`--worker_hosts h:p,h:p --task_index i`, or TF_CONFIG):
    `MultiWorkerMirroredStrategy` (collective all-reduce over gRPC); each
    worker's tf.compat.v1 Session talks to its own `tf.distribute.Server`.
    Only the chief (task 0) writes the run folder.

The replicated step (`ReplicatedTrainStep`)
  The input pipeline is untouched: every worker reads the global --batch_size
  batch (the same seed gives the same batches everywhere) and replica r trains
  on rows [r*b, (r+1)*b), sliced on the host CPU.  A replica's loss is its
  share of the global batch's loss (its pixels' cross-entropy divided by the
  *global* count of valid pixels), and only replica 0 carries the weight
  decay, so the SUM all-reduce of gradients that tf.compat.v1 optimizers do
  under a strategy yields exactly the single-device gradient of the global
  batch.  Batch norm normalises with each replica's own statistics (the
  moving averages take the mean over replicas), or with `--sync_batch_norm`
  with the global batch's, computed by an all-reduce: a replicated run is then
  the single-device run, up to float rounding.

Why the step does not reuse `ReplicaContext.all_reduce`: in graph mode its
custom gradient walks from the reduced tensor back into the *other* replicas'
subgraphs and fails to find their variable copies by name.  `all_sum` below
cuts that walk with stop_gradient and supplies the gradient itself.  The
replicated step is built with a Python `is_training=True` (merge_call cannot
run inside tf.cond branches), so the quarter-validation monitor gets its own
non-replicated inference copy of the model (reuse=True) on the first device.

Checkpoints hold plain variable names (mirrored variables save their primary
copy), so they restore into test.py and into `--resume` with any replica count.
"""
import atexit
import collections
import contextlib
import functools
import os
import shutil
import tempfile
import threading
import time

from utils.flags import add_bool_flag
from utils.tf1 import slim, tf

LR_SCALING = ("none", "linear")
# Where to run: always from the command line, also when resuming (so a run can move to another replica count).
# (--sync_batch_norm and --lr_scaling define the training: train.py's RUN_SETTINGS, kept in runargs.)
EXECUTION_FLAGS = ("num_gpus", "num_cpu_replicas", "worker_hosts", "task_index")
# tf.nn.fused_batch_norm raises smaller epsilons to this (a cuDNN limit); synchronised batch norm does the same.
FUSED_MIN_EPSILON = 1.001e-5


# ----------------------------------------------------------------------------- flags
def add_flags(parser):
    group = parser.add_argument_group("distribution (see docs/scaling_out.md)")
    group.add_argument("--num_gpus", type=int, default=None,
                       help="replicas on this machine's GPUs (default: every visible GPU, or the CPU)")
    group.add_argument("--num_cpu_replicas", type=int, default=0,
                       help="development/testing: mirror over N logical CPU devices")
    add_bool_flag(group, "sync_batch_norm", False, "batch-norm statistics over the global batch, not each replica's")
    group.add_argument("--lr_scaling", default="none", choices=LR_SCALING,
                       help="linear: --learnrate x replicas (Goyal et al.; when --batch_size grew with them)")
    group.add_argument("--worker_hosts", default=None,
                       help="multi-machine: host:port of every worker, comma separated (or set TF_CONFIG)")
    group.add_argument("--task_index", type=int, default=None, help="multi-machine: this worker's index; 0 = chief")


def execution_flags(args):
    return {key: getattr(args, key) for key in EXECUTION_FLAGS}


def default_seed(args):
    """A time seed for single-machine runs; workers must share a seed, so multi-worker runs need --seed."""
    if resolve_cluster(args.worker_hosts, args.task_index) is not None:
        raise SystemExit("error: a multi-worker run needs an explicit --seed: every worker must read "
                         "the same batches and start from the same weights")
    return int(time.time()) % 100000


# ----------------------------------------------------------------------------- cluster
Cluster = collections.namedtuple("Cluster", "spec task_type task_index")


def resolve_cluster(worker_hosts=None, task_index=None):
    """Cluster from --worker_hosts/--task_index, else from TF_CONFIG; None for a single machine."""
    if worker_hosts:
        hosts = [host.strip() for host in worker_hosts.split(",") if host.strip()]
        if task_index is None or not 0 <= task_index < len(hosts):
            raise SystemExit("error: --worker_hosts lists %d workers: pass --task_index 0..%d"
                             % (len(hosts), len(hosts) - 1))
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({"worker": hosts}), task_type="worker", task_id=task_index)
    elif os.environ.get("TF_CONFIG"):
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    else:
        return None
    spec = resolver.cluster_spec().as_dict()
    if set(spec) - {"chief", "worker"}:
        raise SystemExit("error: only 'chief' and 'worker' jobs are supported, got %s" % sorted(spec))
    if sum(len(tasks) for tasks in spec.values()) < 2:
        return None
    return Cluster(spec, resolver.task_type, int(resolver.task_id))


def _is_chief(cluster):
    if cluster.task_type == "chief":
        return True
    return cluster.task_type == "worker" and cluster.task_index == 0 and "chief" not in cluster.spec


def scratch_folder():
    """Where a non-chief worker's monitor writes (runlog, events): a temporary folder removed at exit."""
    folder = tempfile.mkdtemp(prefix="segmentor_worker_")
    atexit.register(shutil.rmtree, folder, True)
    return folder


# ----------------------------------------------------------------------------- placement
class Placement:
    """Where one run's replicas live, from the flags (and TF_CONFIG); builds the strategy on first use."""

    def __init__(self, local_devices, cluster=None, cpu_replicas=0):
        self.local_devices = tuple(local_devices)
        self.cluster = cluster
        self.cpu_replicas = cpu_replicas
        self._strategy = None
        self._server = None

    @property
    def num_workers(self):
        return 1 if self.cluster is None else sum(len(tasks) for tasks in self.cluster.spec.values())

    @property
    def num_replicas(self):
        return self.num_workers * len(self.local_devices)

    @property
    def replicated(self):
        return self.num_replicas > 1

    @property
    def is_chief(self):
        return self.cluster is None or _is_chief(self.cluster)

    @property
    def host_device(self):
        """This worker's CPU: where the global batch is sliced into replica batches."""
        if self.cluster is None:
            return "/device:CPU:0"
        return "/job:%s/task:%d/device:CPU:0" % (self.cluster.task_type, self.cluster.task_index)

    @property
    def strategy(self):
        if self._strategy is None:
            self._strategy = self._make_strategy()
        return self._strategy

    def _make_strategy(self):
        if self.cluster is not None:
            gpus = sum("GPU" in device for device in self.local_devices)
            resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
                tf.train.ClusterSpec(self.cluster.spec), task_type=self.cluster.task_type,
                task_id=self.cluster.task_index, num_accelerators={"GPU": gpus} if gpus else None)
            return tf.distribute.experimental.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        if self.cpu_replicas:  # NCCL needs GPUs; CPU copies reduce on one device
            return tf.distribute.MirroredStrategy(self.local_devices,
                                                  cross_device_ops=tf.distribute.ReductionToOneDevice())
        return tf.distribute.MirroredStrategy(self.local_devices)

    def session_config(self, config):
        """The run's ConfigProto with what the placement needs: N CPU devices, or the collective group."""
        config = _copy_config(config)
        if self.cpu_replicas:
            config.device_count["CPU"] = self.cpu_replicas
        if self.cluster is not None:
            self.strategy.configure(session_config=config)
        return config

    def session_target(self, config):
        """'' (in-process) or, multi-worker, this worker's gRPC server (started once)."""
        if self.cluster is None:
            return ""
        if self._server is None:
            self._server = tf.distribute.Server(tf.train.ClusterSpec(self.cluster.spec),
                                                job_name=self.cluster.task_type,
                                                task_index=self.cluster.task_index, config=config, start=True)
        return self._server.target

    def describe(self):
        devices = ", ".join("%s:%s" % (spec.device_type, spec.device_index)
                            for spec in map(tf.DeviceSpec.from_string, self.local_devices))
        if self.cluster is None:
            return "%d replica%s (%s)" % (self.num_replicas, "s" if self.replicated else "", devices)
        return "%d replicas: %d workers x (%s), this is %s %d%s" % (
            self.num_replicas, self.num_workers, devices, self.cluster.task_type, self.cluster.task_index,
            " (chief)" if self.is_chief else "")


def _copy_config(config):
    copied = tf.ConfigProto()
    copied.CopyFrom(config)
    return copied


def visible_gpu_count():
    return len(tf.config.list_physical_devices("GPU"))


def resolve_placement(settings):
    """Placement from the execution flags in settings (num_gpus, num_cpu_replicas, worker_hosts, task_index)."""
    cluster = resolve_cluster(settings.get("worker_hosts"), settings.get("task_index"))
    cpu_replicas = int(settings.get("num_cpu_replicas") or 0)
    if cpu_replicas > 1:
        if cluster is not None:
            raise SystemExit("error: --num_cpu_replicas is for single-machine development runs, "
                             "not with --worker_hosts / TF_CONFIG")
        return Placement(["/device:CPU:%d" % i for i in range(cpu_replicas)], cpu_replicas=cpu_replicas)
    visible = visible_gpu_count()
    wanted = settings.get("num_gpus")
    gpus = visible if wanted is None else int(wanted)
    if gpus > visible:
        raise SystemExit("error: --num_gpus %d but %d GPU%s visible (see --gpu / CUDA_VISIBLE_DEVICES)"
                         % (gpus, visible, " is" if visible == 1 else "s are"))
    if cluster is not None:
        prefix = "/job:%s/task:%d" % (cluster.task_type, cluster.task_index)
        devices = ["%s/device:GPU:%d" % (prefix, i) for i in range(gpus)] or [prefix + "/device:CPU:0"]
        return Placement(devices, cluster=cluster)
    return Placement(["/device:GPU:%d" % i for i in range(gpus)] if gpus else ["/device:CPU:0"])


def describe(placement, settings):
    """Settings the replica count decides; train.py logs them in runargs and the runlog."""
    replicas = placement.num_replicas
    batch = int(settings["batch_size"])
    if batch % replicas:
        raise SystemExit("error: --batch_size %d (the global batch) does not split over %d replicas; "
                         "use a multiple of %d" % (batch, replicas, replicas))
    if settings.get("mixed_precision") and replicas > 1:
        raise SystemExit("error: --mixed_precision (its dynamic loss scaling) runs on a single device only")
    rule = settings.get("lr_scaling") or "none"
    return {"num_replicas": replicas, "num_workers": placement.num_workers,
            "global_batch_size": batch, "per_replica_batch_size": batch // replicas, "lr_scaling": rule,
            "effective_learnrate": settings["learnrate"] * (replicas if rule == "linear" else 1),
            "steps_per_epoch": settings["total_train_images"] / float(batch),
            "sync_batch_norm": bool(settings.get("sync_batch_norm"))}


def summary_line(placement, settings):
    """One runlog line: replicas, global and per-replica batch, learning-rate rule, steps per epoch."""
    return ("replicas: %s | global batch %d = %d x %d per replica | learning rate %.2e (--learnrate %.2e, "
            "lr_scaling %s) | %.1f steps per epoch | batch norm %s" % (
                placement.describe(), settings["global_batch_size"], settings["num_replicas"],
                settings["per_replica_batch_size"], settings["effective_learnrate"], settings["learnrate"],
                settings["lr_scaling"], settings["steps_per_epoch"],
                "synchronised across replicas" if settings["sync_batch_norm"] and placement.replicated
                else "per replica" if placement.replicated else "single device"))


# ----------------------------------------------------------------------------- all-reduce
def _sum_across(strategy, *values):
    destinations = [v.device if isinstance(v, tf.Tensor) else v for v in values]
    return strategy.extended.batch_reduce_to(tf.distribute.ReduceOp.SUM, list(zip(values, destinations)))


def all_sum_no_gradient(tensors):
    """Sum of each tensor over all replicas, in replica context; every replica gets the totals."""
    context = tf.distribute.get_replica_context()
    return [tf.stop_gradient(t) for t in context.merge_call(_sum_across, args=tuple(tensors))]


def all_sum(tensors):
    """all_sum_no_gradient whose gradient is the all-sum of the incoming gradients (d total / d own part)."""
    @tf.custom_gradient
    def summed(*parts):
        def gradient(*upstream):
            return all_sum_no_gradient([tf.zeros_like(p) if g is None else g for p, g in zip(parts, upstream)])
        return all_sum_no_gradient(parts), gradient
    return list(summed(*tensors))


# ----------------------------------------------------------------------------- synchronised batch norm
def global_moments(x):
    """Mean and (biased) variance per channel over every replica's batch, and the global count.

    Stable in one all-reduce: each replica fills its row of an R x 2C table
    with its own mean and sum of squared deviations (zeros elsewhere), the
    all-sum gathers the table, and Chan et al.'s formula merges it.  Replicas
    hold equally many values (equal slices of one global batch).
    """
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync
    axes = list(range(x.shape.ndims - 1))
    channels = int(x.shape[-1])
    count = tf.cast(tf.size(x) // channels, tf.float32)
    local_mean = tf.reduce_mean(x, axes)
    local_m2 = tf.reduce_sum(tf.square(x - local_mean), axes)
    row = tf.one_hot(context.replica_id_in_sync_group, replicas)[:, None]
    table, = all_sum([row * tf.concat([local_mean, local_m2], 0)[None, :]])
    means, m2s = table[:, :channels], table[:, channels:]
    mean = tf.reduce_mean(means, 0)
    m2 = tf.reduce_sum(m2s, 0) + count * tf.reduce_sum(tf.square(means - mean), 0)
    total = count * replicas
    return mean, m2 / total, total


_UNSUPPORTED = {"batch_weights": None, "renorm": False, "adjustment": None, "zero_debias_moving_mean": False,
                "data_format": "NHWC"}
_IGNORED = ("fused", "renorm_clipping", "renorm_decay", "is_training")


def _replica_batch_norm(inputs, original, synchronised, **kwargs):
    """slim.batch_norm as a replica trains it; anything but training goes to slim itself.

    tf-slim takes its own fused path when updates_collections is a list (the
    nets), and a Keras layer when it is the UPDATE_OPS string (the decoders'
    arg scope).  That layer keeps its moving averages in on-read variables,
    whose every read outside the replicas (the chief's monitor, its Saver) is
    an all-reduce the other workers never join; so per-replica batch norm
    takes the fused path for both, with mirrored (locally read) averages, and
    synchronised batch norm mirrors them too.  Both paths average the unbiased
    batch variance, and so does `_batch_norm_training`.
    """
    if kwargs.get("is_training", True) is not True:
        return original(inputs, **kwargs)
    if not synchronised:
        if kwargs.get("updates_collections", tf.GraphKeys.UPDATE_OPS) is tf.GraphKeys.UPDATE_OPS:
            kwargs["updates_collections"] = [tf.GraphKeys.UPDATE_OPS]
        return original(inputs, **kwargs)
    for name, default in _UNSUPPORTED.items():
        if kwargs.get(name, default) != default:
            raise NotImplementedError("synchronised batch norm does not support %s=%r" % (name, kwargs[name]))
    return _batch_norm_training(inputs, **{k: v for k, v in kwargs.items() if k not in _UNSUPPORTED
                                          and k not in _IGNORED})


def _batch_norm_training(inputs, decay=0.999, center=True, scale=False, epsilon=0.001, activation_fn=None,
                         param_initializers=None, param_regularizers=None,
                         updates_collections=tf.GraphKeys.UPDATE_OPS, reuse=None, variables_collections=None,
                         outputs_collections=None, trainable=True, scope=None):
    """Batch norm over all replicas' batches, with the variables (names, initialisers, collections)
    of tf-slim's batch norm."""
    from tensorflow.python.training import moving_averages
    from tf_slim.layers import utils as slim_utils
    inputs = tf.convert_to_tensor(inputs)
    initializers, regularizers = param_initializers or {}, param_regularizers or {}
    with tf.variable_scope(scope, "BatchNorm", [inputs], reuse=reuse) as sc:
        shape = inputs.shape[-1:]

        def parameter(name, default_initializer, is_trainable):
            return slim.model_variable(name, shape=shape, dtype=tf.float32,
                                       initializer=initializers.get(name, default_initializer),
                                       regularizer=regularizers.get(name), trainable=is_trainable,
                                       collections=slim_utils.get_variable_collections(variables_collections, name))

        beta = parameter("beta", tf.zeros_initializer(), trainable) if center else None
        gamma = parameter("gamma", tf.ones_initializer(), trainable) if scale else None
        with tf.variable_scope(tf.get_variable_scope()) as local_scope:
            local_scope.set_partitioner(None)
            moving_mean = parameter("moving_mean", tf.zeros_initializer(), False)
            moving_variance = parameter("moving_variance", tf.ones_initializer(), False)
        x = tf.cast(inputs, tf.float32)
        mean, variance, count = global_moments(x)
        outputs = tf.nn.batch_normalization(x, mean, variance, beta, gamma, max(epsilon, FUSED_MIN_EPSILON))
        outputs = tf.cast(outputs, inputs.dtype)
        unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
        updates = [moving_averages.assign_moving_average(moving_mean, mean, decay, zero_debias=False),
                   moving_averages.assign_moving_average(moving_variance, unbiased, decay, zero_debias=False)]
        if updates_collections is None:
            with tf.control_dependencies(updates):
                outputs = tf.identity(outputs)
        else:
            for update in updates:
                tf.add_to_collections(updates_collections, update)
        if activation_fn is not None:
            outputs = activation_fn(outputs)
        return slim_utils.collect_named_outputs(outputs_collections, sc.name, outputs)


@contextlib.contextmanager
def replica_batch_norm(synchronised):
    """While open, `slim.batch_norm` with is_training=True is `_replica_batch_norm`: synchronised
    (statistics of all replicas' batches) or per replica, always with mirrored moving averages.

    The nets and decoders look `slim.batch_norm` up when they build (as
    normalizer_fn and in their arg scopes), so swapping the module attribute
    for a function under the same arg-scope key reaches every batch norm with
    its scoped settings and its usual variable names.  Build-time only.
    """
    import tf_slim
    from tf_slim.ops.arg_scope import arg_scope_func_key, current_arg_scope
    original = tf_slim.batch_norm
    key = arg_scope_func_key(original)

    def batch_norm(*args, **kwargs):
        scoped = dict(current_arg_scope().get(key, {}))
        scoped.update(kwargs)
        return _replica_batch_norm(*args, original=original, synchronised=synchronised, **scoped)

    batch_norm._key_op = key
    tf_slim.batch_norm = batch_norm
    try:
        yield
    finally:
        tf_slim.batch_norm = original


# ----------------------------------------------------------------------------- thread-safe arg scopes
class _PerThreadStack(threading.local):
    """A list per thread (the list protocol tf-slim uses); every thread starts from the creator's items."""

    def __init__(self, initial):  # threading.local runs __init__ again, with these arguments, in each thread
        self.items = list(initial)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    def append(self, item):
        self.items.append(item)

    def pop(self, *index):
        return self.items.pop(*index)


@contextlib.contextmanager
def per_thread_arg_scopes():
    """Give each thread its own tf-slim arg-scope stack while the replicas are built.

    tf-slim keeps the stack in one process-wide list, and MirroredStrategy builds
    the replicas in threads that take turns at every merge_call (each batch norm
    has one): a replica would resume under another replica's arg scopes (its
    end-point collections, for one).  Variable and name scopes are per thread
    in TensorFlow already.
    """
    from tf_slim.ops import arg_scope as arg_scope_module
    original = arg_scope_module._ARGSTACK
    arg_scope_module._ARGSTACK = _PerThreadStack(original)
    try:
        yield
    finally:
        arg_scope_module._ARGSTACK = original


# ----------------------------------------------------------------------------- the replicated step
MonitorView = collections.namedtuple("MonitorView", "handle is_training images labels confusion predictions")


class ReplicatedTrainStep:
    """training.TrainStep over a placement's strategy, on the same global batch tensors.

    loss, confusion: of the global batch (all-summed), as TrainStep's;
    train_op: one optimizer step on all replicas, batch-norm moving averages included;
    model, logits, predictions, val_confusion: the non-replicated inference copy for the monitor.
    """

    def __init__(self, placement, images, labels, settings):
        from utils import training
        self.placement, self.settings = placement, settings
        strategy = placement.strategy
        s = settings
        self.per_replica = s["batch_size"] // strategy.num_replicas_in_sync
        self._build_model = functools.partial(training.build_model, s)
        with strategy.scope():
            self.global_step = tf.train.get_or_create_global_step()
            self.learning_rate = training.learning_rate(self.global_step, s["effective_learnrate"],
                                                        s["total_steps"], s["decaylr"])
            before = set(tf.get_collection(tf.GraphKeys.UPDATE_OPS))
            with per_thread_arg_scopes(), replica_batch_norm(synchronised=bool(s.get("sync_batch_norm"))):
                loss, confusion, apply = strategy.extended.call_for_each_replica(
                    tf.autograph.experimental.do_not_convert(self._replica_step), args=(images, labels))
            updates = [op for op in tf.get_collection(tf.GraphKeys.UPDATE_OPS) if op not in before]
            # Every replica's own loss: all-reduces connect replicas at run time, not in the graph.
            replica_losses = tf.group(*strategy.experimental_local_results(loss))
            updates = training.update_ops_feeding(updates, replica_losses)
            self.loss = strategy.experimental_local_results(loss)[0]
            self.confusion = strategy.experimental_local_results(confusion)[0]
            self.train_op = tf.group(*(list(strategy.experimental_local_results(apply)) + updates),
                                     name="train_op")
        with tf.device(strategy.extended.worker_devices[0]), \
                tf.variable_scope(tf.get_variable_scope(), reuse=True), tf.name_scope("monitor"):
            self.model = self._build_model(is_training=False)
            self.logits = self.model.build(images)
            self.val_confusion = training.batch_confusion(self.logits, labels, s["num_classes"], s["ignore_label"])
            self.predictions = tf.argmax(self.logits, axis=-1, output_type=tf.int32)

    def _replica_step(self, images, labels):
        from utils import training
        s = self.settings
        context = tf.distribute.get_replica_context()
        with tf.device(self.placement.host_device):
            start = context.replica_id_in_sync_group * self.per_replica
            images, labels = images[start:start + self.per_replica], labels[start:start + self.per_replica]
        model = self._build_model(is_training=True)
        logits = model.build(images)
        n, ignore = s["num_classes"], s["ignore_label"]
        loss_sum, count = training.segmentation_loss_terms(logits, labels, n, ignore)
        global_count, = all_sum_no_gradient([count])
        denominator = tf.maximum(global_count, 1.0)
        loss = loss_sum / denominator
        total = loss
        if model.aux_logits:
            total += s["aux_loss_weight"] * tf.add_n(
                [training.segmentation_loss_terms(a, labels, n, ignore)[0] for a in model.aux_logits]) / denominator
        # As on one device, only variables the loss reads train (not the stages beyond --encoder_stride).
        used, self.unused_variables = training.split_by_use(total, tf.trainable_variables())
        # Regularisation tensors read replica 0's variable copies: counted once, on global replica 0.
        first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), tf.float32)
        total += first * training.regularization_of(used)
        encoder_vars, decoder_vars = training.split_encoder_decoder(model, used)
        apply = training.train_op(total, self.global_step, self.learning_rate, s["momentum"], encoder_vars,
                                  decoder_vars, s["difflr"], update_ops=())
        confusion = training.batch_confusion(logits, labels, n, ignore)
        global_loss, = all_sum_no_gradient([loss])  # one dtype per batched all-reduce
        global_confusion, = all_sum_no_gradient([confusion])
        return global_loss, global_confusion, apply

    def monitor_view(self, graph):
        """What the quarter-validation monitor runs: the feedable batch through the inference copy."""
        return MonitorView(handle=graph.handle, is_training=graph.is_training, images=graph.images,
                           labels=graph.labels, confusion=self.val_confusion, predictions=self.predictions)


# ----------------------------------------------------------------------------- initial weights
def start_like_single_device(sess, saver, build_single_device_graph):
    """Load the exact initial weights a single-device run with the same seed starts from.

    Graph-level seeds derive each initialiser's op seed from how many ops the
    graph holds when it is created, and the replicated graph holds others, so
    its own initialisers would draw other weights.  Building the single-device
    graph in a scratch graph, initialising it on the CPU and restoring its
    values by name makes the seed mean the same weights at every replica count
    (and on every worker).
    """
    with tf.Graph().as_default() as graph:
        build_single_device_graph()
        init = tf.global_variables_initializer()
        scratch_saver = tf.train.Saver()
        with tf.Session(graph=graph, config=tf.ConfigProto(device_count={"GPU": 0})) as scratch:
            scratch.run(init)
            with tempfile.TemporaryDirectory(prefix="segmentor_init_") as folder:
                path = scratch_saver.save(scratch, os.path.join(folder, "init"), write_meta_graph=False)
                saver.restore(sess, path)


__all__ = ["add_flags", "execution_flags", "default_seed", "resolve_cluster", "resolve_placement", "Placement",
           "describe", "summary_line", "all_sum", "all_sum_no_gradient", "global_moments",
           "replica_batch_norm", "per_thread_arg_scopes", "ReplicatedTrainStep", "start_like_single_device", "scratch_folder"]

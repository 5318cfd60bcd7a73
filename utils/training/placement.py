"""Where a run's replicas live: one device, several on one machine, or several machines.

  * One replica (one GPU, or the CPU): train.py builds its single-device step.
  * Several replicas on one machine (`--num_gpus N`, `--gpu 0,1,...`, or
    `--num_cpu_replicas N`, N logical CPU devices for development and tests):
    `MirroredStrategy`, one replica per device.
  * Several machines (`--worker_hosts h:p,h:p --task_index i`, or TF_CONFIG):
    `MultiWorkerMirroredStrategy` (collective all-reduce over gRPC); each
    worker's tf.compat.v1 Session talks to its own `tf.distribute.Server`.
    Only the chief (task 0) writes the run folder.

These are execution flags: taken from the command line also when resuming, so
a run can move to another replica count (README, "Scaling out").  How the
replicated step is built is utils/training/replicas.py.
"""
import atexit
import collections
import os
import shutil
import tempfile
import time

from utils.compat import tf

# Where to run: always from the command line, also when resuming (so a run can move to another replica count).
# (--sync_batch_norm and --lr_scaling define the training: TrainSettings, kept in runargs.)
EXECUTION_FLAGS = ("num_gpus", "num_cpu_replicas", "worker_hosts", "task_index")


# ----------------------------------------------------------------------------- flags
def add_flags(group):
    """The execution flags, into `group` (train.py's "distribution" group, README "Scaling out")."""
    group.add_argument("--num_gpus", type=int, default=None,
                       help="replicas on this machine's GPUs (default: every visible GPU, or the CPU)")
    group.add_argument("--num_cpu_replicas", type=int, default=0,
                       help="development/testing: mirror over N logical CPU devices")
    group.add_argument("--worker_hosts", default=None,
                       help="multi-machine: host:port of every worker, comma separated (or set TF_CONFIG)")
    group.add_argument("--task_index", type=int, default=None, help="multi-machine: this worker's index; 0 = chief")


def execution_flags(args):
    return {key: getattr(args, key) for key in EXECUTION_FLAGS}


def default_seed(execution):
    """A time seed for single-machine runs; workers must share a seed, so multi-worker runs need --seed."""
    if resolve_cluster(execution.get("worker_hosts"), execution.get("task_index")) is not None:
        raise ValueError("a multi-worker run needs an explicit --seed: every worker must read "
                         "the same batches and start from the same weights")
    return int(time.time()) % 100000


# ----------------------------------------------------------------------------- cluster
Cluster = collections.namedtuple("Cluster", "spec task_type task_index")


def resolve_cluster(worker_hosts=None, task_index=None):
    """Cluster from --worker_hosts/--task_index, else from TF_CONFIG; None for a single machine."""
    if worker_hosts:
        hosts = [host.strip() for host in worker_hosts.split(",") if host.strip()]
        if task_index is None or not 0 <= task_index < len(hosts):
            raise ValueError("--worker_hosts lists %d workers: pass --task_index 0..%d"
                             % (len(hosts), len(hosts) - 1))
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({"worker": hosts}), task_type="worker", task_id=task_index)
    elif os.environ.get("TF_CONFIG"):
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    else:
        return None
    spec = resolver.cluster_spec().as_dict()
    if set(spec) - {"chief", "worker"}:
        raise ValueError("only 'chief' and 'worker' jobs are supported, got %s" % sorted(spec))
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


def resolve_placement(execution):
    """Placement from the execution flags (a dict: num_gpus, num_cpu_replicas, worker_hosts, task_index)."""
    cluster = resolve_cluster(execution.get("worker_hosts"), execution.get("task_index"))
    cpu_replicas = int(execution.get("num_cpu_replicas") or 0)
    if cpu_replicas > 1:
        if cluster is not None:
            raise ValueError("--num_cpu_replicas is for single-machine development runs, "
                             "not with --worker_hosts / TF_CONFIG")
        return Placement(["/device:CPU:%d" % i for i in range(cpu_replicas)], cpu_replicas=cpu_replicas)
    visible = visible_gpu_count()
    wanted = execution.get("num_gpus")
    gpus = visible if wanted is None else int(wanted)
    if gpus > visible:
        raise ValueError("--num_gpus %d but %d GPU%s visible (see --gpu / CUDA_VISIBLE_DEVICES)"
                         % (gpus, visible, " is" if visible == 1 else "s are"))
    if cluster is not None:
        prefix = "/job:%s/task:%d" % (cluster.task_type, cluster.task_index)
        devices = ["%s/device:GPU:%d" % (prefix, i) for i in range(gpus)] or [prefix + "/device:CPU:0"]
        return Placement(devices, cluster=cluster)
    return Placement(["/device:GPU:%d" % i for i in range(gpus)] if gpus else ["/device:CPU:0"])


def describe(placement, train, total_train_images):
    """What the replica count decides for TrainSettings `train`: runargs' "replicas" section and the runlog."""
    replicas = placement.num_replicas
    batch = int(train.batch_size)
    if batch % replicas:
        raise ValueError("--batch_size %d (the global batch) does not split over %d replicas; "
                         "use a multiple of %d" % (batch, replicas, replicas))
    if train.precision == "fp16" and replicas > 1:
        raise ValueError("--mixed_precision fp16 (its dynamic loss scaling) runs on a single device only")
    if train.optimizer == "adamw" and replicas > 1:
        raise ValueError("--optimizer adamw (its decoupled decay) runs on a single device only; "
                         "use adam or sgd with replicas")
    rule = train.lr_scaling or "none"
    return {"num_replicas": replicas, "num_workers": placement.num_workers,
            "global_batch_size": batch, "per_replica_batch_size": batch // replicas, "lr_scaling": rule,
            "effective_learnrate": train.learnrate * (replicas if rule == "linear" else 1),
            "steps_per_epoch": total_train_images / float(batch),
            "sync_batch_norm": bool(train.sync_batch_norm)}


def summary_line(placement, replicas, learnrate):
    """One runlog line from describe()'s `replicas`: replicas, global and per-replica batch, learning-rate
    rule, steps per epoch."""
    return ("replicas: %s | global batch %d = %d x %d per replica | learning rate %.2e (--learnrate %.2e, "
            "lr_scaling %s) | %.1f steps per epoch | batch norm %s" % (
                placement.describe(), replicas["global_batch_size"], replicas["num_replicas"],
                replicas["per_replica_batch_size"], replicas["effective_learnrate"], learnrate,
                replicas["lr_scaling"], replicas["steps_per_epoch"],
                "synchronised across replicas" if replicas["sync_batch_norm"] and placement.replicated
                else "per replica" if placement.replicated else "single device"))

"""Data-parallel training on tf.distribute, inside train.py's TF1 graph-mode loop.

Where the replicas live is utils/training/placement.py; the tf-slim patches
building them needs are utils/compat/replicas.py.

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
import os
import tempfile

import arch
from utils.compat import tf
from utils.compat.replicas import all_sum, all_sum_no_gradient, per_thread_arg_scopes, replica_batch_norm
from utils.training import losses
from utils.training.optimizer import update_ops_feeding
from utils.training.step import MonitorView, learning_rate, objective, optimizer_step


class ReplicatedTrainStep:
    """The training step over a placement's strategy, on the same global batch tensors as TrainStep.

    Same interface as utils.training.step.TrainStep: fetches (the global batch's loss and
    confusion, all-summed; one optimizer step on all replicas, batch-norm moving averages
    included), global_step, unused_variables; model and monitor: the non-replicated
    inference copy the quarter-validation monitor runs.
    """

    def __init__(self, placement, images, labels, config):
        self.placement, self.config = placement, config
        strategy = placement.strategy
        self.per_replica = config.train.batch_size // strategy.num_replicas_in_sync
        with strategy.scope():
            self.global_step = tf.train.get_or_create_global_step()
            self.learning_rate = learning_rate(self.global_step, config)
            before = set(tf.get_collection(tf.GraphKeys.UPDATE_OPS))
            with per_thread_arg_scopes(), replica_batch_norm(synchronised=bool(config.train.sync_batch_norm)):
                loss, confusion, apply = strategy.extended.call_for_each_replica(
                    tf.autograph.experimental.do_not_convert(self._replica_step), args=(images, labels))
            updates = [op for op in tf.get_collection(tf.GraphKeys.UPDATE_OPS) if op not in before]
            # Every replica's own loss: all-reduces connect replicas at run time, not in the graph.
            replica_losses = tf.group(*strategy.experimental_local_results(loss))
            updates = update_ops_feeding(updates, replica_losses)
            self.loss = strategy.experimental_local_results(loss)[0]
            self.confusion = strategy.experimental_local_results(confusion)[0]
            self.train_op = tf.group(*(list(strategy.experimental_local_results(apply)) + updates),
                                     name="train_op")
        with tf.device(strategy.extended.worker_devices[0]), \
                tf.variable_scope(tf.get_variable_scope(), reuse=True), tf.name_scope("monitor"):
            self.model = arch.build_model(config.model, is_training=False)
            logits = self.model.build(images)
            val_confusion = losses.batch_confusion(logits, labels, config.model.num_classes,
                                                   config.data.ignore_label)
            self.monitor = MonitorView(images, labels, val_confusion,
                                       tf.argmax(logits, axis=-1, output_type=tf.int32))

    @property
    def fetches(self):
        return {"train_op": self.train_op, "loss": self.loss, "confusion": self.confusion,
                "learning_rate": self.learning_rate}

    def _replica_step(self, images, labels):
        """One replica: its slice of the global batch through the shared recipe, the loss statistics all-summed
        (each replica carries 1/R of the global batch's loss) and the weight decay counted once (replica 0)."""
        context = tf.distribute.get_replica_context()
        with tf.device(self.placement.host_device):
            start = context.replica_id_in_sync_group * self.per_replica
            images, labels = images[start:start + self.per_replica], labels[start:start + self.per_replica]
        model = arch.build_model(self.config.model, is_training=True)
        first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), tf.float32)
        goal = objective(model, images, labels, self.config.data.ignore_label, self.config.train,
                         summed=lambda stats: all_sum(list(stats)), replicas=context.num_replicas_in_sync,
                         regularization_weight=first)
        self.unused_variables = goal.unused_variables
        apply = optimizer_step(goal, self.global_step, self.learning_rate, self.config.train,
                               self.config.model.weight_decay, update_ops=(), loss_scaling=False)
        confusion = losses.batch_confusion(goal.logits, labels, model.num_classes, self.config.data.ignore_label)
        global_loss, = all_sum_no_gradient([goal.loss])  # one dtype per batched all-reduce
        global_confusion, = all_sum_no_gradient([confusion])
        return global_loss, global_confusion, apply


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

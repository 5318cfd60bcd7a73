"""One training step, built by one recipe on one device and on every replica.

    step = TrainStep(images, labels, is_training, config)                # one device: train.py, bench/
    step = replicas.ReplicatedTrainStep(placement, images, labels, config)   # tf.distribute replicas

Both assemble the step from `objective()` (model -> cross-entropy, auxiliary
losses, weight decay of the variables the loss reaches) and `optimizer_step()`
(Adam on those variables, loss scaling); a replica only adds its slice of the
batch, the global pixel count as the loss denominator and the weight decay
counted once.  The training loop and the benchmarks use the small interface
both steps have:

    fetches       {"train_op", "loss", "confusion", "learning_rate"}: run once per step
    global_step   the step counter
    model         the (first) model built, for its encoder's checkpoint restore
    unused_variables  variables the loss never reads (stages beyond --encoder_stride)
    monitor       MonitorView: what the quarter-validation monitor runs on the feedable batch
"""
import collections

import arch
from utils.compat import tf
from utils.training import losses, schedule
from utils.training.optimizer import regularization_of, split_by_use, split_encoder_decoder, train_op

Objective = collections.namedtuple("Objective", "model logits loss total_loss used_variables unused_variables")
MonitorView = collections.namedtuple("MonitorView", "images labels confusion predictions")


def objective(model, images, labels, ignore_label, count_total=None, regularization_weight=1.0):
    """Build `model` on `images` and its training loss.

    loss: summed cross-entropy over the valid pixels / their count, where
    `count_total(count)` may turn the count into the global batch's (replicas);
    total_loss adds the auxiliary heads (`model.aux_loss_weight`) and the weight
    decay of the variables the loss reads, times `regularization_weight`.
    """
    logits = model.build(images)
    loss_sum, count = losses.segmentation_loss_terms(logits, labels, model.num_classes, ignore_label)
    denominator = tf.maximum(count_total(count) if count_total else count, 1.0)
    loss = loss_sum / denominator
    data_loss = loss
    if model.aux_logits:
        aux_sums = [losses.segmentation_loss_terms(aux, labels, model.num_classes, ignore_label)[0]
                    for aux in model.aux_logits]
        data_loss = loss + model.aux_loss_weight * tf.add_n(aux_sums) / denominator
    used, unused = split_by_use(data_loss, tf.trainable_variables())
    total = data_loss + regularization_weight * regularization_of(used)
    return Objective(model, logits, loss, total, used, unused)


def optimizer_step(goal, global_step, learning_rate, train, update_ops=None, loss_scaling=None):
    """Adam on the variables `goal`'s loss reads (the decoder's at learnrate * difflr); see optimizer.train_op."""
    encoder_vars, decoder_vars = split_encoder_decoder(goal.model, goal.used_variables)
    return train_op(goal.total_loss, global_step, learning_rate, train.momentum, encoder_vars, decoder_vars,
                    train.difflr, loss_scaling=train.mixed_precision if loss_scaling is None else loss_scaling,
                    update_ops=update_ops)


def learning_rate(global_step, config):
    """The schedule's rate tensor at the run's effective base rate (scaled with replicas by --lr_scaling)."""
    return schedule.learning_rate(global_step, config.effective_learnrate, config.train.total_steps,
                                  config.train.decaylr)


class TrainStep:
    """Model, loss and optimizer on given batch tensors, on one device.

    config: the run's `utils.training.config.RunConfig` (model spec, training settings, data facts).
    """

    def __init__(self, images, labels, is_training, config):
        self.model = arch.build_model(config.model, is_training)
        goal = objective(self.model, images, labels, config.data.ignore_label)
        self.logits, self.loss, self.unused_variables = goal.logits, goal.loss, goal.unused_variables
        self.global_step = tf.train.get_or_create_global_step()
        self.learning_rate = learning_rate(self.global_step, config)
        self.train_op = optimizer_step(goal, self.global_step, self.learning_rate, config.train)
        self.confusion = losses.batch_confusion(goal.logits, labels, config.model.num_classes,
                                                config.data.ignore_label)
        self.predictions = tf.argmax(goal.logits, axis=-1, output_type=tf.int32)
        self.monitor = MonitorView(images, labels, self.confusion, self.predictions)

    @property
    def fetches(self):
        return {"train_op": self.train_op, "loss": self.loss, "confusion": self.confusion,
                "learning_rate": self.learning_rate}

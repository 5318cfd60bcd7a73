"""One training step, built by one recipe on one device and on every replica.

    step = TrainStep(images, labels, is_training, config)                # one device: train.py, bench/
    step = replicas.ReplicatedTrainStep(placement, images, labels, config)   # tf.distribute replicas

Both assemble the step from `objective()` (model -> the configured loss,
auxiliary losses, weight decay of the variables the loss reaches) and
`optimizer_step()` (the configured optimizer on those variables, loss
scaling); a replica only adds its slice of the batch, the loss statistics
all-summed over replicas and the weight decay counted once.  The training loop and the benchmarks use the small interface
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
from utils.training.optimizer import (regularization_of, regularized_variables, split_by_use,
                                      split_encoder_decoder, train_op)

Objective = collections.namedtuple("Objective", "model logits loss total_loss used_variables unused_variables")
MonitorView = collections.namedtuple("MonitorView", "images labels confusion predictions")


def objective(model, images, labels, ignore_label, loss_settings, summed=None, replicas=1,
              regularization_weight=1.0):
    """Build `model` on `images` and its training loss (utils/training/losses.py, `--loss`).

    loss: the main head's loss; on replicas `summed` all-sums each term's
    statistics first, and each of the `replicas` replicas carries 1/replicas of
    the global batch's loss.  total_loss adds the auxiliary heads
    (`model.aux_loss_weight`) and the weight decay of the variables the loss
    reads, times `regularization_weight` (0 for AdamW's decoupled decay).
    """
    logits = model.build(images)

    def loss_of(head_logits):
        terms = losses.loss_terms(head_logits, labels, model.num_classes, ignore_label, loss_settings)
        return losses.finish(terms, summed) / float(replicas)

    loss = loss_of(logits)
    data_loss = loss
    if model.aux_logits:
        data_loss = loss + model.aux_loss_weight * tf.add_n([loss_of(aux) for aux in model.aux_logits])
    used, unused = split_by_use(data_loss, tf.trainable_variables())
    decay_in_loss = not (isinstance(regularization_weight, (int, float)) and regularization_weight == 0)
    total = data_loss + regularization_weight * regularization_of(used) if decay_in_loss else data_loss
    return Objective(model, logits, loss, total, used, unused)


def optimizer_step(goal, global_step, learning_rate, train, decay_rate, update_ops=None, loss_scaling=None):
    """The configured optimizer on the variables `goal`'s loss reads (the decoder's at learnrate * difflr); with
    AdamW, `decay_rate` (--weight_decay) decays the regularised ones, decoupled from the gradient."""
    encoder_vars, decoder_vars = split_encoder_decoder(goal.model, goal.used_variables)
    decoupled = train.optimizer == "adamw"
    return train_op(goal.total_loss, global_step, learning_rate, train.momentum, encoder_vars, decoder_vars,
                    train.difflr, loss_scaling=train.precision == "fp16" if loss_scaling is None else loss_scaling,
                    update_ops=update_ops, optimizer=train.optimizer,
                    decoupled_decay=decay_rate if decoupled else 0.0,
                    decayed=regularized_variables(goal.used_variables) if decoupled else ())


def regularization_weight(train):
    """1 (L2 weight decay in the loss), or 0 with AdamW, whose decay is applied by the optimizer instead."""
    return 0 if train.optimizer == "adamw" else 1.0


def learning_rate(global_step, config):
    """The schedule's rate tensor at the run's effective base rate (scaled with replicas by --lr_scaling)."""
    train = config.train
    return schedule.learning_rate(global_step, config.effective_learnrate, train.total_steps, train.lr_schedule,
                                  train.warmup_steps, train.poly_power)


class TrainStep:
    """Model, loss and optimizer on given batch tensors, on one device.

    config: the run's `utils.training.config.RunConfig` (model spec, training settings, data facts).
    """

    def __init__(self, images, labels, is_training, config):
        self.global_step = tf.train.get_or_create_global_step()  # before the model: its dropout reads it
        self.model = arch.build_model(config.model, is_training)
        goal = objective(self.model, images, labels, config.data.ignore_label, config.train,
                         regularization_weight=regularization_weight(config.train))
        self.logits, self.loss, self.unused_variables = goal.logits, goal.loss, goal.unused_variables
        self.learning_rate = learning_rate(self.global_step, config)
        self.train_op = optimizer_step(goal, self.global_step, self.learning_rate, config.train,
                                       config.model.weight_decay)
        self.confusion = losses.batch_confusion(goal.logits, labels, config.model.num_classes,
                                                config.data.ignore_label)
        self.predictions = tf.argmax(goal.logits, axis=-1, output_type=tf.int32)
        self.monitor = MonitorView(images, labels, self.confusion, self.predictions)

    @property
    def fetches(self):
        return {"train_op": self.train_op, "loss": self.loss, "confusion": self.confusion,
                "learning_rate": self.learning_rate}

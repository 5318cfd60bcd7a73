"""The optimizer step: which variables train, their weight decay, Adam / SGD / AdamW, loss scaling.

With --encoder_stride < 32 the deeper encoder stages are built (checkpoint
compatibility) but unused: `split_by_use`, `regularization_of` and
`update_ops_feeding` keep them out of the step (no decay, no Adam, no batch-norm
update that would run their forward pass for nothing).
"""
import dataclasses

from utils.compat import tf
from utils.flags import setting
from utils.graphs import ancestors

OPTIMIZERS = ("adam", "sgd", "adamw")


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    optimizer: str = setting("adam", "adam, sgd (with momentum) or adamw (Adam with decoupled weight decay: "
                                     "--weight_decay then multiplies the learning rate, as in PyTorch's AdamW)",
                             choices=OPTIMIZERS, group="optimisation")
    learnrate: float = setting(3e-4, "base learning rate", group="optimisation")
    momentum: float = setting(0.9, "Adam's beta1, SGD's momentum", group="optimisation")
    difflr: float = setting(1.0, "decoder learning rate = learnrate * difflr", group="optimisation")

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError("--optimizer %r: expected one of %s" % (self.optimizer, ", ".join(OPTIMIZERS)))
        if not self.learnrate > 0:
            raise ValueError("--learnrate must be > 0, got %r" % self.learnrate)
        if not self.difflr > 0:
            raise ValueError("--difflr must be > 0, got %r" % self.difflr)
        if not 0 <= self.momentum < 1:
            raise ValueError("--momentum must be in [0, 1), got %r" % self.momentum)


def _copies(variable):
    """A variable's per-device copies (a tf.distribute variable) or the variable itself."""
    copies = getattr(variable, "values", None)  # DistributedValues (not in tf.compat.v1's namespace)
    return tuple(copies) if isinstance(copies, (tuple, list)) else (variable,)


def split_by_use(data_loss, variables):
    """(used, unused): whether `data_loss` reads each variable (through any of its copies).

    With --encoder_stride < 32 the deeper encoder stages are built (checkpoint
    compatibility) but unused: they get no weight decay and no optimizer step.
    """
    needed = ancestors(data_loss.op)
    reads = [any(copy.op in needed for copy in _copies(v)) for v in variables]
    return ([v for v, read in zip(variables, reads) if read], [v for v, read in zip(variables, reads) if not read])


def regularization_of(variables):
    """Sum of the regularization losses that read these variables (0.0 when none)."""
    handles = {copy.op for v in variables for copy in _copies(v)}
    losses = [r for r in tf.losses.get_regularization_losses() if any(op in handles for op in ancestors(r.op))]
    return tf.add_n(losses) if losses else tf.constant(0.0)


CONV_OPS = ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "MatMul")


def update_ops_feeding(update_ops, loss):
    """The batch-norm updates of layers the loss (a tensor, or an op grouping several) depends on.

    With --encoder_stride < 32 the deeper encoder stages are built (checkpoint
    compatibility) but unused; their moving-average updates would otherwise
    run their forward pass every step for nothing.  Walking back from an update,
    the first convolution met is the one its batch norm normalises (batch norm
    itself may hide inside a functional cond); the update stays if the loss
    needs that convolution, or if no convolution is met.
    """
    needed = ancestors(loss if isinstance(loss, tf.Operation) else loss.op)

    def feeds_loss(update):  # an op, a tensor or a variable's assignment
        seen, stack = set(), [update if isinstance(update, tf.Operation) else update.op]
        while stack:
            op = stack.pop()
            if op in seen:
                continue
            seen.add(op)
            if op.type in CONV_OPS:
                return op in needed
            stack.extend(tensor.op for tensor in op.inputs)
            stack.extend(op.control_inputs)
        return True

    return [update for update in update_ops if feeds_loss(update)]


def make_optimizer(kind, lr, momentum, name):
    """tf.compat.v1 optimizer `kind` ('adam' and 'adamw': Adam with beta1 = momentum; 'sgd': momentum SGD)."""
    if kind == "sgd":
        return tf.train.MomentumOptimizer(lr, momentum, name=name)
    return tf.train.AdamOptimizer(lr, beta1=momentum, name=name)


def regularized_variables(variables):
    """The variables some regularization loss reads: the weights --weight_decay decays."""
    reads = set()
    for regularization in tf.losses.get_regularization_losses():
        reads |= ancestors(regularization)
    return [v for v in variables if any(copy.op in reads for copy in _copies(v))]


def train_op(total_loss, global_step, lr, beta1, encoder_vars, decoder_vars, difflr=1.0, loss_scaling=False,
             update_ops=None, optimizer="adam", decoupled_decay=0.0, decayed=()):
    """One optimizer step on the variables; with difflr != 1 the decoder gets lr * difflr.

    optimizer: adam (beta1), sgd (momentum = beta1) or adamw: Adam whose weight
    decay is decoupled from the gradient (Loshchilov & Hutter), each `decayed`
    variable shrinking by lr * decoupled_decay before the Adam update, as
    PyTorch's AdamW does.  Adam is invariant to gradient scale, so a
    differential rate needs a second optimizer rather than scaled gradients.
    Batch-norm moving averages are updated with the step (UPDATE_OPS).
    loss_scaling: dynamic loss scaling for float16 training (--mixed_precision):
    the loss is multiplied by a scale before backprop, gradients divided back,
    and a step whose gradients overflow is skipped while the scale halves.
    update_ops: default UPDATE_OPS; a replica passes its own; only those of
    layers the loss uses run (update_ops_feeding).
    """
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS) if update_ops is None else update_ops
    update_ops = update_ops_feeding(update_ops, total_loss)
    variables = list(encoder_vars) + list(decoder_vars)
    split = len(encoder_vars) if difflr != 1.0 and encoder_vars and decoder_vars else 0
    base_name = "Momentum" if optimizer == "sgd" else "Adam"
    optimizers = [make_optimizer(optimizer, lr, beta1, base_name)]
    if split:
        optimizers.append(make_optimizer(optimizer, lr * difflr, beta1, base_name + "Decoder"))
    decoder_set = set(decoder_vars) if split else set()
    loss_scale = tf.train.experimental.DynamicLossScale() if loss_scaling else None
    scaled_loss = total_loss * loss_scale() if loss_scale else total_loss
    grads = tf.gradients(scaled_loss, variables)
    if loss_scale:
        grads = [None if g is None else g / loss_scale() for g in grads]
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    groups = [pairs[:split], pairs[split:]] if split else [pairs]

    def apply():
        shrink = [v.assign_sub((lr * difflr if v in decoder_set else lr) * decoupled_decay * v)
                  for v in decayed] if decoupled_decay else []
        with tf.control_dependencies(shrink):
            steps = [opt.apply_gradients(group) for opt, group in zip(optimizers, groups)]
        with tf.control_dependencies(steps):
            return tf.assign_add(global_step, 1).op

    if not loss_scale:
        step = apply()
    else:
        update_scale, finite = loss_scale.update([g for g, _ in pairs])
        step = tf.group(tf.cond(finite, apply, lambda: tf.assign_add(global_step, 1).op), update_scale)
    # The batch-norm updates are grouped with the step, not wrapped around tf.gradients: a control_dependencies
    # block there gives every gradient op a control edge to every update op, and Grappler's start-up grows with
    # their product (no gradient reads a moving average, so the order does not matter).
    return tf.group(step, *update_ops, name="train_op")


def split_encoder_decoder(model, variables):
    """(encoder, decoder) parts of `variables`: the pretrained feature extractor's and the new ones."""
    encoder = set(model.encoder_variables())
    return [v for v in variables if v in encoder], [v for v in variables if v not in encoder]

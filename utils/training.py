"""Training graph pieces: loss with ignore pixels, learning-rate schedule, (differential) Adam.

Kept apart from train.py so benchmarks and tests build exactly the same step.
"""
from utils.tf1 import tf


def valid_pixels(labels, num_classes, ignore_label):
    """Pixels that carry a loss: a real class (not the ignore label, not padding)."""
    valid = tf.logical_and(labels >= 0, labels < num_classes)
    if ignore_label is not None and 0 <= ignore_label < num_classes:
        valid = tf.logical_and(valid, tf.not_equal(labels, ignore_label))
    return valid


def segmentation_loss_terms(logits, labels, num_classes, ignore_label):
    """(summed cross-entropy, count) over the valid pixels: replicas all-sum the count (utils/distribute.py)."""
    valid = valid_pixels(labels, num_classes, ignore_label)
    safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_labels,
                                                               logits=tf.cast(logits, tf.float32))
    weights = tf.cast(valid, tf.float32)
    return tf.reduce_sum(per_pixel * weights), tf.reduce_sum(weights)


def segmentation_loss(logits, labels, num_classes, ignore_label):
    """Mean softmax cross-entropy over the valid pixels; ignore pixels carry no loss."""
    total, count = segmentation_loss_terms(logits, labels, num_classes, ignore_label)
    return total / tf.maximum(count, 1.0)


def batch_confusion(logits, labels, num_classes, ignore_label):
    """C x C confusion matrix (rows = truth) of one batch, ignore pixels left out."""
    valid = valid_pixels(labels, num_classes, ignore_label)
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.math.confusion_matrix(tf.boolean_mask(labels, valid), tf.boolean_mask(predictions, valid),
                                    num_classes=num_classes, dtype=tf.int64)


def decay_boundaries(total_steps):
    """seg-mentor's schedule: /10 at one and two thirds of training (15 and 30 of 45 epochs)."""
    return [max(1, total_steps // 3), max(2, (2 * total_steps) // 3)]


def learning_rate(global_step, base_lr, total_steps, decay):
    if not decay:
        return tf.constant(base_lr, tf.float32, name="learning_rate")
    return tf.train.piecewise_constant(global_step, decay_boundaries(total_steps),
                                       [base_lr, base_lr / 10.0, base_lr / 100.0], name="learning_rate")


def learning_rate_at(step, base_lr, total_steps, decay):
    """Python mirror of `learning_rate` (for logs and tests)."""
    if not decay:
        return base_lr
    first, second = decay_boundaries(total_steps)
    return base_lr if step <= first else base_lr / 10.0 if step <= second else base_lr / 100.0


def _ancestors(op):
    """Every op `op` depends on (data and control inputs), itself included."""
    seen, stack = set(), [op]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(tensor.op for tensor in current.inputs)
            stack.extend(current.control_inputs)
    return seen


def _copies(variable):
    """A variable's per-device copies (a tf.distribute variable) or the variable itself."""
    copies = getattr(variable, "values", None)  # DistributedValues (not in tf.compat.v1's namespace)
    return tuple(copies) if isinstance(copies, (tuple, list)) else (variable,)


def split_by_use(data_loss, variables):
    """(used, unused): whether `data_loss` reads each variable (through any of its copies).

    With --encoder_stride < 32 the deeper encoder stages are built (checkpoint
    compatibility) but unused: they get no weight decay and no optimizer step.
    """
    needed = _ancestors(data_loss.op)
    reads = [any(copy.op in needed for copy in _copies(v)) for v in variables]
    return ([v for v, read in zip(variables, reads) if read], [v for v, read in zip(variables, reads) if not read])


def regularization_of(variables):
    """Sum of the regularization losses that read these variables (0.0 when none)."""
    handles = {copy.op for v in variables for copy in _copies(v)}
    losses = [r for r in tf.losses.get_regularization_losses() if any(op in handles for op in _ancestors(r.op))]
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
    needed = _ancestors(loss if isinstance(loss, tf.Operation) else loss.op)

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


def train_op(total_loss, global_step, lr, beta1, encoder_vars, decoder_vars, difflr=1.0, loss_scaling=False,
             update_ops=None):
    """Adam on all trainable variables; with difflr != 1 the decoder gets lr * difflr.

    Adam is invariant to gradient scale, so a differential rate needs a second
    optimizer rather than scaled gradients.  Batch-norm moving averages are
    updated with the step (UPDATE_OPS).  loss_scaling: dynamic loss scaling for
    float16 training (--mixed_precision): the loss is multiplied by a scale
    before backprop, gradients divided back, and a step whose gradients
    overflow is skipped while the scale halves.  update_ops: default UPDATE_OPS;
    a replica of utils/distribute.py passes its own; only those of layers the
    loss uses run (update_ops_feeding).
    """
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS) if update_ops is None else update_ops
    update_ops = update_ops_feeding(update_ops, total_loss)
    variables = list(encoder_vars) + list(decoder_vars)
    split = len(encoder_vars) if difflr != 1.0 and encoder_vars and decoder_vars else 0
    optimizers = [tf.train.AdamOptimizer(lr, beta1=beta1, name="Adam")]
    if split:
        optimizers.append(tf.train.AdamOptimizer(lr * difflr, beta1=beta1, name="AdamDecoder"))
    with tf.control_dependencies(update_ops):
        loss_scale = tf.train.experimental.DynamicLossScale() if loss_scaling else None
        scaled_loss = total_loss * loss_scale() if loss_scale else total_loss
        grads = tf.gradients(scaled_loss, variables)
        if loss_scale:
            grads = [None if g is None else g / loss_scale() for g in grads]
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        groups = [pairs[:split], pairs[split:]] if split else [pairs]

        def apply():
            steps = [opt.apply_gradients(group) for opt, group in zip(optimizers, groups)]
            with tf.control_dependencies(steps):
                return tf.assign_add(global_step, 1).op

        if not loss_scale:
            return apply()
        update_scale, finite = loss_scale.update([g for g, _ in pairs])
        step = tf.cond(finite, apply, lambda: tf.assign_add(global_step, 1).op)
        return tf.group(step, update_scale, name="train_op")


def split_encoder_decoder(model, variables):
    """(encoder, decoder) parts of `variables`: the pretrained feature extractor's and the new ones."""
    encoder = set(model.fe_variables())
    return [v for v in variables if v in encoder], [v for v in variables if v not in encoder]


def build_model(settings, is_training):
    """The run's model (not yet built on images): TrainStep's, and each replica's in utils/distribute.py."""
    import arch
    s = settings
    return arch.build_arch(
        s["basenet"], s["extended_arch"], s["num_classes"], is_training=is_training,
        fcn16=s["fcn16"], fcn8=s["fcn8"], fcn4=s["fcn4"], trainable_upsampling=s["trainable_upsampling"],
        zero_init_skips=s["zero_init_skips"], output_stride=s["output_stride"], weight_decay=s["weight_decay"],
        aux_loss_weight=s["aux_loss_weight"], encoder_stride=s.get("encoder_stride") or 32,
        batch_norm_decay=s.get("batch_norm_decay"))


class TrainStep:
    """Model, loss and optimizer on given batch tensors: what train.py and bench/ both run.

    settings: the run's resolved settings (train.py's runargs keys).
    """

    def __init__(self, images, labels, is_training, settings):
        s = settings
        self.model = build_model(s, is_training)
        self.logits = self.model.build(images)

        n, ignore = s["num_classes"], s["ignore_label"]
        self.loss = segmentation_loss(self.logits, labels, n, ignore)
        aux = [segmentation_loss(a, labels, n, ignore) for a in self.model.aux_logits]
        data_loss = self.loss + s["aux_loss_weight"] * tf.add_n(aux) if aux else self.loss
        used, self.unused_variables = split_by_use(data_loss, tf.trainable_variables())
        self.total_loss = data_loss + regularization_of(used)
        self.confusion = batch_confusion(self.logits, labels, n, ignore)
        self.predictions = tf.argmax(self.logits, axis=-1, output_type=tf.int32)

        self.global_step = tf.train.get_or_create_global_step()
        self.learning_rate = learning_rate(self.global_step, s["learnrate"], s["total_steps"], s["decaylr"])
        encoder_vars, decoder_vars = split_encoder_decoder(self.model, used)
        self.train_op = train_op(self.total_loss, self.global_step, self.learning_rate, s["momentum"],
                                 encoder_vars, decoder_vars, s["difflr"], loss_scaling=s.get("mixed_precision"))


def session_config(threads=0, xla=False, mixed_precision=False):
    """ConfigProto shared by training, testing and benchmarks.

    xla: XLA JIT auto-clustering, on GPUs and CPUs alike.  Measured on 2 CPU
    cores it is slower (LinkNet-ResNet18: 143 vs 107 ms inference at 512x512,
    605 vs 378 ms per training step of 4x256x256), so it is off by default;
    it is there for GPUs.

    mixed_precision: Grappler's automatic mixed precision rewrite, float32
    master weights (the variables are untouched): float16 compute on GPUs
    where numerically safe (with the dynamic loss scaling of `train_op`);
    without a GPU, oneDNN's bfloat16 rewrite, which pays off on CPUs with
    AMX / AVX512-BF16 and is emulated (slower) elsewhere.  TF 2.21's float16
    CPU emulation (auto_mixed_precision_cpu) crashes, so it is not used.
    """
    from tensorflow.core.protobuf import rewriter_config_pb2
    import os
    config = tf.ConfigProto(allow_soft_placement=True, intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    config.gpu_options.allow_growth = True
    if xla:  # auto-clustering; TensorFlow applies it to CPUs only with --tf_xla_cpu_global_jit
        config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.ON_1
        flags = os.environ.get("TF_XLA_FLAGS", "")
        if "--tf_xla_cpu_global_jit" not in flags:
            os.environ["TF_XLA_FLAGS"] = (flags + " --tf_xla_cpu_global_jit").strip()
    if mixed_precision:
        rewrite = config.graph_options.rewrite_options
        if tf.config.list_physical_devices("GPU"):
            rewrite.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
        else:
            rewrite.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    return config

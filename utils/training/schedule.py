"""Learning-rate schedules: the graph tensor the optimizer reads and its Python mirror for logs and tests."""
from utils.compat import tf


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

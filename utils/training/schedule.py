"""Learning-rate schedules: the graph tensor the optimizer reads, and its Python mirror for logs and tests.

    constant  the base rate throughout (seg-mentor's default)
    step      /10 at 1/3 and 2/3 of training (seg-mentor's --decaylr: 15 and 30 of 45 epochs)
    poly      base * (1 - step / total) ** --poly_power (0.9: DeepLab, PSPNet; SegFormer's recipe: 1.0)
    cosine    base * (1 + cos(pi * step / total)) / 2
`--warmup_steps W` ramps the rate linearly from base/W to base over the first W
steps, multiplying whichever schedule runs underneath.  `step` is the step
being taken, counted from 1 as the runlog does.
"""
import dataclasses
import math

from utils.compat import tf
from utils.flags import setting

SCHEDULES = ("constant", "step", "poly", "cosine")
POLY_POWER = 0.9


@dataclasses.dataclass(frozen=True)
class ScheduleSettings:
    lr_schedule: str = setting("constant", "learning-rate schedule: constant, step (/10 at 1/3 and 2/3), poly, "
                                           "cosine", choices=SCHEDULES, group="optimisation")
    decaylr: bool = setting(False, "seg-mentor's name for --lr_schedule step", group="optimisation")
    warmup_steps: int = setting(0, "steps of linear warm-up to the base rate", group="optimisation")
    poly_power: float = setting(POLY_POWER, "power of the poly schedule (DeepLab's 0.9; SegFormer's 1.0)",
                                group="optimisation")

    def __post_init__(self):
        if self.lr_schedule not in SCHEDULES:
            raise ValueError("--lr_schedule %r: expected one of %s" % (self.lr_schedule, ", ".join(SCHEDULES)))
        if self.decaylr and self.lr_schedule == "constant":
            object.__setattr__(self, "lr_schedule", "step")
        object.__setattr__(self, "decaylr", self.lr_schedule == "step")
        if self.warmup_steps < 0:
            raise ValueError("--warmup_steps must be >= 0, got %r" % self.warmup_steps)
        if not self.poly_power > 0:
            raise ValueError("--poly_power must be > 0, got %r" % self.poly_power)


def decay_boundaries(total_steps):
    """seg-mentor's schedule: /10 at one and two thirds of training (15 and 30 of 45 epochs)."""
    return [max(1, total_steps // 3), max(2, (2 * total_steps) // 3)]


def learning_rate(global_step, base_lr, total_steps, schedule="constant", warmup_steps=0, poly_power=POLY_POWER):
    """The rate for the step `global_step` (steps done so far) is about to take."""
    step = tf.cast(global_step, tf.float32) + 1.0
    total = float(max(total_steps, 1))
    if schedule == "step":
        rate = tf.train.piecewise_constant(global_step + 1, decay_boundaries(total_steps),
                                           [base_lr, base_lr / 10.0, base_lr / 100.0])
    elif schedule == "poly":
        rate = base_lr * tf.pow(tf.maximum(1.0 - (step - 1.0) / total, 0.0), float(poly_power))
    elif schedule == "cosine":
        rate = base_lr * 0.5 * (1.0 + tf.cos(math.pi * tf.minimum((step - 1.0) / total, 1.0)))
    else:
        rate = tf.constant(base_lr, tf.float32)
    if warmup_steps:
        rate = rate * tf.minimum(1.0, step / float(warmup_steps))
    return tf.identity(tf.cast(rate, tf.float32), name="learning_rate")


def learning_rate_at(step, base_lr, total_steps, schedule="constant", warmup_steps=0, poly_power=POLY_POWER):
    """Python mirror of `learning_rate` for the step numbered `step` (from 1)."""
    if schedule is True or schedule is False:  # the old signature's `decay` flag
        schedule = "step" if schedule else "constant"
    if schedule == "step":
        first, second = decay_boundaries(total_steps)
        rate = base_lr if step <= first else base_lr / 10.0 if step <= second else base_lr / 100.0
    elif schedule == "poly":
        rate = base_lr * max(1.0 - (step - 1.0) / max(total_steps, 1), 0.0) ** poly_power
    elif schedule == "cosine":
        rate = base_lr * 0.5 * (1.0 + math.cos(math.pi * min((step - 1.0) / max(total_steps, 1), 1.0)))
    else:
        rate = base_lr
    if warmup_steps:
        rate *= min(1.0, step / float(warmup_steps))
    return rate

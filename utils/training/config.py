"""A run's configuration: the model spec, the training settings and the data, as one object and as runargs.

    config = RunConfig.load("tmp/20261128_resnet_v1_18_LinkNet__1")   # also runargs written before schema 2
    config.model          arch.ModelSpec (encoder, decoder, num_classes, strides, decays, decoder options)
    config.train          TrainSettings (below: optimisation, initialisation, monitoring, replicas)
    config.data           utils.data.spec.DataSpec (dataset, input size, augmentation, the dataset's facts)
    config.replicas       how the steps were laid out over replicas ({} until train.py resolves a placement)

runargs (JSON) keeps the three sections apart: {"schema": 2, "net_name", "model",
"train", "data", "replicas", "provenance"}.  Runargs of run folders written
before the sections existed (one flat dict) still load: `from_runargs` sorts
their keys into the sections.
"""
import dataclasses
import datetime
import math
import os
import sys
from typing import Optional

import arch
import nets
from nets.checkpoints import DEFAULT_MODELSPATH, EMA_MODES
from nets.torch_weights import TORCH_MODELS
from utils.compat import machine, precision, software
from utils.compat import backend, native_atrous, tf
from utils.data.spec import DataSpec
from utils.flags import setting
from utils.training import runfolder
from utils.training.losses import LossSettings
from utils.training.optimizer import OptimizerSettings
from utils.training.schedule import ScheduleSettings

SCHEMA = 2
LR_SCALING = ("none", "linear")
MILESTONES = ("full", "weights")  # what a milestone checkpoint holds: utils/training/checkpointing.py
SCRATCH = ("none", "scratch", "")


@dataclasses.dataclass(frozen=True)
class TrainSettings(OptimizerSettings, ScheduleSettings, LossSettings):
    """How a run trains.  The optimizer's, the schedule's and the loss's settings are declared in their own
    modules (utils/training/optimizer.py, schedule.py, losses.py) and inherited here; flags come from all."""
    batch_size: int = setting(16, "global batch size (split over replicas)", group="optimisation")
    epochs: float = setting(45, "epochs to train", group="optimisation")
    max_steps: Optional[int] = setting(None, "stop after this many steps (overrides --epochs)", group="optimisation")
    seed: Optional[int] = setting(None, "random seed (graph, data order, augmentation); default: from the clock",
                                  group="optimisation")
    modelspath: str = setting(DEFAULT_MODELSPATH, "folder of ImageNet slim checkpoints", group="initialisation")
    pretrained: Optional[str] = setting(None, "encoder checkpoint; default <modelspath>/<net's file>; 'none' = "
                                              "from scratch", group="initialisation")
    pretrained_ema: str = setting("auto", "auto: restore each encoder variable whose <name>/ExponentialMovingAverage "
                                          "the checkpoint holds from that average (the weights the TPU EfficientNet "
                                          "and zoo MobileNetV3 accuracies are measured with); off: the raw weights",
                                  choices=EMA_MODES, group="initialisation")
    init_from: Optional[str] = setting(None, "fine-tune from a trained run folder or checkpoint: every variable "
                                             "whose name and shape match is restored (instead of --pretrained), "
                                             "the rest listed in the runlog", group="initialisation")
    val_every: int = setting(200, "steps between quarter-validation monitors", group="run")
    val_fraction: float = setting(0.25, "share of the val set per monitor", group="run")
    save_every: int = setting(2000, "keep a checkpoint every N steps (and the one of the step the run ends at)",
                              group="run")
    milestones: str = setting("full", "what those milestones hold: full (everything --resume needs, sharing "
                                      "latest/'s files of the same step through hard links) or weights (only what "
                                      "test.py restores: a third of an Adam run's checkpoint; latest/ stays full)",
                              choices=MILESTONES, group="run")
    log_every: int = setting(20, "steps between runlog lines", group="run")
    keep_best: bool = setting(False, "every --val_every steps also score the full validation set and keep the "
                                     "best-mIoU checkpoint in best/ (test.py --afteriter best)", group="run")
    xla: bool = setting(False, "XLA JIT compilation of the graph", group="run")
    mixed_precision: str = setting("fp32", "auto: bf16 on CPUs with native bfloat16 (AVX512-BF16, AMX), fp16 with "
                                           "loss scaling on GPUs with tensor cores, fp32 otherwise; or bf16, fp16, "
                                           "fp32 (utils/compat/precision.py)", choices=precision.MODES, group="run")
    precision: Optional[str] = setting(None, "the mode --mixed_precision resolved to (bf16, fp16 or fp32), once, "
                                             "on the machine the run started on", on_command_line=False)
    precision_reason: Optional[str] = setting(None, "why --mixed_precision resolved to `precision`",
                                              on_command_line=False)
    sync_batch_norm: bool = setting(False, "batch-norm statistics over the global batch, not each replica's",
                                    group="distribution")
    lr_scaling: str = setting("none", "linear: --learnrate x replicas (Goyal et al.; when --batch_size grew with "
                                      "them)", choices=LR_SCALING, group="distribution")
    total_steps: Optional[int] = setting(None, "steps the run trains for (from --max_steps or --epochs)",
                                         on_command_line=False)

    def __post_init__(self):
        for part in (OptimizerSettings, ScheduleSettings, LossSettings):
            part.__post_init__(self)
        for name, low in (("batch_size", 1), ("val_every", 1), ("save_every", 1), ("log_every", 1)):
            if getattr(self, name) < low:
                raise ValueError("--%s must be >= %d, got %r" % (name, low, getattr(self, name)))
        if not self.epochs > 0:
            raise ValueError("--epochs must be > 0, got %r" % self.epochs)
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("--max_steps must be >= 1, got %r" % self.max_steps)
        if not 0 < self.val_fraction <= 1:
            raise ValueError("--val_fraction must be in (0, 1], got %r" % self.val_fraction)
        if self.precision is None:  # a new run (or runargs from before the modes): resolve on this machine
            choice = precision.resolve(self.mixed_precision)
            object.__setattr__(self, "precision", choice.mode)
            object.__setattr__(self, "precision_reason", choice.reason)
        if isinstance(self.mixed_precision, bool):  # runargs written when the flag was a boolean
            object.__setattr__(self, "mixed_precision", self.precision)

    @classmethod
    def from_dict(cls, values):
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclasses.dataclass(frozen=True)
class RunConfig:
    model: arch.ModelSpec
    train: TrainSettings
    data: DataSpec
    replicas: dict = dataclasses.field(default_factory=dict)
    provenance: dict = dataclasses.field(default_factory=dict)

    @property
    def net_name(self):
        return self.model.run_name

    @property
    def effective_learnrate(self):
        """--learnrate, times the replica count under --lr_scaling linear."""
        return self.replicas.get("effective_learnrate", self.train.learnrate)

    def replace(self, **sections):
        return dataclasses.replace(self, **sections)

    # -------------------------------------------------------------- runargs
    def to_runargs(self):
        return {"schema": SCHEMA, "net_name": self.net_name, "model": self.model.to_dict(),
                "train": dataclasses.asdict(self.train), "data": self.data.to_dict(),
                "replicas": dict(self.replicas), "provenance": dict(self.provenance)}

    @classmethod
    def from_runargs(cls, values):
        if "model" not in values:
            return cls.from_flat_runargs(values)
        return cls(model=arch.ModelSpec.from_dict(values["model"]), train=TrainSettings.from_dict(values["train"]),
                   data=DataSpec.from_dict(values["data"]), replicas=dict(values.get("replicas") or {}),
                   provenance=dict(values.get("provenance") or {}))

    @classmethod
    def from_flat_runargs(cls, values):
        """Runargs written before schema 2: every setting in one flat dict, sorted into the sections here."""
        replica_keys = ("num_replicas", "num_workers", "global_batch_size", "per_replica_batch_size",
                        "effective_learnrate", "steps_per_epoch")
        replicas = {key: values[key] for key in replica_keys if key in values}
        if replicas:
            replicas.update(lr_scaling=values.get("lr_scaling", "none"),
                            sync_batch_norm=bool(values.get("sync_batch_norm")))
        return cls(model=arch.ModelSpec.from_flat(values), train=TrainSettings.from_dict(values),
                   data=DataSpec.from_dict(values), replicas=replicas,
                   provenance={"runargs_schema": 1})

    @classmethod
    def load(cls, folder):
        """The run folder's configuration (FileNotFoundError when `folder` has no runargs, ValueError naming the
        file when it is damaged)."""
        values = runfolder.read_runargs(folder)
        try:
            return cls.from_runargs(values)
        except (TypeError, KeyError, AttributeError, ValueError) as error:
            raise ValueError("%s: not a complete run configuration (%s)"
                             % (os.path.join(folder, runfolder.RUNARGS), error)) from None

    def save(self, folder):
        runfolder.write_runargs(folder, self.to_runargs())


# ----------------------------------------------------------------------------- resolving a new run
def total_steps(train, total_train_images):
    if train.max_steps:
        return int(train.max_steps)
    return max(1, int(math.ceil(train.epochs * total_train_images / train.batch_size)))


class PretrainedError(ValueError):
    """--pretrained names a checkpoint for an encoder that has none (it trains from scratch)."""


def resolve_pretrained(pretrained, modelspath, encoder):
    """Checkpoint path, or None for --pretrained none and for encoders without an ImageNet checkpoint
    (implied: `scratch_reason` says so); a missing file stops with what to do."""
    scratch = pretrained is not None and pretrained.lower() in SCRATCH
    entry = nets.get(encoder)
    if not entry.has_checkpoint:
        if pretrained is None or scratch:
            return None
        raise PretrainedError("--pretrained %s: %s has no ImageNet checkpoint, it trains from scratch; leave "
                              "--pretrained out (or pass --pretrained none)" % (pretrained, encoder))
    if scratch:
        return None
    path = pretrained or os.path.join(modelspath, entry.checkpoint)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, runfolder.RUNARGS)):
            raise ValueError("--pretrained %s is a run folder; to fine-tune from a trained run use "
                             "--init_from %s" % (path, path))
        raise ValueError("--pretrained %s is a folder, not a checkpoint" % path)
    if os.path.exists(path) or os.path.exists(path + ".index"):
        check_encoder_checkpoint(path, entry)
        return path
    if encoder in TORCH_MODELS:
        how = ("convert torchvision's or timm's %s weights into it: python utils/convert_weights.py "
               "<%s .pth or .safetensors> --modelspath %s" % (TORCH_MODELS[encoder], TORCH_MODELS[encoder],
                                                              modelspath))
    else:
        how = "download it from %s" % entry.checkpoint_source
    raise ValueError(
        "pretrained checkpoint for %s not found: %s\n"
        "  expected the ImageNet checkpoint '%s' under --modelspath %s\n"
        "  (%s, or pass --pretrained /path/to/file.ckpt),\n"
        "  or pass --pretrained none to train from scratch."
        % (encoder, path, entry.checkpoint, modelspath, how))


def check_encoder_checkpoint(path, entry):
    """The file must be a TensorFlow checkpoint holding this encoder's variables (names; shapes are checked by
    name when it is restored)."""
    try:
        names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError("--pretrained %s is not a readable TensorFlow checkpoint (%s)"
                         % (path, str(getattr(error, "message", error)).strip().splitlines()[0][:150])) from None
    if not any(name.startswith(entry.scope + "/") for name in names):
        raise ValueError("--pretrained %s holds no %s/ variables: not a checkpoint of %s (it holds e.g. %s)"
                         % (path, entry.scope, entry.name, ", ".join(sorted(names)[:3])))


def scratch_reason(encoder):
    """Why a run without --pretrained trains from scratch, for the runlog."""
    if nets.get(encoder).has_checkpoint:
        return "--pretrained none"
    return "%s has no ImageNet checkpoint: --pretrained none implied" % encoder


def provenance(argv=None):
    """What made the run: the command line, when, which code and libraries, on which CPU and with which kernels
    (runargs' "provenance"; the precision it resolved to is train.precision)."""
    return {"argv": list(sys.argv if argv is None else argv),
            "created": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": machine.cpu_info(),
            "code": software.code_version(), "versions": software.versions(),
            "backend": dict(backend.record(), dilated_convs=native_atrous.route().name)}

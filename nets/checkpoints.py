"""Restore an ImageNet (slim) checkpoint into a feature extractor, checking it by name first.

tf.train.Saver fails on the first missing or mis-shaped variable with an
opaque message (or, with a loose var_list, silently restores half a net).
`restore_encoder` instead compares the graph's model variables under
the net's scope with the checkpoint's variable list, reports every problem at
once in a `CheckpointMismatchError`, and otherwise restores and returns a
`RestoreReport` the training code can log:

    report = restore_encoder(sess, path, scope="resnet_v1_50",
                                       exclude=("resnet_v1_50/logits",))
    print(report.summary())

The classifier head of an ImageNet checkpoint is expected to go unused by a
segmentation (base_only) graph: list it in `exclude`, it is reported apart
and is not an error.  Checking that the file exists is the caller's job.

Checkpoints saved by a training that kept a tf.train.ExponentialMovingAverage of its weights (the TPU
repository's EfficientNet, the TF-Slim zoo's MobileNetV3) hold `<name>/ExponentialMovingAverage` next to
`<name>`, and the published ImageNet accuracy is the averaged weights' (their evals restore
`ema.variables_to_restore()`).  With `ema=True` (the default) each variable that has such a twin is restored
from it; the report counts them (`from_ema`).
"""
import dataclasses
from typing import Dict, List, Tuple

from utils.compat import tf

# tf.train.ExponentialMovingAverage.average_name with the default name: `var.op.name + "/ExponentialMovingAverage"`.
EMA_SUFFIX = "/ExponentialMovingAverage"
# train.py --pretrained_ema: auto = the averaged weights where the file has them, off = the raw ones.
EMA_MODES = ("auto", "off")

# Where train.py looks for `<net's checkpoint file>` (--modelspath) and convert_weights writes it.
DEFAULT_MODELSPATH = "/data/models"


class CheckpointMismatchError(ValueError):
    """The checkpoint cannot fill the feature extractor: names (and shapes) are in the message."""

    def __init__(self, checkpoint_path, scope, missing, mismatched):
        self.checkpoint_path = checkpoint_path
        self.scope = scope
        self.missing = dict(missing)        # checkpoint name -> graph shape
        self.mismatched = dict(mismatched)  # checkpoint name -> (graph 'shape dtype', checkpoint 'shape dtype')
        lines = ["checkpoint %s does not match the graph's %r variables:" % (checkpoint_path, scope)]
        if self.missing:
            lines.append("  %d missing from the checkpoint (in graph, not in file):" % len(self.missing))
            lines += ["    %s %s" % (name, list(shape)) for name, shape in sorted(self.missing.items())]
        if self.mismatched:
            lines.append("  %d with a different shape or dtype (graph vs checkpoint):" % len(self.mismatched))
            lines += ["    %s graph %s vs checkpoint %s" % (name, graph, ckpt)
                      for name, (graph, ckpt) in sorted(self.mismatched.items())]
        lines.append("  (is this the checkpoint of the right net / depth multiplier?)")
        super().__init__("\n".join(lines))


@dataclasses.dataclass
class RestoreReport:
    """What a restore did, by checkpoint variable name."""
    checkpoint_path: str
    scope: str
    restored: List[str]        # restored from the checkpoint
    unused_head: List[str]     # in the checkpoint under `exclude` (the classifier head): expected unused
    unexpected: List[str]      # in the checkpoint under `scope`, not in the graph, not excluded
    skipped: List[str]         # graph variables under `exclude`: left to their initializers
    from_ema: List[str] = dataclasses.field(default_factory=list)  # of `restored`: from <name>/ExponentialMovingAverage
    averages_unused: int = 0   # EMA twins of restored variables left in the file (ema=False: the raw weights asked)

    def ema_text(self):
        """', N from their ExponentialMovingAverage' (and, when the raw weights were asked, what was left)."""
        text = ", %d from their ExponentialMovingAverage" % len(self.from_ema)
        if self.averages_unused:
            text += " (raw weights asked: %d averages in the file not used)" % self.averages_unused
        return text

    def summary(self):
        text = "restored %d variables of %r from %s%s" % (len(self.restored), self.scope, self.checkpoint_path,
                                                         self.ema_text())
        if self.unused_head:
            text += "; classifier head not used: %s" % ", ".join(self.unused_head)
        if self.skipped:
            text += "; excluded graph variables left initialized: %s" % ", ".join(self.skipped)
        if self.unexpected:
            text += "; WARNING %d checkpoint variables unused: %s" % (
                len(self.unexpected), ", ".join(self.unexpected))
        return text


def _under(name, prefixes):
    return any(name == p or name.startswith(p.rstrip("/") + "/") for p in prefixes)


def _graph_variables(scope, graph_scope):
    """checkpoint name -> model variable, for the model variables under `graph_scope`."""
    prefix = graph_scope.rstrip("/") + "/"
    found = {}
    for var in tf.model_variables():
        name = var.op.name
        if name.startswith(prefix):
            found[scope.rstrip("/") + "/" + name[len(prefix):]] = var
    return found


def check_encoder(checkpoint_path, scope, exclude=(), graph_scope=None, ema=True):
    """Compare without restoring: returns (var_list for a Saver, RestoreReport) or raises CheckpointMismatchError.

    scope: the variables' prefix in the checkpoint (e.g. 'resnet_v1_50').
    graph_scope: where the same variables live in this graph, if the net was
      built under an outer scope (e.g. 'fcn/resnet_v1_50'); default `scope`.
    exclude: checkpoint-name prefixes (the classifier head) neither required
      nor restored.
    ema: restore each variable whose `<name>/ExponentialMovingAverage` the file holds from that average
      (var_list then maps the average's name to the variable); False: the raw values.
    """
    exclude = tuple(exclude)
    graph_vars = _graph_variables(scope, graph_scope or scope)
    if not graph_vars:
        raise ValueError("no model variables under %r in the current graph; build the net first"
                         % (graph_scope or scope))
    reader = tf.train.load_checkpoint(checkpoint_path)
    ckpt_shapes = reader.get_variable_to_shape_map()
    ckpt_dtypes = reader.get_variable_to_dtype_map()

    var_list: Dict[str, tf.Variable] = {}
    missing: Dict[str, Tuple[int, ...]] = {}
    mismatched = {}
    skipped, from_ema, averages_unused = [], [], 0
    for name, var in sorted(graph_vars.items()):
        if _under(name, exclude):
            skipped.append(name)
            continue
        shape = tuple(var.shape.as_list())
        if name not in ckpt_shapes:
            missing[name] = shape
            continue
        average = name + EMA_SUFFIX
        source = average if ema and average in ckpt_shapes else name
        if source != average and average in ckpt_shapes:
            averages_unused += 1
        ckpt_shape = tuple(ckpt_shapes[source])
        dtype, ckpt_dtype = var.dtype.base_dtype, ckpt_dtypes[source].base_dtype
        if shape != ckpt_shape or dtype != ckpt_dtype:
            mismatched[source] = ("%s %s" % (list(shape), dtype.name),
                                  "%s %s" % (list(ckpt_shape), ckpt_dtype.name))
            continue
        var_list[source] = var
        if source == average:
            from_ema.append(name)
    if missing or mismatched:
        raise CheckpointMismatchError(checkpoint_path, scope, missing, mismatched)

    # a restored or excluded variable's average is neither unexpected nor listed with the head
    twins = {n for n in ckpt_shapes if n.endswith(EMA_SUFFIX) and n[:-len(EMA_SUFFIX)] in ckpt_shapes}
    in_scope = [n for n in ckpt_shapes if _under(n, (scope,)) and n not in graph_vars
                and not (n in twins and (n[:-len(EMA_SUFFIX)] in graph_vars or _under(n, exclude)))]
    report = RestoreReport(
        checkpoint_path=checkpoint_path, scope=scope, restored=sorted(_raw(k) for k in var_list),
        unused_head=sorted(n for n in in_scope if _under(n, exclude)),
        unexpected=sorted(n for n in in_scope if not _under(n, exclude)),
        skipped=skipped, from_ema=sorted(from_ema), averages_unused=averages_unused)
    return var_list, report


def _raw(name):
    """The variable's checkpoint name, for the name of its average or of itself."""
    return name[:-len(EMA_SUFFIX)] if name.endswith(EMA_SUFFIX) else name


def restore_encoder(sess, checkpoint_path, scope, exclude=(), graph_scope=None, ema=True):
    """Check (see check_encoder), then restore with a Saver; returns the RestoreReport.

    Raises CheckpointMismatchError naming every missing / mis-shaped variable
    and the file, before anything is restored.
    """
    var_list, report = check_encoder(checkpoint_path, scope, exclude, graph_scope, ema)
    tf.train.Saver(var_list=var_list).restore(sess, checkpoint_path)
    return report


def restore_registry_entry(sess, checkpoint_path, entry, graph_scope=None, net_args=None, ema=True):
    """restore_encoder for a nets.registry entry: its scope, its head excluded, and the parts a build with
    `net_args` (a decoder's encoder_args) does not make."""
    return restore_encoder(sess, checkpoint_path, entry.scope, exclude=entry.unbuilt_scopes(net_args or {}),
                           graph_scope=graph_scope, ema=ema)


@dataclasses.dataclass
class MatchReport:
    """What restore_matching did, by variable name."""
    checkpoint_path: str
    restored: List[str]
    other_shape: List[str]     # 'name graph [shape] vs checkpoint [shape]': left to their initializers
    not_in_checkpoint: List[str]


def restore_matching(sess, checkpoint_path, variables):
    """Restore each of `variables` whose name and shape the checkpoint has; report the others.

    For fine-tuning from another trained model (a run of another dataset: its
    classifier has another class count and stays new).
    """
    reader = tf.train.load_checkpoint(checkpoint_path)
    shapes = reader.get_variable_to_shape_map()
    var_list, other_shape, missing = {}, [], []
    for variable in variables:
        name = variable.op.name
        if name not in shapes:
            missing.append(name)
        elif list(shapes[name]) != variable.shape.as_list():
            other_shape.append("%s graph %s vs checkpoint %s" % (name, variable.shape.as_list(), list(shapes[name])))
        else:
            var_list[name] = variable
    if not var_list:
        raise CheckpointMismatchError(checkpoint_path, "the model", {v.op.name: v.shape.as_list() for v in variables}, {})
    tf.train.Saver(var_list=var_list).restore(sess, checkpoint_path)
    return MatchReport(checkpoint_path, sorted(var_list), sorted(other_shape), sorted(missing))


__all__ = ["DEFAULT_MODELSPATH", "EMA_SUFFIX", "EMA_MODES", "CheckpointMismatchError", "RestoreReport", "MatchReport",
           "check_encoder", "restore_encoder",
           "restore_registry_entry", "restore_matching"]

"""Is a checkpoint whole and finite?  What --resume, test.py and the Segmenter ask before they restore one.

A NaN run must never leave non-finite weights behind as "the last good
checkpoint", and a save cut short (a kill, a full disk) must not leave a
checkpoint that loads half: `problem` reads every tensor back and checks the
floating-point ones, and `newest_intact` walks a run's checkpoints newest
first, past any damaged one, saying what it skipped.
"""
import numpy as np

from utils.compat import tf
from utils.training import runfolder


class DamagedCheckpoint(ValueError):
    pass


def problem(path):
    """None when the checkpoint at prefix `path` reads back whole with finite floats; else one line saying why."""
    try:
        reader = tf.train.load_checkpoint(path)
        dtypes = reader.get_variable_to_dtype_map()
        non_finite = []
        for name in sorted(dtypes):
            value = reader.get_tensor(name)
            if dtypes[name].is_floating and not np.all(np.isfinite(value)):
                non_finite.append(name)
    except (tf.errors.OpError, ValueError, OSError, IndexError, RuntimeError) as error:  # what a cut file raises
        return "unreadable (%s)" % str(getattr(error, "message", error)).strip().splitlines()[0][:200]
    if non_finite:
        return "non-finite values (NaN/Inf) in %d variables, e.g. %s" % (len(non_finite), ", ".join(non_finite[:3]))
    return None


def check(path):
    """Raise DamagedCheckpoint naming the file and what is wrong with it."""
    found = problem(path)
    if found:
        raise DamagedCheckpoint("checkpoint %s: %s" % (path, found))
    return path


def weights_only(path):
    """Whether the checkpoint at `path` is a --milestones weights milestone: no optimizer state to resume from."""
    return tf.train.load_checkpoint(path).has_tensor(runfolder.WEIGHTS_ONLY)


def newest_intact(folder, log=print, resumable=False):
    """The newest checkpoint of a run folder that reads back whole and finite; damaged newer ones are reported
    through `log` and skipped.  resumable: also pass over weights-only milestones (--resume needs the optimizer
    state).  FileNotFoundError when there is none."""
    candidates = runfolder.checkpoint_candidates(folder)
    if not candidates:
        raise FileNotFoundError("no checkpoint in %s (has training saved one yet?)" % folder)
    for path in candidates:
        found = problem(path)
        if found is None and not (resumable and weights_only(path)):
            return path
        log("checkpoint %s %s: skipped, trying an older one"
            % (path, "is %s" % found if found else "holds the weights only (--milestones weights)"))
    raise FileNotFoundError("no intact checkpoint %sin %s: all %d are damaged%s"
                            % ("to resume from " if resumable else "", folder, len(candidates),
                               ", non-finite or weights only" if resumable else " or non-finite"))

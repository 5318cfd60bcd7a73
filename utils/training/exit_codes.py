"""train.py's exit codes, declared once: `train.py && test.py` and schedulers tell a finished run from the rest.

    0        finished: every step trained, the final checkpoint saved
    2        usage error: a bad flag value, a missing file or run folder, a run folder being trained; nothing ran
    3        NaN/Inf: the loss or the weights turned non-finite; stopped without saving, the last good
             checkpoint is kept
    4        data error: a record file or dataset.json missing, empty or damaged (before or during training)
    128+N    stopped by signal N (130: Ctrl-C, 143: SIGTERM) after the final checkpoint is saved; `--resume`
             continues it
"""
import signal

FINISHED = 0
USAGE = 2
NAN = 3
DATA = 4
SIGNAL_BASE = 128


def stopped_by(signum):
    """The exit code of a run stopped by signal `signum`, as a shell reports a process that signal killed."""
    return SIGNAL_BASE + int(signum)


def help_text():
    """The codes for --help: one line each."""
    return ("exit codes: %d finished; %d usage error (nothing ran); %d NaN/Inf loss or weights (the last good "
            "checkpoint kept); %d data error (a record file or dataset.json missing or damaged); %d+N stopped by "
            "signal N after saving its checkpoint (%d Ctrl-C, %d SIGTERM; --resume continues it)"
            % (FINISHED, USAGE, NAN, DATA, SIGNAL_BASE, stopped_by(signal.SIGINT), stopped_by(signal.SIGTERM)))

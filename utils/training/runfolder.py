"""Run folders: `tmp/<YYYYMMDD>_<NETNAME>__<#RUN>`, one per training run, holding everything it made.

    runargs            every resolved setting as JSON: model / train / data (utils/training/config.py;
                       test.py and --resume read it back)
    runlog             one line per logged step, human-readable
    model.ckpt-<step>  milestone checkpoints, every --save_every steps and at the step each training process
                       ended at (finished or stopped by a signal): test.py --afteriter; --milestones full: the
                       same files as latest/ of that step (hard links), weights: the weights alone
    latest/            the newest checkpoint (rolling, always full), used by --resume and by default in test.py
    best/              with --keep_best: the checkpoint of the best full-validation mIoU, best.json its score
    events.out.tfevents.*  TensorBoard
    .lock              held (flock) by the process training the run: a second one refuses to start

Creation is atomic: os.mkdir either makes the folder or fails, so two runs
started in the same second still get different numbers.
"""
import datetime
import fcntl
import glob
import json
import os
import re
import shutil

RUNARGS = "runargs"
RUNLOG = "runlog"
LATEST_DIR = "latest"
BEST_DIR = "best"
BEST_JSON = "best.json"
CKPT_PREFIX = "model.ckpt"
_CKPT_INDEX = re.compile(r"^model\.ckpt-(\d+)\.index$")
_CKPT_STEP = re.compile(r"-(\d+)$")
LOCK = ".lock"
# A variable only weights-only milestones hold (train.py --milestones weights): --resume passes them over.
WEIGHTS_ONLY = "weights_only_milestone"
_LOG_STEP = re.compile(r"^\S+ \S+ step (\d+) \|")


class RunFolderBusy(RuntimeError):
    pass


class RunLock:
    """An exclusive flock on <folder>/.lock while a process trains the run.

    The kernel drops the lock when the process ends, however it ends (kill -9
    included), so a dead run never leaves its folder locked.
    """

    def __init__(self, folder):
        self.path, self._fd = os.path.join(folder, LOCK), None

    def acquire(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunFolderBusy("%s is being trained by %s: wait for it to end, or stop it first"
                                % (os.path.dirname(self.path), holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, ("process %d since %s" % (os.getpid(), datetime.datetime.now().isoformat(timespec="seconds")))
                 .encode())
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def create(root, name, today=None):
    """Make and return a fresh run folder under `root`; the run number is the first free one."""
    os.makedirs(root, exist_ok=True)
    stamp = (today or datetime.date.today()).strftime("%Y%m%d")
    prefix = "%s_%s__" % (stamp, name)
    taken = [int(entry[len(prefix):]) for entry in os.listdir(root)
             if entry.startswith(prefix) and entry[len(prefix):].isdigit()]
    number = max(taken, default=0) + 1
    while True:
        path = os.path.join(root, "%s%d" % (prefix, number))
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            number += 1


def write_runargs(folder, settings):
    path = os.path.join(folder, RUNARGS)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(settings, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def read_runargs(folder):
    path = os.path.join(folder, RUNARGS)
    if not os.path.isfile(path):
        raise FileNotFoundError("%s is not a training run folder: it has no %s file" % (folder, RUNARGS))
    try:
        with open(path) as handle:
            values = json.load(handle)
    except ValueError as error:
        raise ValueError("%s is not JSON (%s): the run folder's settings are damaged" % (path, error)) from None
    if not isinstance(values, dict):
        raise ValueError("%s holds a %s, not a run's settings" % (path, type(values).__name__))
    return values


def milestone_steps(folder):
    """Steps with a kept checkpoint `model.ckpt-<step>` in the run folder, ascending."""
    if not os.path.isdir(folder):
        return []
    return sorted(int(m.group(1)) for m in map(_CKPT_INDEX.match, os.listdir(folder)) if m)


def latest_steps(folder):
    """Steps with a checkpoint in latest/ (one, or none; two for a moment while a save rolls it over)."""
    return milestone_steps(os.path.join(folder, LATEST_DIR))


def latest_prefix(folder, step):
    return os.path.join(folder, LATEST_DIR, "%s-%d" % (CKPT_PREFIX, step))


def addressable_steps(folder):
    """Every step test.py --afteriter can name: the milestones and latest/'s step, ascending."""
    return sorted(set(milestone_steps(folder)) | set(latest_steps(folder)))


def checkpoint_path(folder, step=None):
    """Checkpoint prefix for `step` (its milestone, else latest/ of that step), 'best' (--keep_best's), or the
    newest one (latest/ or a milestone) when step is None."""
    if step == "best":
        steps = milestone_steps(os.path.join(folder, BEST_DIR))
        if not steps:
            raise FileNotFoundError("no best/ checkpoint in %s: it is kept by train.py --keep_best" % folder)
        return os.path.join(folder, BEST_DIR, "%s-%d" % (CKPT_PREFIX, steps[-1]))
    if step is not None:
        if step in milestone_steps(folder):
            return os.path.join(folder, "%s-%d" % (CKPT_PREFIX, step))
        if step in latest_steps(folder):
            return latest_prefix(folder, step)
        raise FileNotFoundError("no checkpoint after %s steps in %s; saved steps: %s"
                                % (step, folder, ", ".join(map(str, addressable_steps(folder))) or "none"))
    candidates = checkpoint_candidates(folder)
    if not candidates:
        raise FileNotFoundError("no checkpoint in %s (has training saved one yet?)" % folder)
    return candidates[0]


def checkpoint_files(prefix):
    """The files of the checkpoint at `prefix`: its data shards, then its index (what marks it present)."""
    data = sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*"))
    return [path for path in data if ".tempstate" not in path] + [prefix + ".index"]


def remove_checkpoint(prefix):
    """Delete the checkpoint at `prefix`, its index first (so a half-removed one is never listed)."""
    for path in reversed(checkpoint_files(prefix)):
        if os.path.exists(path):
            os.remove(path)


def share_checkpoint(source, target):
    """Give the checkpoint at prefix `source` a second name `target` without copying its bytes: hard links.
    Each name stays whole when the other is deleted (a keep-limit) or saved again (TensorFlow writes a new file
    and renames it over the old name, never into it).  Where the filesystem has no hard links, a copy.  The
    index goes last, so a half-made share is never listed; returns "linked" or "copied"."""
    how = "linked"
    for path in checkpoint_files(source):
        name = target + path[len(source):]
        temporary = name + ".tempstate-share"  # what remove_stale_temporaries clears after a kill
        if os.path.lexists(temporary):
            os.remove(temporary)
        try:
            os.link(path, temporary)
        except OSError:  # no hard links here (some network and FUSE filesystems, across devices)
            shutil.copyfile(path, temporary)
            how = "copied"
        os.replace(temporary, name)
        if os.path.lexists(temporary):  # rename between two links of one file does nothing
            os.remove(temporary)
    return how


def checkpoint_step(path):
    """Training step encoded in a checkpoint prefix 'model.ckpt-<step>', or None."""
    match = _CKPT_STEP.search(os.path.basename(path or ""))
    return int(match.group(1)) if match else None


def read_best(folder):
    """{step, mIoU, ...} of the best checkpoint kept so far, or None."""
    path = os.path.join(folder, BEST_DIR, BEST_JSON)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def write_best(folder, record):
    directory = os.path.join(folder, BEST_DIR)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, BEST_JSON)
    with open(path + ".tmp", "w") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    os.replace(path + ".tmp", path)


def checkpoint_candidates(folder):
    """Every checkpoint prefix of the run, newest first (latest/ before a milestone of the same step)."""
    found = []
    latest = os.path.join(folder, LATEST_DIR)
    for directory in (latest, folder):
        for step in milestone_steps(directory):
            found.append((step, directory == latest, os.path.join(directory, "%s-%d" % (CKPT_PREFIX, step))))
    return [path for _, _, path in sorted(found, reverse=True)]


def trim_runlog(folder, step):
    """Drop the runlog lines of steps after `step` (written by a process killed before its next checkpoint), and
    everything after the first of them; returns how many lines went."""
    path = os.path.join(folder, RUNLOG)
    if not os.path.isfile(path):
        return 0
    with open(path) as handle:
        lines = handle.readlines()
    keep = len(lines)
    for index, line in enumerate(lines):
        match = _LOG_STEP.match(line)
        if match and int(match.group(1)) > step:
            keep = index
            break
    if keep < len(lines):
        with open(path + ".tmp", "w") as handle:
            handle.writelines(lines[:keep])
        os.replace(path + ".tmp", path)
    return len(lines) - keep


def remove_stale_temporaries(folder):
    """Delete half-written checkpoint files (`*.tempstate*`, `*_temp*`) a killed save left; call with the run's
    lock held, so no live writer owns them.  Returns the removed paths."""
    stale = []
    for directory in (folder, os.path.join(folder, LATEST_DIR), os.path.join(folder, BEST_DIR)):
        stale += glob.glob(os.path.join(glob.escape(directory), "*.tempstate*"))
        stale += [p for p in glob.glob(os.path.join(glob.escape(directory), "*_temp*")) if "ckpt" in p]
    for path in stale:
        if os.path.isdir(path):
            for root, _, files in os.walk(path, topdown=False):
                for name in files:
                    os.remove(os.path.join(root, name))
                os.rmdir(root)
        elif os.path.exists(path):
            os.remove(path)
    return stale

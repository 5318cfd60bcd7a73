"""A cell is its settings: the resolved train.py and test.py settings it runs with, recorded in the cell.

    cells/<cell id>/cell.json   {"cell", "hash", "train": {dest: value}, "train_hash", "test": {...}, "test_hash"}

The train part is every train.py setting the cell's command line resolves to
(defaults included, so a changed default shows too), with the study's budget
(max_steps) and milestone interval (save_every).  Left out are where and how
a run runs (train.py's EXECUTION flags: runs_root, threads, ...; and log_every)
and where its inputs lie (datapath, modelspath): the same data moved to
another disk is the same cell.  The test part is the study's test settings
that change a score.  A cell whose recorded part differs from what the study
would run now is stale; `changes` names the keys (old -> new).
"""
import hashlib
import json
import os
import re

from utils.study.errors import StudyError, did_you_mean
from utils.training.placement import EXECUTION_FLAGS

RECORD = "cell.json"
# train.py's EXECUTION (where and how a run runs, never its config; tests/test_study.py keeps the two equal)
EXECUTION = ("runs_root", "resume", "threads", "gpu") + EXECUTION_FLAGS
LOCATIONS = ("datapath", "modelspath")  # where the inputs lie, not what the cell is
# log_every: a run setting (kept on resume) that changes what the runlog shows, not what the run computes;
# epochs: a study's budget is always max_steps
NOT_THE_CELL = EXECUTION + LOCATIONS + ("verbose", "epochs", "log_every")
TEST_KEYS = ("bootstrap", "bootstrap_by", "checkpoints", "pixels", "split")  # latency: measured per configuration
TEST_KEYS_GAINED = {"split": "validation"}  # what a cell scored before the study's test had the key
NOT_RECORDED = "(not recorded)"
_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def _plain(value):
    """The value as JSON keeps it, so a recorded setting and a freshly parsed one compare equal."""
    return json.loads(json.dumps(value, default=str))


class TrainFlags:
    """train.py's parser, for the settings a command line resolves to and the defaults of settings a record
    made before they existed lacks."""

    def __init__(self, parser):
        self.parser = parser
        self.defaults = {action.dest: _plain(action.default) for action in parser._actions
                         if action.option_strings and action.dest not in NOT_THE_CELL}

    def parse(self, argv):
        """argparse's namespace for `argv`; a bad value raises StudyError (argparse would exit)."""
        def refuse(message):
            bad = _CHOICE.search(message)
            hint = did_you_mean(bad.group(1), re.findall(r"[^\s',]+", bad.group(2))) if bad else ""
            raise StudyError(message + hint)

        original = self.parser.error
        self.parser.error = refuse
        try:
            return self.parser.parse_args([str(a) for a in argv])
        finally:
            self.parser.error = original

    def resolve(self, argv):
        """{dest: value} of every setting `argv` runs train.py with, the execution flags and locations left out."""
        return {dest: _plain(value) for dest, value in sorted(vars(self.parse(argv)).items())
                if dest not in NOT_THE_CELL}


def save_every(steps, checkpoints):
    """The milestone interval that leaves the study's `checkpoints` milestones for test.py --afteriter last:K."""
    return max(1, int(steps) // max(1, int(checkpoints)))


def train_settings(cell, steps):
    """What the cell trains with under a budget of `steps`."""
    return dict(cell.resolved, max_steps=int(steps), save_every=save_every(steps, cell.test["checkpoints"]))


def test_settings(cell):
    return {key: _plain(cell.test.get(key)) for key in TEST_KEYS}


def digest(settings):
    """A stable short hash of settings (key order and JSON spelling do not matter)."""
    return hashlib.sha256(json.dumps(_plain(settings), sort_keys=True).encode()).hexdigest()[:12]


def read(folder):
    """The cell's record, {} when it has none (a cell made before cells recorded their settings)."""
    path = os.path.join(folder, RECORD)
    if not os.path.isfile(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def write(folder, cell_id, part, settings):
    """Record `part` ("train" or "test") of the cell's settings, with the hashes."""
    record = dict(read(folder), cell=cell_id)
    record[part] = _plain(settings)
    record[part + "_hash"] = digest(settings)
    record["hash"] = digest({key: record.get(key) for key in ("train", "test")})
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, RECORD)
    with open(path + ".tmp", "w") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
    return record


def changes(old, new, defaults=None):
    """[(key, old, new)] where the settings differ.  A key the record lacks counts as its default (a setting
    train.py gained since), a key the study no longer has is left out (a flag train.py dropped)."""
    defaults = defaults or {}
    found = []
    for key in sorted(new):
        before = old.get(key, defaults.get(key, NOT_RECORDED))
        if _plain(before) != _plain(new[key]):
            found.append((key, before, new[key]))
    return found


def _shown(value):
    return "unset" if value is None else str(value)


def describe(found):
    """"learnrate 0.002 -> 0.0005, seed 1 -> 2"."""
    return ", ".join("%s %s -> %s" % (key, _shown(old), _shown(new)) for key, old, new in found)

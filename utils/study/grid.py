"""A study file -> its cells: the base recipe, the axes, the budget, checked against train.py's own flags.

    {
      "name": "encoders_x_decoders",                      # default: the file's name
      "base": {"dataset_family": "camvid", "datapath": "/data", "pretrained": "none", "pixels": 256},
      "axes": {"encoder": ["resnet_v1_18", "mobilenet_v2"], "decoder": ["FCN", "LinkNet"], "seed": [1, 2]},
      # an axis of named recipes, each a few flags set together:
      #   "recipe": {"ce": {"loss": "ce", "class_weights": "none"}, "focal": {"loss": "focal", "class_weights": "none"}}
      "budget": {"max_steps": 600},                        # or {"minutes": 10}: steps from a timed probe
      "test": {"bootstrap": 1000, "bootstrap_by": "auto", "checkpoints": 3, "latency": "360x480",
               "split": "validation"},                 # or "holdout" (utils/tfrecordify.py --holdout_sequence)
      "compare": [{"a": {"decoder": "FCN"}, "b": {"decoder": "LinkNet"}}],
      "classes": ["Pole", "SignSymbol"]                   # per-class IoU columns of the table (optional)
    }

Any train.py flag is a key of `base` or an axis (its name with or without the
dashes; seg-mentor's names and ours: `basenet` or `encoder`).  A cell is one
combination of the axes' values; its id names them, e.g.
`encoder-resnet_v1_18__decoder-FCN__seed-1`.  An axis given as an object of
named recipes (any axis name) sets each recipe's flags together; its value in
the cell id and the table is the recipe's name.

A relative `datapath` or `modelspath` is relative to the project folder (where
`python utils/tfrecordify.py ... --datapath tmp/segdata` run from it writes),
`~` and `$VARIABLES` are expanded, so a study file names no machine's paths;
`study.py --set datapath=/data` points one invocation elsewhere
(utils/study/overrides.py).  Each cell carries what identifies it: the train.py
settings its command line resolves to and the study's test settings
(utils/study/identity.py).
"""
import dataclasses
import itertools
import json
import os
import re

from utils.study import identity, overrides
from utils.study.errors import StudyError, did_you_mean

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = ("name", "base", "axes", "budget", "test", "compare", "classes")
BUDGET_KEYS = ("max_steps", "minutes")
CONTROLLED = ("runs_root", "resume", "max_steps", "epochs", "save_every", "verbose", "gpu")
TEST_DEFAULTS = {"bootstrap": 1000, "bootstrap_by": "auto", "checkpoints": 3, "latency": "360x480", "pixels": None,
                 "split": "validation"}


@dataclasses.dataclass
class Cell:
    id: str
    axes: dict        # axis -> value, in the study's axis order
    settings: dict    # dest -> value: base and axes together, train.py's destinations
    argv: list        # train.py's command line for a new run (without --runs_root)
    resolved: dict = dataclasses.field(default_factory=dict)  # every train.py setting argv resolves to
    test: dict = dataclasses.field(default_factory=dict)      # the study's test settings
    flags: object = dataclasses.field(default=None, repr=False, compare=False)  # identity.TrainFlags

    def config_key(self, without=("seed",)):
        """The configuration the cell belongs to: its axes but `without` (the seed), as a readable label."""
        return ", ".join("%s=%s" % (k, v) for k, v in self.axes.items() if k not in without) or "all"


@dataclasses.dataclass
class Study:
    name: str
    path: str
    base: dict
    axes: dict
    budget: dict
    test: dict
    compare: list
    cells: list
    classes: list = dataclasses.field(default_factory=list)  # per-class IoU columns of the table


def _flag_table(parser):
    """{every spelling of a train.py flag (without dashes): (dest, action)}."""
    table = {}
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and not option.startswith("--no-"):
                table[option[2:]] = (action.dest, action)
    return table


def _argv(settings, table):
    """train.py arguments for {dest: value}, with the flag names train.py prints."""
    by_dest = {}
    for name, (dest, action) in table.items():
        by_dest.setdefault(dest, "--" + action.option_strings[0].lstrip("-")
                           if action.option_strings[0].startswith("--") else "--" + name)
    argv = []
    for dest, value in settings.items():
        if value is None:
            continue
        flag = by_dest[dest]
        argv += [flag, str(value) if not isinstance(value, bool) else ("True" if value else "False")]
    return argv


def _safe(value):
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", str(value))


def location(value):
    """A datapath / modelspath of a study: `~` and `$VARIABLES` expanded, relative to the project folder."""
    if not isinstance(value, str) or not value:
        return value
    value = os.path.expanduser(os.path.expandvars(value))
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(PROJECT, value))


def read(path):
    """The study file's JSON object (StudyError when it is not one)."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise StudyError("%s: not a readable JSON study file (%s)" % (path, error)) from None
    if not isinstance(data, dict):
        raise StudyError("%s: a study is a JSON object with base, axes, budget (see python study.py --help)" % path)
    return data


def with_overrides(data, texts, parser):
    """The study `data` with study.py's `--set KEY=VALUE`s applied, each key checked against what a study has."""
    flags = [name for name in _flag_table(parser)]
    axes = data.get("axes") if isinstance(data.get("axes"), dict) else {}
    return overrides.apply(data, texts, KEYS, {"base": flags, "axes": flags + list(axes), "test": list(TEST_DEFAULTS),
                                               "budget": list(BUDGET_KEYS)})


def load(path, parser, settings=()):
    """Read and check a study file against train.py's `parser`, with `settings` (--set KEY=VALUE) applied;
    StudyError names the key and the valid values."""
    return build(with_overrides(read(path), settings, parser), path, parser)


def build(data, path, parser):
    """The study of the JSON object `data` (read from `path`)."""
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise StudyError("%s: unknown keys %s; a study has %s%s"
                         % (path, unknown, ", ".join(KEYS), did_you_mean(unknown[0], KEYS)))
    classes = data.get("classes") or []
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise StudyError("%s: classes is a list of class names (the per-class IoU columns of the table)" % path)
    table = _flag_table(parser)

    def dest_of(key, where):
        name = str(key).lstrip("-")
        if name not in table:
            raise StudyError("%s: %s key %r is not a train.py flag%s; valid keys: %s"
                             % (path, where, key, did_you_mean(name, [n for n in table if n not in CONTROLLED]),
                                ", ".join(sorted(n for n in table if n not in CONTROLLED))))
        dest = table[name][0]
        if dest in CONTROLLED:
            raise StudyError("%s: %s key %r is set by the study itself (budget / cells); remove it" % (path, where, key))
        return dest

    base = {dest_of(k, "base"): v for k, v in (data.get("base") or {}).items()}
    axes = {}  # axis -> (function value -> {dest: value}, values)
    for key, values in (data.get("axes") or {}).items():
        if isinstance(values, dict) and values and all(isinstance(v, dict) for v in values.values()):
            recipes = {name: {dest_of(flag, "axis %r recipe %r" % (key, name)): value
                              for flag, value in flags.items()} for name, flags in values.items()}
            axes[key] = (recipes.__getitem__, list(recipes))
        elif isinstance(values, list) and values:
            dest = dest_of(key, "axes")
            axes[key] = ((lambda value, dest=dest: {dest: value}), values)
        else:
            raise StudyError("%s: axis %r needs a non-empty list of values or an object of named recipes "
                             "({name: {flag: value}})" % (path, key))
    budget = dict(data.get("budget") or {})
    if set(budget) - set(BUDGET_KEYS) or len(budget) != 1:
        odd = sorted(set(budget) - set(BUDGET_KEYS))
        raise StudyError("%s: budget is {\"max_steps\": N} or {\"minutes\": M}, got %r%s"
                         % (path, budget, did_you_mean(odd[0], BUDGET_KEYS) if odd else ""))
    test = dict(TEST_DEFAULTS, **(data.get("test") or {}))
    if set(test) - set(TEST_DEFAULTS):
        odd = sorted(set(test) - set(TEST_DEFAULTS))
        raise StudyError("%s: unknown test keys %s; valid: %s%s" % (path, odd, ", ".join(TEST_DEFAULTS),
                                                                   did_you_mean(odd[0], TEST_DEFAULTS)))
    flags = identity.TrainFlags(parser)
    cells = []
    for combination in itertools.product(*[list(values) for _, values in axes.values()]):
        chosen = dict(zip(axes, combination))
        settings = dict(base)
        for key, value in chosen.items():
            settings.update(axes[key][0](value))
        for dest in identity.LOCATIONS:
            if dest in settings:
                settings[dest] = location(settings[dest])
        cell_id = "__".join("%s-%s" % (_safe(k.lstrip("-")), _safe(v)) for k, v in chosen.items()) or "single"
        argv = _argv(settings, table)
        try:
            resolved = flags.resolve(argv)
        except StudyError as error:
            raise StudyError("%s: cell %s: %s" % (path, cell_id, error)) from None
        cells.append(Cell(cell_id, chosen, settings, argv, resolved, dict(test), flags))
    name = data.get("name") or os.path.splitext(os.path.basename(path))[0]
    compare = list(data.get("compare") or [])
    for entry in compare:
        if not isinstance(entry, dict) or set(entry) != {"a", "b"}:
            raise StudyError("%s: each compare entry is {\"a\": {axis: value}, \"b\": {axis: value}}" % path)
        for side in entry.values():
            for key in side:
                if key not in axes:
                    raise StudyError("%s: compare uses %r, which is not an axis (axes: %s)%s"
                                     % (path, key, ", ".join(axes), did_you_mean(key, axes)))
    return Study(_safe(name), path, base, {k: list(v) for k, (_, v) in axes.items()}, budget, test, compare, cells,
                 list(classes))


def check_classes(study, names, where):
    """The table's `classes` must be among `names`, the class names of `where` (the dataset)."""
    unknown = [c for c in study.classes if c not in names]
    if unknown:
        raise StudyError("%s: classes %s are not class names of %s; valid: %s"
                         % (study.path, unknown, where, ", ".join(names)))


def matches(cell, selection):
    """True when the cell has every axis value of `selection`."""
    return all(str(cell.axes.get(key)) == str(value) for key, value in selection.items())

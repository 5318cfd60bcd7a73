"""`study.py STUDY.json --set KEY=VALUE`: change a value of the study file for one invocation (study.json
records them), so a study file stays the same on every machine.

    --set datapath=/data/segdata     a bare key is a `base` setting (a train.py flag) or a top-level key (name)
    --set budget.max_steps=600       a dotted key walks into the file: base.X, axes.X, test.X, budget.X
    --set axes.seed=[1,2,3]          the value is JSON where it parses (600, 0.0005, true, [1, 2], null),
                                     else a string; a value the file has keeps its type (a string stays one)
"""
import copy
import json

from utils.study.errors import StudyError, did_you_mean


def parse(text):
    """"budget.max_steps=600" -> (["budget", "max_steps"], "600")."""
    key, equals, value = str(text).partition("=")
    if not equals or not key.strip() or any(not part for part in key.strip().split(".")):
        raise StudyError("--set %s: expected KEY=VALUE, e.g. --set datapath=/data or --set budget.max_steps=600"
                         % text)
    return key.strip().split("."), value


def typed(raw, like=None):
    """The value of `raw` typed as the file's values are: JSON, else a string; like the value it replaces."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(like, str) and not isinstance(value, str):
        return raw
    if isinstance(like, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_path(text, path, top_keys, keys_of):
    """Every key of `path` must be one the study file can have: a misspelt one stops with "did you mean"."""
    if path[0] not in top_keys:
        raise StudyError("--set %s: %r is not a study key (%s)%s"
                         % (text, path[0], ", ".join(top_keys), did_you_mean(path[0], top_keys)))
    if len(path) > 1 and path[0] in keys_of and path[1] not in keys_of[path[0]]:
        what = {"base": "train.py flag (a base key)", "axes": "train.py flag nor an axis of the file"}.get(
            path[0]) or "%s key (%s)" % (path[0], ", ".join(sorted(keys_of[path[0]])))
        raise StudyError("--set %s: %r is not a %s%s" % (text, path[1], what, did_you_mean(path[1], keys_of[path[0]])))


def apply(data, texts, top_keys, keys_of):
    """A copy of the study `data` with each `KEY=VALUE` of `texts` set.

    top_keys: the study file's keys; keys_of: {section: the keys it may hold} for the sections whose keys are
    known (base: train.py's flags, test, budget, axes: flags and the file's axes)."""
    data = copy.deepcopy(data)
    for text in texts or ():
        path, raw = parse(text)
        if len(path) == 1 and path[0] not in top_keys:
            path = ["base"] + path
        _check_path(text, path, top_keys, keys_of)
        container = data
        for depth, key in enumerate(path[:-1]):
            container = container.setdefault(key, {})
            if not isinstance(container, dict):
                raise StudyError("--set %s: %s is not an object in the study file" % (text, ".".join(path[:depth + 1])))
        container[path[-1]] = typed(raw, container.get(path[-1]))
    return data

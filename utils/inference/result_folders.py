"""Where test.py writes: folder names that say what was scored, and never a silent overwrite of other results.

    name = folder_name("test_validation", "130_tflite_int8", scales=(0.75, 1), flip=True)
    # 'test_validation_130_tflite_int8_scales0.75-1_flip'
    outdir, note = choose_folder(os.path.join(run, name), identity, "results.json")

Why both: a name can say the split, the checkpoint step or the exported
model's runtime and precision, and the test-time geometry when it is not the
default, but not everything that changes a result (which of two int8 files,
the bootstrap, --num_images).  So the settings that identify a result are
also stored in its record (results.json's `settings`, segmented.json for
--imagepath / --moviepath) and compared: a folder whose record has the same
settings is reused (its results replaced by the same computation), any other
existing folder is left alone and the next free `<name>_2`, `_3` ... is
used, and the note says which and why.  `overwrite=True` (test.py
--overwrite, what a study's re-scoring wants) replaces the first folder's
results whatever they were, and says that too.
"""
import json
import os

DEFAULT_OVERLAP = 0.25  # geometry.py's default --tile_overlap: left out of names


def folder_name(prefix, what, scales=(1.0,), flip=False, tile=None, tile_overlap=DEFAULT_OVERLAP, pixels=None):
    """'<prefix>_<what>' plus the test-time geometry that differs from the default: _px<N> or _native (pixels,
    None = as trained), _scales<a-b-c>, _flip, _tile<H>x<W>[_overlap<x>]."""
    parts = [prefix, str(what)]
    if pixels is not None:
        parts.append("native" if pixels == 0 else "px%d" % pixels)
    if tuple(float(s) for s in scales) != (1.0,):
        parts.append("scales" + "-".join("%g" % s for s in scales))
    if flip:
        parts.append("flip")
    if tile:
        parts.append("tile%dx%d" % tuple(tile))
        if tile_overlap != DEFAULT_OVERLAP:
            parts.append("overlap%g" % tile_overlap)
    return "_".join(parts)


def normalised(settings):
    """The settings as they read back from JSON (tuples become lists), so stored and new ones compare."""
    return json.loads(json.dumps(settings, sort_keys=True))


def read_settings(folder, record_name):
    """The `settings` of folder/record_name, or None when there is no such record (or it has none)."""
    path = os.path.join(folder, record_name)
    try:
        with open(path) as handle:
            return json.load(handle).get("settings")
    except (OSError, ValueError, AttributeError):
        return None


def differences(stored, wanted):
    """Names of the settings that differ (sorted); ['?'] when there is nothing stored to compare with."""
    if stored is None:
        return ["?"]
    return sorted(key for key in set(stored) | set(wanted) if stored.get(key) != wanted.get(key))


def _state(folder, wanted, record_name):
    """'free' (absent or empty), 'same' (its record has these settings) or the list of differing settings."""
    if not os.path.isdir(folder) or not os.listdir(folder):
        return "free"
    found = differences(read_settings(folder, record_name), wanted)
    return "same" if not found else found


def _why(folder, found, record_name):
    if found == ["?"]:
        return "%s holds no %s with settings to compare with" % (folder, record_name)
    return "%s holds results made with other settings (%s)" % (folder, ", ".join(found))


def choose_folder(base, settings, record_name, overwrite=False):
    """(folder to write, note to print or None) for results identified by `settings` (a JSON-able dict).

    base itself when it is free or holds the same settings; otherwise, unless overwrite, the first of
    base_2, base_3 ... that is; the note says what was reused, replaced or avoided.
    """
    wanted = normalised(settings)
    state = _state(base, wanted, record_name)
    if state == "free":
        return base, None
    if state == "same":
        return base, "%s holds results made with the same settings: replacing them" % base
    if overwrite:
        return base, "%s; --overwrite: replacing them (older files not rewritten stay)" % _why(base, state,
                                                                                              record_name)
    number = 2
    while True:
        candidate = "%s_%d" % (base, number)
        found = _state(candidate, wanted, record_name)
        if found in ("free", "same"):
            return candidate, "%s; writing to %s instead%s" % (
                _why(base, state, record_name), os.path.basename(candidate),
                " (it holds the same settings: replacing them)" if found == "same" else "")
        number += 1

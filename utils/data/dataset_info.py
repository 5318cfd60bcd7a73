"""Where a converted dataset lives and what it holds: <datapath>/<family>/{<split>.tfrecords*, dataset.json}.

utils/data/convert.py writes both; training, testing, the label checker and
the benchmarks find them through here, so a missing file always names the
command that makes it.
"""
import json
import os
import re

from utils.data import families
from utils.data.records import find_record_files

DATASET_JSON = "dataset.json"


class MissingData(FileNotFoundError):
    """A record file or dataset.json that is not there (the message names the command that makes it): train.py
    exits with its data-error code, not the usage error's."""


class DamagedData(ValueError):
    """A record file or dataset.json that is there but empty or unreadable."""


DATA_ERRORS = (MissingData, DamagedData)


# --- where the records are ------------------------------------------------
def dataset_dir(datapath, family):
    return os.path.join(datapath, families.get(family).subdir())


def conversion_command(datapath, family):
    """The command that writes <datapath>/<family>/*.tfrecords."""
    return "python utils/tfrecordify.py --dataset_family %s --datapath %s" % (family, datapath)


def dataset_files(datapath, family, split, directory=None):
    """Record files of a split (single file or complete shard set).

    Missing records raise MissingData (a FileNotFoundError) whose message is the command to make them.
    """
    split = families.canonical_split(split)
    directory = directory or dataset_dir(datapath, family)
    files = find_record_files(directory, split)
    if not files:
        raise MissingData(
            "no %s records for %s in %s (expected %s.tfrecords or %s.tfrecords-*-of-*); create them with:\n"
            "  %s\n(add the family's source path argument, see --help, if the raw data is not under %s)"
            % (split, family, directory, split, split, conversion_command(datapath, family),
               os.path.join(datapath, families.get(family).subdir())))
    return files


def load_dataset_info(datapath, family, directory=None):
    """dataset.json of the converted family; without it, the family's built-in metadata.

    Keys used by training: num_classes, ignore_label, class_names, palette,
    default_pixels, total_train_images (None when unknown).
    """
    directory = directory or dataset_dir(datapath, family)
    path = os.path.join(directory, DATASET_JSON)
    if os.path.isfile(path):
        info = read_dataset_json(directory)
        if info.get("family") != family:
            raise ValueError("%s describes family %r, not %r" % (path, info.get("family"), family))
        return info
    cls = families.get(family)
    if not cls.class_names:
        raise MissingData("%s is missing and family %r has no built-in classes; create it with:\n  %s"
                                % (path, family, conversion_command(datapath, family)))
    return {"family": family, "class_names": list(cls.class_names),
            "palette": [list(c) for c in cls.palette], "num_classes": len(cls.class_names),
            "ignore_label": cls.ignore_label, "default_pixels": cls.default_pixels,
            "total_train_images": None, "splits": {}}




def read_dataset_json(directory):
    """dataset.json of a record folder as a dict, or None if absent."""
    path = os.path.join(directory, DATASET_JSON)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            info = json.load(handle)
    except ValueError as error:
        raise DamagedData("%s is not JSON (%s): convert the dataset again with utils/tfrecordify.py" % (path, error)) \
            from None
    if not isinstance(info, dict) or not {"family", "class_names"} <= set(info):
        raise DamagedData("%s is not a dataset description (no family / class_names): convert the dataset again "
                         "with utils/tfrecordify.py" % path)
    return info


def write_dataset_json(directory, info):
    """Write dataset.json atomically (readers never see half a file); palette rows stay on one line."""
    path = os.path.join(directory, DATASET_JSON)
    temp = path + ".tmp-%d" % os.getpid()
    text = re.sub(r"\[\s+(\d+),\s+(\d+),\s+(\d+)\s+\]", r"[\1, \2, \3]", json.dumps(info, indent=1))
    with open(temp, "w") as handle:
        handle.write(text + "\n")
    os.replace(temp, path)
    return path

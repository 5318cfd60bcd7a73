"""The record schema in one place: how examples are written, named on disk and parsed back.

One tf.train.Example per (image, label) pair:

    image/encoded   bytes   original PNG/JPEG bytes (anything else re-encoded as PNG)
    image/format    bytes   b'png' | b'jpeg'
    image/height    int64   original height
    image/width     int64   original width
    image/filename  bytes   source file name, e.g. b'0001TP_006690.png'
    image/category  bytes   the image's category where the family has them (KITTI road: b'um', b'umm', b'uu');
                            absent otherwise
    image/sequence  bytes   the recording the image comes from (CamVid b'0016E5', Cityscapes b'aachen', KITTI's
                            category, a folder dataset's groups.txt); absent where unknown
    label/encoded   bytes   PNG, uint8 class indices (ignore label where unlabelled)

Files: '<split>.tfrecords' for small splits, or shards
'<split>.tfrecords-00000-of-00004' ... when a split exceeds --shard_size.
Writers write to hidden temporary names in the target folder and os.replace()
them into place only on commit, so a failed run never clobbers good records.
"""
import glob
import io
import os
import re
import uuid

import numpy as np
from PIL import Image

from utils.compat import tf

RECORD_SUFFIX = ".tfrecords"
SHARD_PATTERN = re.compile(r"^(?P<base>.+\.tfrecords)-(?P<index>\d{5})-of-(?P<count>\d{5})$")


def features():
    """The record format, as tf.io.parse_single_example reads it (a function: TensorFlow is imported at use)."""
    return {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/format": tf.io.FixedLenFeature([], tf.string, default_value=b"png"),
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/width": tf.io.FixedLenFeature([], tf.int64),
        "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=b""),
        "image/category": tf.io.FixedLenFeature([], tf.string, default_value=b""),
        "image/sequence": tf.io.FixedLenFeature([], tf.string, default_value=b""),
        "label/encoded": tf.io.FixedLenFeature([], tf.string),
    }


# --- writing --------------------------------------------------------------
def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def serialize_example(image_bytes, image_format, label_png, height, width, filename, category=None, sequence=None):
    """One record, serialized (bytes)."""
    feature = {
        "image/encoded": _bytes(image_bytes),
        "image/format": _bytes(image_format.encode()),
        "image/height": _int64(height),
        "image/width": _int64(width),
        "image/filename": _bytes(filename.encode("utf-8")),
        "label/encoded": _bytes(label_png),
    }
    if category is not None:
        feature["image/category"] = _bytes(category.encode("utf-8"))
    if sequence is not None:
        feature["image/sequence"] = _bytes(sequence.encode("utf-8"))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def record_file_name(split):
    return split + RECORD_SUFFIX


def shard_name(split, index, count):
    return "%s%s-%05d-of-%05d" % (split, RECORD_SUFFIX, index, count)


class ShardedRecordWriter:
    """Writes one split's records to temporary files; commit() moves them into place.

    shard_size=None (or a split no larger than shard_size) gives the single file
    '<split>.tfrecords'; otherwise shards of shard_size records each.
    """

    def __init__(self, outdir, split, shard_size=None):
        if shard_size is not None and shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        self.outdir, self.split, self.shard_size = outdir, split, shard_size
        self._token = "%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
        self._temp_paths, self._writer, self._in_shard = [], None, 0
        self.count = 0
        os.makedirs(outdir, exist_ok=True)
        remove_dead_writers_files(outdir, split)

    def _open_next(self):
        self.close()
        path = os.path.join(self.outdir, ".%s.tmp-%s-%05d" % (self.split, self._token, len(self._temp_paths)))
        self._temp_paths.append(path)
        self._writer = tf.io.TFRecordWriter(path)
        self._in_shard = 0

    def write(self, serialized):
        if self._writer is None or (self.shard_size and self._in_shard >= self.shard_size):
            self._open_next()
        self._writer.write(serialized)
        self._in_shard += 1
        self.count += 1

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def final_names(self):
        count = len(self._temp_paths)
        if count <= 1:
            return [record_file_name(self.split)]
        return [shard_name(self.split, i, count) for i in range(count)]

    def commit(self):
        """Move the temporaries into place, drop stale files of this split; -> file names."""
        self.close()
        names = self.final_names()
        for temp, name in zip(self._temp_paths, names):
            os.replace(temp, os.path.join(self.outdir, name))
        for stale in existing_record_files(self.outdir, self.split):
            if os.path.basename(stale) not in names:
                os.remove(stale)
        self._temp_paths = []
        return names

    def abort(self):
        """Delete the temporaries; whatever was there before stays untouched."""
        self.close()
        for temp in self._temp_paths:
            if os.path.exists(temp):
                os.remove(temp)
        self._temp_paths = []


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_dead_writers_files(directory, split):
    """Delete the hidden temporaries (`.<split>.tmp-<pid>-...`) of writers whose process died (kill -9, a full
    disk); a live writer's files stay.  Returns the removed paths."""
    removed = []
    pattern = re.compile(r"^\.%s\.tmp-(\d+)-" % re.escape(split))
    for name in os.listdir(directory):
        match = pattern.match(name)
        if match and not _alive(int(match.group(1))):
            os.remove(os.path.join(directory, name))
            removed.append(os.path.join(directory, name))
    return removed


def existing_record_files(directory, split):
    """Every file of `split` in `directory`: the single file and/or any shards."""
    single = os.path.join(directory, record_file_name(split))
    shards = glob.glob(os.path.join(glob.escape(directory), glob.escape(record_file_name(split)) + "-*-of-*"))
    return ([single] if os.path.isfile(single) else []) + sorted(shards)


def find_record_files(directory, split):
    """The record files of a split, or [] if there are none.

    A shard set must be complete (all N of N); a partial set raises ValueError.
    """
    single = os.path.join(directory, record_file_name(split))
    if os.path.isfile(single):
        return [single]
    shards = [p for p in existing_record_files(directory, split) if SHARD_PATTERN.match(os.path.basename(p))]
    if not shards:
        return []
    counts = {int(SHARD_PATTERN.match(os.path.basename(p)).group("count")) for p in shards}
    if len(counts) != 1 or len(shards) != counts.pop():
        raise ValueError("incomplete or mixed shard set for %r in %s: %s"
                         % (split, directory, [os.path.basename(p) for p in shards]))
    return shards


# --- reading in TensorFlow ------------------------------------------------
def parse_record(serialized):
    """Serialized record -> dict of decoded tensors (one example, not batched).

    image uint8 [H, W, 3], label uint8 [H, W], height/width int32, filename string.
    """
    parsed = tf.io.parse_single_example(serialized, features())
    image = tf.io.decode_image(parsed["image/encoded"], channels=3, expand_animations=False)
    label = tf.io.decode_png(parsed["label/encoded"], channels=1)[:, :, 0]
    return {"image": image, "label": label,
            "height": tf.cast(parsed["image/height"], tf.int32),
            "width": tf.cast(parsed["image/width"], tf.int32),
            "filename": parsed["image/filename"]}


# --- reading in numpy (label checker, tests, notebooks) ---------------------
def iterate_serialized(paths):
    """Raw serialized records of one path or a list of paths, in order."""
    for path in [paths] if isinstance(paths, str) else paths:
        for record in tf.io.tf_record_iterator(path):
            yield record


def decode_example(serialized):
    """Serialized record -> dict of numpy arrays, decoded with PIL (independent of TF's decoders)."""
    features = tf.train.Example.FromString(serialized).features.feature

    def first(key, kind="bytes_list"):
        values = getattr(features[key], kind).value
        return values[0] if values else None

    image = np.asarray(Image.open(io.BytesIO(first("image/encoded"))).convert("RGB"))
    label = np.asarray(Image.open(io.BytesIO(first("label/encoded"))))
    filename = first("image/filename")
    category = first("image/category") if "image/category" in features else None
    sequence = first("image/sequence") if "image/sequence" in features else None
    return {"image": image, "label": label, "category": category.decode("utf-8") if category else None,
            "sequence": sequence.decode("utf-8") if sequence else None,
            "height": int(first("image/height", "int64_list")),
            "width": int(first("image/width", "int64_list")),
            "filename": filename.decode("utf-8") if filename else "",
            "format": (first("image/format") or b"").decode()}


def read_examples(paths):
    """Yield decoded numpy examples from record file(s)."""
    for serialized in iterate_serialized(paths):
        yield decode_example(serialized)


def count_records(paths):
    return sum(1 for _ in iterate_serialized(paths))


def first_damaged_file(paths):
    """(path, what is wrong) of the first record file that does not read to its end, or None."""
    for path in paths:
        if os.path.getsize(path) == 0:
            return path, "empty file"
        try:
            for _ in iterate_serialized(path):
                pass
        except (tf.errors.OpError, OSError) as error:
            return path, str(getattr(error, "message", error)).strip().splitlines()[0][:200]
    return None

"""What every dataset family provides, and the file-reading helpers they share.

A family (one module per dataset) knows its classes, palette, ignore label and
default --pixels, which converter CLI arguments it needs, how to enumerate
(image, label, name) examples per split from the published layout, and how to
turn a label file into a uint8 map of class indices.  The converter
(utils/tfrecordify.py) does the rest: reading, validating, writing records.

Splits are named after the record files they end up in: 'training',
'validation', 'test' (aliases 'train', 'val' are accepted everywhere).
"""
import dataclasses
import io
import os
import random
import re

import numpy as np
from PIL import Image

SPLITS = ("training", "validation", "test")
HOLDOUT = "holdout"  # training sequences set aside by the converter's --holdout_sequence (utils/data/sequences.py)
SPLIT_ALIASES = {"train": "training", "training": "training", "val": "validation",
                 "validation": "validation", "test": "test", "testing": "test", HOLDOUT: HOLDOUT}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")


class DatasetError(Exception):
    """A problem with the source data that stops the conversion."""


class UnreadableFileError(DatasetError):
    """An image or label file that cannot be decoded: skipped unless --strict."""


class LabelValueError(DatasetError):
    """Label values that are neither a class index nor the ignore label."""


class SizeMismatchError(DatasetError):
    """Image and label of one example differ in height/width."""


class EmptySplitError(DatasetError):
    """A split with no examples (or none left after skipping)."""


class SplitTooSmallError(DatasetError):
    """Too few images to hold out --val_fraction of them and still train on the rest."""


class MissingLabelsError(DatasetError):
    """Images without their label file: a wrong folder or suffix, fatal unless --allow_missing_labels."""


def canonical_split(split):
    """'train'/'val'/... -> 'training'/'validation'/'test'."""
    try:
        return SPLIT_ALIASES[split]
    except KeyError:
        raise ValueError("unknown split %r; valid: %s" % (split, ", ".join(SPLITS + (HOLDOUT,)))) from None


@dataclasses.dataclass(frozen=True)
class Example:
    """One (image, label) pair.  `name` goes into the record as image/filename; `category` (KITTI's um / umm /
    uu) as image/category, so scores can be split by it; `sequence` (the recording it comes from: CamVid's
    drive, Cityscapes' city) as image/sequence, so a score can say whether training saw that recording."""
    name: str
    image_path: str
    label_path: str
    category: str = None
    sequence: str = None


@dataclasses.dataclass(frozen=True)
class ImageData:
    """An image as it goes into a record: encoded bytes, their format and size."""
    encoded: bytes
    format: str  # 'png' or 'jpeg'
    height: int
    width: int


def text_lines(path):
    """(line number, line) of a small list file (classes.txt, groups.txt), '#' comments and blank lines left out."""
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            line = line.split("#", 1)[0].strip()
            if line:
                yield number, line


def read_image(path):
    """Decode fully (to catch truncation), keep the original bytes when PNG/JPEG RGB/gray.

    Anything else (palette, RGBA, 16-bit, BMP, TIFF, ...) is re-encoded as RGB PNG
    so the TF pipeline only ever sees PNG or JPEG with 1 or 3 channels.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise UnreadableFileError("%s: cannot read image (%s)" % (path, _why(error))) from error
    return image_from_bytes(data, path)


def image_from_bytes(data, name):
    """read_image for bytes already in memory (an image embedded in an annotation file); `name` for errors."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as error:  # PIL raises many types for bad files
        raise UnreadableFileError("%s: cannot read image (%s)" % (name, _why(error))) from error
    fmt = {"PNG": "png", "JPEG": "jpeg"}.get(image.format)
    if fmt is None or image.mode not in ("RGB", "L"):
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "PNG", compress_level=1)
        data, fmt = buffer.getvalue(), "png"
    return ImageData(encoded=data, format=fmt, height=image.height, width=image.width)


def _why(error):
    """The error, without PIL's '<_io.BytesIO object at 0x...>' stand-in for the file (the caller names it)."""
    text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(error)).strip()
    return "%s: %s" % (type(error).__name__, text) if text else type(error).__name__


def read_index_png(path):
    """A label image whose pixel values are class indices (mode L, P or I) -> 2-D array."""
    try:
        image = Image.open(path)
        image.load()
    except Exception as error:
        raise UnreadableFileError("%s: cannot read label (%s)" % (path, _why(error))) from error
    if image.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
        raise LabelValueError("%s: label image has mode %s; expected a single-channel map of class "
                              "indices (mode L or P)" % (path, image.mode))
    return np.asarray(image)


def encode_png(array):
    """uint8 HxW (or HxWx3) array -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def check_label_values(label, num_classes, ignore_label, name):
    """Raise LabelValueError naming the file and the offending values."""
    values = np.unique(label)
    bad = [int(v) for v in values if not (0 <= v < num_classes or v == ignore_label)]
    if bad:
        raise LabelValueError("%s: label values %s are neither a class (0..%d) nor the ignore label %s"
                              % (name, bad[:20], num_classes - 1, ignore_label))


def as_uint8_label(label, name):
    """Any integer label array -> uint8, refusing values that would wrap around."""
    label = np.asarray(label)
    if label.dtype == np.uint8:
        return label
    if label.size and (label.min() < 0 or label.max() > 255):
        bad = np.unique(label[(label < 0) | (label > 255)])
        raise LabelValueError("%s: label values %s do not fit uint8" % (name, bad[:20].tolist()))
    return label.astype(np.uint8)


def apply_lut(raw, lut, name):
    """Map raw label ids through `lut` (int array, -1 = id not allowed); name bad ids."""
    raw = np.asarray(raw)
    if raw.size and (raw.min() < 0 or raw.max() >= len(lut)):
        bad = np.unique(raw[(raw < 0) | (raw >= len(lut))])
        raise LabelValueError("%s: raw label ids %s are unknown" % (name, bad[:20].tolist()))
    mapped = np.asarray(lut)[raw]
    if mapped.size and mapped.min() < 0:
        bad = np.unique(raw[mapped < 0])
        raise LabelValueError("%s: raw label ids %s are unknown" % (name, bad[:20].tolist()))
    return mapped.astype(np.uint8)


def holdout_split(names, fraction, seed, source="the source folder"):
    """Deterministic (training, validation) split of `names` for sets without a val split.

    The names are sorted first, so the split depends only on the set of names,
    the fraction and the seed - never on directory listing order.  A set too
    small to give both splits an image is refused (SplitTooSmallError names
    the count) instead of failing later on an empty split.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1), got %r" % fraction)
    ordered = sorted(names)
    random.Random(seed).shuffle(ordered)
    count = int(round(len(ordered) * fraction))
    if fraction > 0 and count == 0 and len(ordered) > 1:
        count = 1
    if fraction > 0 and ordered and not 0 < count < len(ordered):
        raise SplitTooSmallError("%s: %d image%s, too few for --val_fraction %g: validation would get %d and "
                                 "training %d, each needs at least 1 (--val_fraction 0 converts training only)"
                                 % (source, len(ordered), "" if len(ordered) == 1 else "s", fraction, count,
                                    len(ordered) - count))
    validation = set(ordered[:count])
    return ([n for n in sorted(names) if n not in validation],
            [n for n in sorted(names) if n in validation])


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def list_images(folder):
    """Sorted image files (by extension) directly inside `folder`; [] if it does not exist."""
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))


class DatasetFamily:
    """Base class: metadata as class attributes, source paths as constructor options.

    Subclasses set the metadata and implement `splits`, `examples` and (when the
    label file is not already a PNG of class indices) `read_label`.
    """
    name = ""
    class_names = ()
    palette = ()
    ignore_label = 255
    default_pixels = 512
    data_subdir = None  # folder under --datapath holding the records; None -> name
    description = ""
    variants = {}       # layout name -> how it looks on disk: listed by --help, the one found named in the summary
    label_mapping = ""  # how the published label values become class indices, said in dataset.json

    def __init__(self, datapath="/data", **options):
        self.datapath = datapath
        self.options = options

    # --- metadata -------------------------------------------------------
    @property
    def num_classes(self):
        return len(self.class_names)

    @classmethod
    def subdir(cls):
        return cls.data_subdir or cls.name

    def info(self):
        """The metadata part of dataset.json."""
        return {"family": self.name, "class_names": list(self.class_names),
                "palette": [list(map(int, c)) for c in self.palette],
                "num_classes": self.num_classes, "ignore_label": int(self.ignore_label),
                "default_pixels": int(self.default_pixels), "label_mapping": self.label_mapping or None}

    @classmethod
    def layouts_help(cls):
        """The accepted layouts, one per line, for the family's --help."""
        if not cls.variants:
            return None
        width = max(len(name) for name in cls.variants)
        return "layouts (found automatically):\n" + "\n".join("  %-*s  %s" % (width, name, text)
                                                                for name, text in cls.variants.items())

    # --- converter interface ---------------------------------------------
    @classmethod
    def add_arguments(cls, parser):
        """Add this family's converter CLI arguments (source paths, options)."""

    @classmethod
    def from_args(cls, args):
        """Build from an argparse namespace holding --datapath and this family's arguments."""
        probe = _ArgCollector()
        cls.add_arguments(probe)
        options = {dest: getattr(args, dest) for dest in probe.dests if hasattr(args, dest)}
        return cls(datapath=args.datapath, **options)

    def option(self, key, default=None):
        value = self.options.get(key)
        return default if value is None else value

    def source_path(self, key, *default_parts):
        """A source folder option, defaulting to <datapath>/<default_parts...>."""
        return os.path.expanduser(self.option(key, os.path.join(self.datapath, *default_parts)))

    def variant(self):
        """The name (a key of `variants`) of the layout found on disk; None for families with one layout."""
        return None

    def splits(self):
        """Split names (from SPLITS) this source provides labelled data for: only those present on disk."""
        raise NotImplementedError

    def missing_splits(self):
        """{split: what was looked for} of the published splits not present, named in the summary."""
        return {}

    def examples(self, split):
        """list[Example] of a split, in a deterministic order."""
        raise NotImplementedError

    def load_image(self, example):
        """The example's ImageData; a family whose images need not be files (LabelMe's imageData) overrides it."""
        return read_image(example.image_path)

    def read_label(self, example):
        """uint8 HxW class indices (ignore_label where unlabelled)."""
        return as_uint8_label(read_index_png(example.label_path), example.label_path)

    def source_description(self):
        """Source options, recorded in dataset.json."""
        return {k: v for k, v in self.options.items() if v is not None}


class _ArgCollector:
    """Stands in for an argparse parser to learn the `dest` names a family defines."""

    def __init__(self):
        self.dests = []

    def add_argument(self, *flags, **kwargs):
        dest = kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_")
        self.dests.append(dest)

    def add_argument_group(self, *args, **kwargs):
        return self

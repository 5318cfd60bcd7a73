"""Any dataset as plain folders: the way in for your own data.

    <folder_path>/classes.txt        one class per line, index = line order:
                                     'name'  or  'name r g b'   (# comments, blank lines ok);
                                     'void r g b ignore': that RGB mask colour is --ignore_label, not a class
    <folder_path>/images/<stem>.<jpg|png|...>
    <folder_path>/masks/<stem>.png   class index per pixel (mode L or P), --ignore_label = unlabelled;
                                     or an RGB mask painted in the classes.txt colours

Splits: if images/train/ exists, the subfolders images/{train,val,test}/ (with
masks/{train,val,test}/) are the splits; otherwise the flat images/ folder is
split with a seeded --val_fraction (default 0.1) held out for validation.
Classes without a colour get VOC-colormap colours.  Optional
<folder_path>/groups.txt or --group_pattern name the recording each image
comes from (utils/data/families/groups.py), recorded as image/sequence.
"""
import os

import numpy as np
from PIL import Image

from utils.data.families.base import (DatasetError, DatasetFamily, Example, LabelValueError,
                                 UnreadableFileError, as_uint8_label, holdout_split, list_images, stem,
                                      text_lines)
from utils.data.families.color_masks import labels_from_colors
from utils.data.families.groups import Grouping
from utils.viz import voc_colormap

SUBFOLDERS = {"training": "train", "validation": "val", "test": "test"}


def read_classes(path):
    """classes.txt -> (names, palette, ignore colours)."""
    if not os.path.isfile(path):
        raise DatasetError("missing %s (one class per line: 'name' or 'name r g b')" % path)
    names, colors, ignore_colors = [], [], []
    for number, line in text_lines(path):
        parts = line.split()
        if parts[-1].lower() == "ignore":
            ignore_colors.append(_ignore_color(parts, path, number))
            continue
        if len(parts) >= 4 and all(p.isdigit() for p in parts[-3:]):
            names.append(" ".join(parts[:-3]))
            colors.append(tuple(int(p) for p in parts[-3:]))
        else:
            names.append(line)
            colors.append(None)
        if colors[-1] is not None and max(colors[-1]) > 255:
            raise DatasetError("%s:%d: colour values must be 0..255" % (path, number))
    if not names:
        raise DatasetError("%s lists no classes" % path)
    fallback = voc_colormap(len(names) + 1)[1:]
    return (tuple(names), tuple(c if c is not None else fallback[i] for i, c in enumerate(colors)),
            tuple(ignore_colors))


def _ignore_color(parts, path, number):
    """'void 0 0 0 ignore' -> (0, 0, 0)."""
    values = parts[-4:-1]
    if len(parts) < 5 or not all(p.isdigit() for p in values) or max(int(p) for p in values) > 255:
        raise DatasetError("%s:%d: an ignore line is 'name r g b ignore' (colours 0..255), got %r"
                           % (path, number, " ".join(parts)))
    return tuple(int(p) for p in values)


class Folder(DatasetFamily):
    name = "folder"
    description = "plain folders: images/, masks/, classes.txt"

    def __init__(self, datapath="/data", **options):
        super().__init__(datapath, **options)
        self.class_names, self.palette, self.ignore_colors = read_classes(os.path.join(self.root, "classes.txt"))
        self.ignore_label = int(self.option("ignore_label", 255))
        if self.ignore_label < len(self.class_names):
            raise DatasetError("--ignore_label %d collides with class %r"
                               % (self.ignore_label, self.class_names[self.ignore_label]))
        shared = sorted(set(self.ignore_colors) & set(self.palette))
        if shared:
            raise DatasetError("%s: colour %s is both a class and ignore" % (os.path.join(self.root, "classes.txt"),
                                                                              shared[0]))
        self.grouping = Grouping(self.root, self.option("group_pattern"))

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--folder_path", default=None,
                            help="folder with classes.txt, images/, masks/ (default: <datapath>/folder)")
        parser.add_argument("--val_fraction", type=float, default=0.1,
                            help="held-out validation fraction when images/ has no train/val subfolders")
        parser.add_argument("--split_seed", type=int, default=0, help="seed of the held-out choice")
        parser.add_argument("--ignore_label", type=int, default=255, help="mask value meaning 'unlabelled'")
        parser.add_argument("--group_pattern", default=None,
                            help="regex searched in each image's file stem: its first group (or the match) is the "
                                 "recording the image comes from, e.g. '^([^_]+)_' (default: groups.txt if there)")

    @property
    def root(self):
        return self.source_path("folder_path", "folder")

    @property
    def has_split_folders(self):
        return os.path.isdir(os.path.join(self.root, "images", "train"))

    def splits(self):
        if self.has_split_folders:
            return [s for s, sub in SUBFOLDERS.items() if os.path.isdir(os.path.join(self.root, "images", sub))]
        return ["training", "validation"] if self.option("val_fraction", 0.1) > 0 else ["training"]

    def _pairs(self, image_dir, mask_dir):
        return {os.path.basename(p): Example(name=os.path.basename(p), image_path=p,
                                             label_path=os.path.join(mask_dir, stem(p) + ".png"),
                                             sequence=self.grouping.of(stem(p)))
                for p in list_images(image_dir)}

    def examples(self, split):
        if self.has_split_folders:
            sub = SUBFOLDERS.get(split)
            pairs = self._pairs(os.path.join(self.root, "images", sub), os.path.join(self.root, "masks", sub))
            return [pairs[n] for n in sorted(pairs)]
        pairs = self._pairs(os.path.join(self.root, "images"), os.path.join(self.root, "masks"))
        training, validation = holdout_split(list(pairs), self.option("val_fraction", 0.1),
                                             self.option("split_seed", 0))
        return [pairs[n] for n in {"training": training, "validation": validation}.get(split, [])]

    def read_label(self, example):
        try:
            mask = Image.open(example.label_path)
            mask.load()
        except Exception as error:
            raise UnreadableFileError("%s: cannot read mask (%s: %s)"
                                      % (example.label_path, type(error).__name__, error)) from error
        if mask.mode in ("RGB", "RGBA"):
            return self._from_colors(np.asarray(mask.convert("RGB")), example.label_path)
        if mask.mode not in ("L", "P", "I", "I;16", "1"):
            raise LabelValueError("%s: mask mode %s is neither class indices nor RGB" % (example.label_path, mask.mode))
        return as_uint8_label(np.asarray(mask), example.label_path)

    def _from_colors(self, rgb, name):
        """RGB mask painted in the palette colours (ignore colours -> --ignore_label); unknown colours are errors."""
        values = {tuple(c): index for index, c in enumerate(self.palette)}
        values.update((c, self.ignore_label) for c in self.ignore_colors)
        return labels_from_colors(rgb, values, name, "classes.txt")

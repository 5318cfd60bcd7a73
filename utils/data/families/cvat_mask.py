"""CVAT's "Segmentation mask 1.1" export (Datumaro's VOC segmentation layout), unzipped -> class maps.

    --cvat_path (default <datapath>/cvat_mask):
        labelmap.txt                         '# label:color_rgb:parts:actions', then 'name:r,g,b::' a line;
                                             without it, CVAT's default: the 21 Pascal VOC classes and colours
        ImageSets/Segmentation/<subset>.txt  image names without extension (default.txt, or one per subset)
        SegmentationClass/<name>.png         the class mask: RGB painted in the labelmap colours, a palette PNG
                                             (its palette holds those colours) or 1-channel labelmap indices
        JPEGImages/<name>.<ext>              the images ("Save images" on export), or --cvat_images_path
    SegmentationObject/ (instance masks) is not read.

Classes: the labelmap's, in its order (CVAT writes background 0,0,0 first); --ignore_classes NAME ... makes
those labels the ignore label instead.  A mask colour the labelmap does not list is an error naming the file
and the colours.  Subsets become splits as utils/data/families/tool_exports.py says.
"""
import os

import numpy as np
from PIL import Image

from utils.data.families.base import (IMAGE_EXTENSIONS, DatasetError, DatasetFamily, Example, LabelValueError,
                                      UnreadableFileError, apply_lut)
from utils.data.families.color_masks import labels_from_colors
from utils.data.families.pascal_seg import VOC_CLASSES
from utils.data.families.tool_exports import add_holdout_arguments, assign_splits
from utils.viz import voc_colormap

VOC_VOID = (224, 224, 192)  # the default (VOC) labelmap's border colour: the ignore label


def read_labelmap(path):
    """labelmap.txt -> [(name, (r, g, b))] in file order."""
    entries = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(":")
            color = fields[1].split(",") if len(fields) >= 2 else []
            if len(color) != 3 or not all(c.strip().isdigit() and int(c) <= 255 for c in color):
                raise DatasetError("%s:%d: expected 'name:r,g,b::' (colours 0..255), got %r" % (path, number, line))
            entries.append((fields[0], tuple(int(c) for c in color)))
    if not entries:
        raise DatasetError("%s lists no labels" % path)
    return entries


class CvatMask(DatasetFamily):
    name = "cvat_mask"
    description = "CVAT 'Segmentation mask 1.1' export: SegmentationClass/ + labelmap.txt + ImageSets/"
    ignore_label = 255
    default_pixels = 512
    layout = "CVAT Segmentation mask 1.1"

    def __init__(self, datapath="/data", **options):
        super().__init__(datapath, **options)
        labelmap = os.path.join(self.root, "labelmap.txt")
        if os.path.isfile(labelmap):
            entries, void = read_labelmap(labelmap), []
        else:  # CVAT writes no labelmap.txt for a task labelled with the Pascal VOC classes
            entries, void = list(zip(VOC_CLASSES, voc_colormap(len(VOC_CLASSES)))), [VOC_VOID]
        ignored = set(self.option("ignore_classes", []) or [])
        unknown = sorted(ignored - {name for name, _ in entries})
        if unknown:
            raise DatasetError("--ignore_classes %s: not in %s (labels: %s)"
                               % (", ".join(unknown), labelmap, ", ".join(name for name, _ in entries)))
        kept = [(name, color) for name, color in entries if name not in ignored]
        self.class_names = tuple(name for name, _ in kept)
        self.palette = tuple(color for _, color in kept)
        index = {name: i for i, name in enumerate(self.class_names)}
        self.color_values = {color: self.ignore_label for color in void}
        self.color_values.update((color, index.get(name, self.ignore_label)) for name, color in entries)
        self.index_lut = np.array([index.get(name, self.ignore_label) for name, _ in entries], np.int64)
        self.labelmap_name = labelmap if os.path.isfile(labelmap) else "the default Pascal VOC labelmap"
        self._splits = assign_splits(self._subsets(), self.option("val_fraction", 0.1),
                                     self.option("split_seed", 0), self.root)

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--cvat_path", default=None,
                            help="unzipped CVAT 'Segmentation mask 1.1' export: labelmap.txt, ImageSets/Segmentation/"
                                 "<subset>.txt, SegmentationClass/, JPEGImages/ (default: <datapath>/cvat_mask)")
        parser.add_argument("--cvat_images_path", default=None,
                            help="folder of the images when the export has no JPEGImages/ (default: JPEGImages/)")
        parser.add_argument("--ignore_classes", nargs="+", default=None,
                            help="labelmap labels that mean 'unlabelled': they become the ignore label")
        add_holdout_arguments(parser)

    @property
    def root(self):
        return self.source_path("cvat_path", "cvat_mask")

    def _subsets(self):
        lists = os.path.join(self.root, "ImageSets", "Segmentation")
        files = sorted(f for f in os.listdir(lists) if f.endswith(".txt")) if os.path.isdir(lists) else []
        if not files:
            raise DatasetError("%s: no ImageSets/Segmentation/<subset>.txt (a CVAT 'Segmentation mask 1.1' export "
                               "has ImageSets/, SegmentationClass/ and labelmap.txt)" % self.root)
        images = os.path.expanduser(self.option("cvat_images_path", os.path.join(self.root, "JPEGImages")))
        subsets = {}
        for list_file in files:
            with open(os.path.join(lists, list_file)) as handle:
                names = [line.strip() for line in handle if line.strip()]
            subsets[os.path.splitext(list_file)[0]] = {
                name: Example(name=name, image_path=self._image_path(images, name),
                              label_path=os.path.join(self.root, "SegmentationClass", name + ".png"))
                for name in names}
        return subsets

    @staticmethod
    def _image_path(folder, name):
        """<folder>/<name>.<the extension that exists>; .jpg (what CVAT writes) when none does."""
        for extension in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
            if os.path.isfile(os.path.join(folder, name + extension)):
                return os.path.join(folder, name + extension)
        return os.path.join(folder, name + ".jpg")

    # --- converter interface ------------------------------------------------------------
    def splits(self):
        return list(self._splits)

    def examples(self, split):
        return list(self._splits.get(split, []))

    def read_label(self, example):
        path = example.label_path
        try:
            mask = Image.open(path)
            mask.load()
        except Exception as error:  # PIL raises many types for bad files
            raise UnreadableFileError("%s: cannot read mask (%s: %s)" % (path, type(error).__name__, error)) from error
        if mask.mode in ("RGB", "RGBA", "P", "PA"):
            return labels_from_colors(np.asarray(mask.convert("RGB")), self.color_values, path, self.labelmap_name)
        if mask.mode in ("L", "I", "I;16"):
            return apply_lut(np.asarray(mask), self.index_lut, path)
        raise LabelValueError("%s: mask mode %s is neither colours nor labelmap indices" % (path, mask.mode))

    def source_description(self):
        return dict(super().source_description(), layout=self.layout)

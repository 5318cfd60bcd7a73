"""PASCAL VOC 2012 segmentation: with the Berkeley SBD annotations, their SegmentationClassAug form, or alone.

    --voc_path  .../VOCdevkit/VOC2012: JPEGImages/*.jpg, SegmentationClass/*.png
                (palette PNGs whose pixel values are class indices, 255 = border),
                ImageSets/Segmentation/{train,val}.txt
    --sbd_path  .../benchmark_RELEASE/dataset: img/*.jpg, cls/*.mat (GTcls.Segmentation),
                train.txt, val.txt
    --aug_path  .../VOC2012/SegmentationClassAug: the 10,582 SBD + VOC train labels as grayscale PNGs of class
                indices, listed in train_aug.txt (ImageSets/SegmentationAug/, ImageSets/Segmentation/,
                or VOC2012/; mmsegmentation's voc_aug.py writes ImageSets/Segmentation/aug.txt)

Layouts, the first found wins (--pascal_layout picks one):
  sbd  training = every SBD annotation (SBD train + SBD val), as in FCN / seg-mentor;
  aug  training = the images of train_aug.txt, labels from SegmentationClassAug;
  voc  training = VOC's ImageSets/Segmentation/train.txt (1,464 images);
and always validation = VOC12 val NOT in that training set ("restricted val"
with SBD; all 1,449 for aug and voc), so no validation image was seen in
training; disjointness is checked.
"""
import os

import numpy as np

from utils.data.families.base import (DatasetError, DatasetFamily, Example, UnreadableFileError,
                                 as_uint8_label, read_index_png)
from utils.viz import voc_colormap

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")


def read_names(path):
    if not os.path.isfile(path):
        raise DatasetError("missing list file %s" % path)
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip()]


def load_sbd_mat(path):
    """GTcls.Segmentation of an SBD cls/*.mat file -> HxW class indices."""
    from scipy.io import loadmat  # deferred: only SBD's .mat labels need scipy (a tenth of a second to import)
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
        return np.asarray(mat["GTcls"].Segmentation)
    except Exception as error:
        raise UnreadableFileError("%s: cannot read SBD .mat (%s: %s)" % (path, type(error).__name__, error)) from error


AUG_LISTS = (("ImageSets", "SegmentationAug", "train_aug.txt"), ("ImageSets", "Segmentation", "train_aug.txt"),
             ("train_aug.txt",), ("ImageSets", "Segmentation", "aug.txt"))
LAYOUTS = ("sbd", "aug", "voc")


def read_list_names(path):
    """Image names of a list file whose lines are 'name' or '/JPEGImages/name.jpg /SegmentationClassAug/name.png'."""
    return [os.path.splitext(os.path.basename(line.split()[0]))[0] for line in read_names(path)]


class PascalSeg(DatasetFamily):
    name = "pascal_seg"
    description = "PASCAL VOC 2012 (+ SBD), validated on VOC12 val minus training"
    class_names = VOC_CLASSES
    palette = tuple(voc_colormap(len(VOC_CLASSES)))
    ignore_label = 255
    default_pixels = 512
    label_mapping = "class indices as published (0 background .. 20 tvmonitor), 255 border -> ignore"
    variants = {"sbd": "VOC2012 + SBD benchmark_RELEASE/dataset/{cls/*.mat,train.txt,val.txt}: training = SBD "
                       "train+val",
                "aug": "VOC2012 + SegmentationClassAug/*.png + train_aug.txt: training = the 10,582 of train_aug",
                "voc": "VOC2012 alone: training = ImageSets/Segmentation/train.txt"}

    def __init__(self, datapath="/data", **options):
        super().__init__(datapath, **options)
        self._layout = None

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--voc_path", default=None,
                            help="VOC2012 folder (default: <datapath>/VOCdevkit/VOC2012)")
        parser.add_argument("--sbd_path", default=None,
                            help="SBD dataset folder (default: <datapath>/pascal_seg/benchmark_RELEASE/dataset)")
        parser.add_argument("--aug_path", default=None,
                            help="SegmentationClassAug folder (default: <voc_path>/SegmentationClassAug)")
        parser.add_argument("--pascal_layout", default="auto", choices=("auto",) + LAYOUTS,
                            help="which training labels to use (default: the first of sbd, aug, voc found)")

    @property
    def voc(self):
        return self.source_path("voc_path", "VOCdevkit", "VOC2012")

    @property
    def sbd(self):
        return self.source_path("sbd_path", "pascal_seg", "benchmark_RELEASE", "dataset")

    @property
    def aug(self):
        return os.path.expanduser(self.option("aug_path", os.path.join(self.voc, "SegmentationClassAug")))

    def aug_list(self):
        """The first train_aug.txt (or aug.txt) found, or None."""
        for parent in (self.voc, os.path.dirname(self.aug)):
            for parts in AUG_LISTS:
                if os.path.isfile(os.path.join(parent, *parts)):
                    return os.path.join(parent, *parts)
        return None

    def _voc_list(self, split):
        return os.path.join(self.voc, "ImageSets", "Segmentation", split + ".txt")

    def variant(self):
        """'sbd', 'aug' or 'voc': the training labels found (looked up once)."""
        if self._layout is None:
            self._layout = self._find_layout()
        return self._layout

    def _find_layout(self):
        found = {"sbd": os.path.isfile(os.path.join(self.sbd, "train.txt")),
                 "aug": os.path.isdir(self.aug),
                 "voc": os.path.isfile(self._voc_list("train"))}
        chosen = self.option("pascal_layout", "auto")
        layout = next((name for name in LAYOUTS if found[name]), None) if chosen == "auto" else chosen
        if layout is None or not found[layout]:
            expected = {"sbd": os.path.join(self.sbd, "train.txt"), "aug": self.aug + "/",
                        "voc": self._voc_list("train")}
            raise DatasetError("pascal_seg: no training labels: looked for %s"
                               % ", ".join("%s (%s)" % (expected[n], n) for n in LAYOUTS
                                           if chosen in ("auto", n)))
        if layout == "aug" and self.aug_list() is None:
            raise DatasetError("%s: no train_aug.txt next to it: looked for %s" % (
                self.aug, ", ".join(os.path.join(self.voc, *parts) for parts in AUG_LISTS)))
        return layout

    def splits(self):
        return ["training"] + (["validation"] if os.path.isfile(self._voc_list("val")) else [])

    def missing_splits(self):
        return {} if os.path.isfile(self._voc_list("val")) else {"validation": self._voc_list("val")}

    def training_names(self):
        layout = self.variant()
        if layout == "sbd":
            names = read_names(os.path.join(self.sbd, "train.txt")) + read_names(os.path.join(self.sbd, "val.txt"))
        elif layout == "aug":
            names = read_list_names(self.aug_list())
        else:
            names = read_names(self._voc_list("train"))
        return sorted(set(names))

    def validation_names(self):
        trained = set(self.training_names())
        voc_val = read_names(self._voc_list("val"))
        return sorted(n for n in set(voc_val) if n not in trained)

    def examples(self, split):
        training = self.training_names()
        validation = self.validation_names() if split == "validation" else []
        overlap = set(training) & set(validation)
        if overlap:  # guard: restricted val must never contain a training image
            raise DatasetError("training and validation share %d images, e.g. %s"
                               % (len(overlap), sorted(overlap)[:5]))
        if split == "training":
            return [Example(name=n + ".jpg", image_path=self._training_image(n), label_path=self._training_label(n))
                    for n in training]
        if split == "validation":
            return [Example(name=n + ".jpg", image_path=os.path.join(self.voc, "JPEGImages", n + ".jpg"),
                            label_path=os.path.join(self.voc, "SegmentationClass", n + ".png"))
                    for n in validation]
        return []

    def _training_label(self, name):
        layout = self.variant()
        if layout == "sbd":
            return os.path.join(self.sbd, "cls", name + ".mat")
        if layout == "aug":
            return os.path.join(self.aug, name + ".png")
        return os.path.join(self.voc, "SegmentationClass", name + ".png")

    def _training_image(self, name):
        path = os.path.join(self.sbd, "img", name + ".jpg")
        if self.variant() == "sbd" and os.path.exists(path):
            return path
        return os.path.join(self.voc, "JPEGImages", name + ".jpg")

    def read_label(self, example):
        if example.label_path.endswith(".mat"):
            raw = load_sbd_mat(example.label_path)
        else:
            raw = read_index_png(example.label_path)
        return as_uint8_label(raw, example.label_path)

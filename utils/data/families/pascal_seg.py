"""PASCAL VOC 2012 segmentation, trained on the Berkeley SBD annotations.

    --voc_path  .../VOCdevkit/VOC2012: JPEGImages/*.jpg, SegmentationClass/*.png
                (palette PNGs whose pixel values are class indices, 255 = border),
                ImageSets/Segmentation/{train,val}.txt
    --sbd_path  .../benchmark_RELEASE/dataset: img/*.jpg, cls/*.mat (GTcls.Segmentation),
                train.txt, val.txt

training   = every SBD annotation (SBD train + SBD val), as in FCN / seg-mentor.
validation = VOC12 val images NOT in that training set ("restricted val"), so
             no validation image was seen in training; disjointness is checked.
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


class PascalSeg(DatasetFamily):
    name = "pascal_seg"
    description = "PASCAL VOC 2012 + SBD (train: SBD train+val, val: VOC12 val minus SBD)"
    class_names = VOC_CLASSES
    palette = tuple(voc_colormap(len(VOC_CLASSES)))
    ignore_label = 255
    default_pixels = 512

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--voc_path", default=None,
                            help="VOC2012 folder (default: <datapath>/VOCdevkit/VOC2012)")
        parser.add_argument("--sbd_path", default=None,
                            help="SBD dataset folder (default: <datapath>/pascal_seg/benchmark_RELEASE/dataset)")

    @property
    def voc(self):
        return self.source_path("voc_path", "VOCdevkit", "VOC2012")

    @property
    def sbd(self):
        return self.source_path("sbd_path", "pascal_seg", "benchmark_RELEASE", "dataset")

    def splits(self):
        return ["training", "validation"]

    def training_names(self):
        names = read_names(os.path.join(self.sbd, "train.txt")) + read_names(os.path.join(self.sbd, "val.txt"))
        return sorted(set(names))

    def validation_names(self):
        trained = set(self.training_names())
        voc_val = read_names(os.path.join(self.voc, "ImageSets", "Segmentation", "val.txt"))
        return sorted(n for n in set(voc_val) if n not in trained)

    def examples(self, split):
        training = self.training_names()
        validation = self.validation_names()
        overlap = set(training) & set(validation)
        if overlap:  # guard: restricted val must never contain a training image
            raise DatasetError("training and validation share %d images, e.g. %s"
                               % (len(overlap), sorted(overlap)[:5]))
        if split == "training":
            return [Example(name=n + ".jpg", image_path=self._sbd_image(n),
                            label_path=os.path.join(self.sbd, "cls", n + ".mat")) for n in training]
        if split == "validation":
            return [Example(name=n + ".jpg", image_path=os.path.join(self.voc, "JPEGImages", n + ".jpg"),
                            label_path=os.path.join(self.voc, "SegmentationClass", n + ".png"))
                    for n in validation]
        return []

    def _sbd_image(self, name):
        path = os.path.join(self.sbd, "img", name + ".jpg")
        return path if os.path.exists(path) else os.path.join(self.voc, "JPEGImages", name + ".jpg")

    def read_label(self, example):
        if example.label_path.endswith(".mat"):
            raw = load_sbd_mat(example.label_path)
        else:
            raw = read_index_png(example.label_path)
        return as_uint8_label(raw, example.label_path)

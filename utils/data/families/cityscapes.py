"""Cityscapes fine annotations mapped to the 19 standard train ids.

    --cityscapes_path: leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png
                       gtFine/{train,val}/<city>/<stem>_gtFine_labelIds.png

labelIds (0..33) are mapped to train ids 0..18; every other id becomes 255
(ignore).  The public test split has placeholder labels only, so only train
and val are converted.
"""
import glob
import os

import numpy as np

from utils.data.families.base import DatasetFamily, Example, apply_lut, read_index_png

TRAIN_CLASSES = (  # (name, labelId, colour)
    ("road", 7, (128, 64, 128)), ("sidewalk", 8, (244, 35, 232)), ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)), ("fence", 13, (190, 153, 153)), ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)), ("traffic sign", 20, (220, 220, 0)),
    ("vegetation", 21, (107, 142, 35)), ("terrain", 22, (152, 251, 152)), ("sky", 23, (70, 130, 180)),
    ("person", 24, (220, 20, 60)), ("rider", 25, (255, 0, 0)), ("car", 26, (0, 0, 142)),
    ("truck", 27, (0, 0, 70)), ("bus", 28, (0, 60, 100)), ("train", 31, (0, 80, 100)),
    ("motorcycle", 32, (0, 0, 230)), ("bicycle", 33, (119, 11, 32)))
NUM_LABEL_IDS = 34  # labelIds 0..33 ('license plate' is -1 and never stored in labelIds PNGs)
SPLIT_FOLDERS = {"training": "train", "validation": "val"}


def label_id_lut(ignore_label=255):
    lut = np.full(NUM_LABEL_IDS, ignore_label, np.int64)
    for train_id, (_, label_id, _) in enumerate(TRAIN_CLASSES):
        lut[label_id] = train_id
    return lut


class Cityscapes(DatasetFamily):
    name = "cityscapes"
    description = "Cityscapes gtFine, 19 train ids"
    class_names = tuple(name for name, _, _ in TRAIN_CLASSES)
    palette = tuple(color for _, _, color in TRAIN_CLASSES)
    ignore_label = 255
    default_pixels = 1024

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--cityscapes_path", default=None,
                            help="folder holding leftImg8bit/ and gtFine/ (default: <datapath>/cityscapes)")

    @property
    def root(self):
        return self.source_path("cityscapes_path", "cityscapes")

    def splits(self):
        return ["training", "validation"]

    def examples(self, split):
        folder = SPLIT_FOLDERS.get(split)
        if folder is None:
            return []
        pattern = os.path.join(self.root, "leftImg8bit", folder, "*", "*_leftImg8bit.png")
        examples = []
        for image in sorted(glob.glob(pattern)):
            city = os.path.basename(os.path.dirname(image))
            base = os.path.basename(image)[:-len("_leftImg8bit.png")]
            label = os.path.join(self.root, "gtFine", folder, city, base + "_gtFine_labelIds.png")
            examples.append(Example(name=os.path.basename(image), image_path=image, label_path=label))
        return examples

    def read_label(self, example):
        return apply_lut(read_index_png(example.label_path), label_id_lut(self.ignore_label), example.label_path)

"""Cityscapes mapped to the 19 standard train ids, from either label encoding.

    --cityscapes_path: leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png
                       gtFine/{train,val}/<city>/<stem>_gtFine_labelIds.png        (gtFine_trainvaltest.zip)
                    or gtFine/{train,val}/<city>/<stem>_gtFine_labelTrainIds.png   (cityscapesscripts'
                       createTrainIdLabelImgs.py, mmsegmentation's converter)

labelIds (0..33) are mapped to train ids 0..18, every other id to 255
(ignore); labelTrainIds PNGs already hold 0..18 / 255 and are read as they
are.  Where both exist, labelIds are read.  --cityscapes_annotations coarse
reads gtCoarse/ instead (training = train + train_extra, whose images are in
leftImg8bit/train_extra/).  The public test split has placeholder labels
only, so only train and val are converted.  Each image's sequence is its city (the
folder it lies in), recorded as image/sequence.
"""
import glob
import os

import numpy as np

from utils.data.families.base import DatasetError, DatasetFamily, Example, apply_lut, read_index_png

TRAIN_CLASSES = (  # (name, labelId, colour)
    ("road", 7, (128, 64, 128)), ("sidewalk", 8, (244, 35, 232)), ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)), ("fence", 13, (190, 153, 153)), ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)), ("traffic sign", 20, (220, 220, 0)),
    ("vegetation", 21, (107, 142, 35)), ("terrain", 22, (152, 251, 152)), ("sky", 23, (70, 130, 180)),
    ("person", 24, (220, 20, 60)), ("rider", 25, (255, 0, 0)), ("car", 26, (0, 0, 142)),
    ("truck", 27, (0, 0, 70)), ("bus", 28, (0, 60, 100)), ("train", 31, (0, 80, 100)),
    ("motorcycle", 32, (0, 0, 230)), ("bicycle", 33, (119, 11, 32)))
NUM_LABEL_IDS = 34  # labelIds 0..33 ('license plate' is -1 and never stored in labelIds PNGs)
ANNOTATIONS = {"fine": "gtFine", "coarse": "gtCoarse"}
SPLIT_FOLDERS = {"fine": {"training": ("train",), "validation": ("val",)},
                 "coarse": {"training": ("train", "train_extra"), "validation": ("val",)}}
ENCODINGS = ("labelIds", "labelTrainIds")  # in order of preference


def label_id_lut(ignore_label=255):
    lut = np.full(NUM_LABEL_IDS, ignore_label, np.int64)
    for train_id, (_, label_id, _) in enumerate(TRAIN_CLASSES):
        lut[label_id] = train_id
    return lut


def train_id_lut(ignore_label=255):
    """labelTrainIds values: 0..18 stay, 255 (ignore) becomes ignore_label, anything else is unknown."""
    lut = np.full(256, -1, np.int64)
    lut[:len(TRAIN_CLASSES)] = np.arange(len(TRAIN_CLASSES))
    lut[255] = ignore_label
    return lut


class Cityscapes(DatasetFamily):
    name = "cityscapes"
    description = "Cityscapes gtFine (or gtCoarse), 19 train ids"
    class_names = tuple(name for name, _, _ in TRAIN_CLASSES)
    palette = tuple(color for _, _, color in TRAIN_CLASSES)
    ignore_label = 255
    default_pixels = 1024
    variants = {
        "fine-labelIds": "gtFine/{train,val}/<city>/<stem>_gtFine_labelIds.png (gtFine_trainvaltest.zip)",
        "fine-labelTrainIds": "gtFine/{train,val}/<city>/<stem>_gtFine_labelTrainIds.png (createTrainIdLabelImgs.py, "
                              "mmsegmentation)",
        "coarse-labelIds": "--cityscapes_annotations coarse: gtCoarse/{train,train_extra,val}/<city>/"
                           "<stem>_gtCoarse_labelIds.png",
        "coarse-labelTrainIds": "--cityscapes_annotations coarse: the same, *_gtCoarse_labelTrainIds.png"}

    def __init__(self, datapath="/data", **options):
        super().__init__(datapath, **options)
        self._encoding = None

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--cityscapes_path", default=None,
                            help="folder holding leftImg8bit/ and gtFine/ (default: <datapath>/cityscapes)")
        parser.add_argument("--cityscapes_annotations", default="fine", choices=tuple(ANNOTATIONS),
                            help="gtFine (default) or gtCoarse labels")

    @property
    def root(self):
        return self.source_path("cityscapes_path", "cityscapes")

    @property
    def annotations(self):
        return self.option("cityscapes_annotations", "fine")

    @property
    def label_root(self):
        return os.path.join(self.root, ANNOTATIONS[self.annotations])

    def _image_dirs(self, split):
        return [os.path.join(self.root, "leftImg8bit", folder)
                for folder in SPLIT_FOLDERS[self.annotations].get(split, ())]

    def splits(self):
        return [split for split in SPLIT_FOLDERS[self.annotations]
                if any(os.path.isdir(d) for d in self._image_dirs(split))]

    def missing_splits(self):
        return {split: " or ".join(d + "/" for d in self._image_dirs(split))
                for split in SPLIT_FOLDERS[self.annotations] if split not in self.splits()}

    def encoding(self):
        """'labelIds' or 'labelTrainIds': the first of the two that the label folder holds (looked up once)."""
        if self._encoding is None:
            self._encoding = self._find_encoding()
        return self._encoding

    def _find_encoding(self):
        folder = ANNOTATIONS[self.annotations]
        for encoding in ENCODINGS:
            if glob.glob(os.path.join(glob.escape(self.label_root), "*", "*", "*_%s_%s.png" % (folder, encoding))):
                return encoding
        raise DatasetError("%s: no *_%s_labelIds.png or *_%s_labelTrainIds.png in <split>/<city>/ folders "
                           "(expected the layout of Cityscapes' %s_trainvaltest.zip)"
                           % (self.label_root, folder, folder, folder))

    def variant(self):
        return "%s-%s" % (self.annotations, self.encoding())

    @property
    def label_mapping(self):
        if self.encoding() == "labelTrainIds":
            return "labelTrainIds 0..18 as they are, 255 -> ignore"
        return "labelIds -> train ids 0..18 (Cityscapes labels.py), every other id -> 255 ignore"

    def examples(self, split):
        folder, encoding = ANNOTATIONS[self.annotations], self.encoding()
        examples = []
        for image_dir in self._image_dirs(split):
            for image in sorted(glob.glob(os.path.join(glob.escape(image_dir), "*", "*_leftImg8bit.png"))):
                city = os.path.basename(os.path.dirname(image))
                base = os.path.basename(image)[:-len("_leftImg8bit.png")]
                label = os.path.join(self.label_root, os.path.basename(image_dir), city,
                                     "%s_%s_%s.png" % (base, folder, encoding))
                examples.append(Example(name=os.path.basename(image), image_path=image, label_path=label,
                                        sequence=city))
        return examples

    def read_label(self, example):
        lut = (train_id_lut if example.label_path.endswith("_labelTrainIds.png") else label_id_lut)(self.ignore_label)
        return apply_lut(read_index_png(example.label_path), lut, example.label_path)

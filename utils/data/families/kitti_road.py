"""KITTI road (data_road): road vs. not-road, scored only where the benchmark scores.

    --kitti_path: data_road/training/image_2/<cat>_<num>.png        cat: um, umm, uu
                  data_road/training/gt_image_2/<cat>_road_<num>.png   (colour ground truth)

The devkit (devkit_road/python/helper.py, getGroundTruth) reads the ground
truth as: valid area = red channel > 0, road = blue channel > 0.  So road
(magenta 255,0,255) -> class 1, the rest of the valid area (red) -> class 0,
and the "not evaluated" area (red 0: black) -> the ignore label.  The
category (um = urban marked, umm = urban multiple marked lanes, uu = urban
unmarked) is kept per image (record feature image/category) so scores can
be given per category; it is the image's sequence too (image/sequence: the
recording group a held-out split is made of).  The um_lane_* files (ego lane) are not used.
KITTI has no labelled val split, so a seeded --val_fraction of the training
images is held out (same files every run for the same fraction and seed).
"""
import os

import numpy as np
from PIL import Image

from utils.data.families.base import (DatasetFamily, Example, LabelValueError, UnreadableFileError,
                                      holdout_split, list_images)

CATEGORIES = ("um", "umm", "uu")
IGNORE_LABEL = 255


def road_label(path, ignore_label=IGNORE_LABEL):
    """Colour ground truth PNG -> uint8 map: 1 road, 0 evaluated not-road, ignore_label not evaluated."""
    try:
        image = Image.open(path)
        image.load()
    except Exception as error:
        raise UnreadableFileError("%s: cannot read label (%s: %s)" % (path, type(error).__name__, error)) from error
    if image.mode not in ("RGB", "RGBA", "P"):
        raise LabelValueError("%s: KITTI road ground truth must be a colour image, got mode %s" % (path, image.mode))
    rgb = np.asarray(image.convert("RGB"))
    label = (rgb[..., 2] > 0).astype(np.uint8)
    label[rgb[..., 0] == 0] = ignore_label
    return label


class KittiRoad(DatasetFamily):
    name = "kitti_road"
    description = "KITTI road benchmark (data_road), road vs. background"
    class_names = ("background", "road")
    palette = ((0, 0, 0), (255, 0, 255))
    ignore_label = IGNORE_LABEL
    default_pixels = 768
    label_mapping = ("gt_image_2 colours as the devkit reads them: blue > 0 -> 1 road, else 0 background; "
                     "red == 0 (not evaluated) -> 255 ignore; category um/umm/uu per image (image/category)")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--kitti_path", default=None,
                            help="folder holding data_road/ (default: <datapath>/kitti_road)")
        parser.add_argument("--val_fraction", type=float, default=0.1,
                            help="fraction of the training images held out for validation")
        parser.add_argument("--split_seed", type=int, default=0, help="seed of the held-out choice")

    @property
    def training_dir(self):
        root = self.source_path("kitti_path", "kitti_road")
        return os.path.join(root, "data_road", "training")

    @property
    def image_dir(self):
        return os.path.join(self.training_dir, "image_2")

    def splits(self):
        if not list_images(self.image_dir):
            return []
        return ["training", "validation"] if self.option("val_fraction", 0.1) > 0 else ["training"]

    def missing_splits(self):
        if list_images(self.image_dir):
            return {}
        return {"training": "images in %s/" % self.image_dir}

    def _all_examples(self):
        examples = {}
        for image in list_images(self.image_dir):
            name = os.path.basename(image)
            category, _, number = os.path.splitext(name)[0].partition("_")
            label = os.path.join(self.training_dir, "gt_image_2", "%s_road_%s.png" % (category, number))
            known = category if category in CATEGORIES else None
            examples[name] = Example(name=name, image_path=image, label_path=label, category=known, sequence=known)
        return examples

    def examples(self, split):
        examples = self._all_examples()
        if not examples:
            return []
        training, validation = holdout_split(list(examples), self.option("val_fraction", 0.1),
                                             self.option("split_seed", 0), source=self.image_dir)
        chosen = {"training": training, "validation": validation}.get(split, [])
        return [examples[name] for name in chosen]

    def read_label(self, example):
        return road_label(example.label_path, self.ignore_label)

"""KITTI road (data_road): road vs. not-road.

    --kitti_path: data_road/training/image_2/<cat>_<num>.png
                  data_road/training/gt_image_2/<cat>_road_<num>.png   (colour ground truth)

Road pixels are magenta (255, 0, 255) -> class 1; everything else -> class 0.
KITTI has no labelled val split, so a seeded --val_fraction of the training
images is held out (same files every run for the same fraction and seed).
"""
import os

import numpy as np
from PIL import Image

from utils.data.families.base import (DatasetFamily, Example, LabelValueError, UnreadableFileError,
                                 holdout_split, list_images)

ROAD_COLOR = (255, 0, 255)


def road_mask(path):
    """Colour ground truth PNG -> uint8 {0, 1} road map."""
    try:
        image = Image.open(path)
        image.load()
    except Exception as error:
        raise UnreadableFileError("%s: cannot read label (%s: %s)" % (path, type(error).__name__, error)) from error
    if image.mode not in ("RGB", "RGBA", "P"):
        raise LabelValueError("%s: KITTI road ground truth must be a colour image, got mode %s" % (path, image.mode))
    rgb = np.asarray(image.convert("RGB"))
    return np.all(rgb == np.array(ROAD_COLOR, np.uint8), axis=-1).astype(np.uint8)


class KittiRoad(DatasetFamily):
    name = "kitti_road"
    description = "KITTI road benchmark (data_road), road vs. background"
    class_names = ("background", "road")
    palette = ((0, 0, 0), (255, 0, 255))
    ignore_label = 255
    default_pixels = 768

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

    def splits(self):
        return ["training", "validation"] if self.option("val_fraction", 0.1) > 0 else ["training"]

    def _all_examples(self):
        examples = {}
        for image in list_images(os.path.join(self.training_dir, "image_2")):
            name = os.path.basename(image)
            category, _, number = os.path.splitext(name)[0].partition("_")
            label = os.path.join(self.training_dir, "gt_image_2", "%s_road_%s.png" % (category, number))
            examples[name] = Example(name=name, image_path=image, label_path=label)
        return examples

    def examples(self, split):
        examples = self._all_examples()
        training, validation = holdout_split(list(examples), self.option("val_fraction", 0.1),
                                             self.option("split_seed", 0))
        chosen = {"training": training, "validation": validation}.get(split, [])
        return [examples[name] for name in chosen]

    def read_label(self, example):
        return road_mask(example.label_path)

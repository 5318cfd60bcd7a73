"""COCO-Stuff 164k (things + stuff, 182 ids).

    --coco_path: images/{train2017,val2017}/*.jpg     (or train2017/, val2017/ straight under --coco_path)
                 stuffthingmaps_trainval2017/{train2017,val2017}/*.png
              or annotations/{train2017,val2017}/*.png  (COCO-Stuff's README and mmsegmentation's guide
                                                        unzip stuffthingmaps_trainval2017.zip there)
    --labels_path: any folder holding {train2017,val2017}/*.png instead

Label PNG value = COCO-Stuff id - 1 (0 = person ... 181 = wood), 255 = unlabeled.
The 11 thing ids COCO dropped (street sign, hat, ...) keep their slot so ids
stay the published ones; they simply never occur.
"""
import os

from utils.data.families.base import DatasetError, DatasetFamily, Example, list_images, stem
from utils.viz import voc_colormap

THINGS = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
          "traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird",
          "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat",
          "backpack", "umbrella", "shoe", "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis",
          "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard",
          "surfboard", "tennis racket", "bottle", "plate", "wine glass", "cup", "fork", "knife", "spoon",
          "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
          "donut", "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window",
          "desk", "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
          "microwave", "oven", "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase",
          "scissors", "teddy bear", "hair drier", "toothbrush", "hair brush")
STUFF = ("banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
         "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter",
         "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble",
         "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other",
         "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves",
         "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper",
         "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing",
         "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf",
         "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
         "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable",
         "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
         "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood")
assert len(THINGS) == 91 and len(STUFF) == 91
SPLIT_FOLDERS = {"training": "train2017", "validation": "val2017"}
LABEL_FOLDERS = ("stuffthingmaps_trainval2017", "annotations")  # in order of preference


class CocoStuff(DatasetFamily):
    name = "coco_stuff"
    description = "COCO-Stuff 164k, 91 thing + 91 stuff ids"
    class_names = THINGS + STUFF
    palette = tuple(voc_colormap(len(THINGS) + len(STUFF) + 1)[1:])  # skip black: that is 'ignore'
    ignore_label = 255
    default_pixels = 512
    label_mapping = "stuffthingmaps PNG value = COCO-Stuff id - 1 (0..181) as it is, 255 unlabeled -> ignore"
    variants = {"stuffthingmaps_trainval2017": "<coco_path>/stuffthingmaps_trainval2017/{train2017,val2017}/*.png",
                "annotations": "<coco_path>/annotations/{train2017,val2017}/*.png (COCO-Stuff README, "
                               "mmsegmentation)",
                "labels_path": "--labels_path <folder>/{train2017,val2017}/*.png"}

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--coco_path", default=None,
                            help="folder holding images/ (or train2017/, val2017/) and the label folder "
                                 "(default: <datapath>/coco_stuff)")
        parser.add_argument("--labels_path", default=None,
                            help="folder holding the label PNGs' train2017/ and val2017/ (default: "
                                 "<coco_path>/stuffthingmaps_trainval2017 or <coco_path>/annotations)")

    @property
    def root(self):
        return self.source_path("coco_path", "coco_stuff")

    def variant(self):
        if self.option("labels_path"):
            return "labels_path"
        for folder in LABEL_FOLDERS:
            if any(os.path.isdir(os.path.join(self.root, folder, sub)) for sub in SPLIT_FOLDERS.values()):
                return folder
        raise DatasetError("%s: no label folder: expected %s/{train2017,val2017}/ (or --labels_path)"
                           % (self.root, " or ".join(LABEL_FOLDERS)))

    @property
    def label_root(self):
        variant = self.variant()
        return (os.path.expanduser(self.option("labels_path")) if variant == "labels_path"
                else os.path.join(self.root, variant))

    def image_dir(self, split):
        nested = os.path.join(self.root, "images", SPLIT_FOLDERS[split])
        flat = os.path.join(self.root, SPLIT_FOLDERS[split])
        return flat if not os.path.isdir(nested) and os.path.isdir(flat) else nested

    def splits(self):
        return [split for split in SPLIT_FOLDERS if os.path.isdir(self.image_dir(split))]

    def missing_splits(self):
        return {split: self.image_dir(split) + "/" for split in SPLIT_FOLDERS if split not in self.splits()}

    def examples(self, split):
        folder = SPLIT_FOLDERS.get(split)
        if folder is None:
            return []
        label_dir = os.path.join(self.label_root, folder)
        return [Example(name=os.path.basename(image), image_path=image,
                        label_path=os.path.join(label_dir, stem(image) + ".png"))
                for image in list_images(self.image_dir(split))]

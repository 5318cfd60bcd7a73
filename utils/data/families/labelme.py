"""LabelMe JSON, one file per image as LabelMe saves it -> semantic masks drawn as labelme2voc.py draws them.

    --labelme_path (default <datapath>/labelme): *.json at the top level and/or one folder down (each folder a
        subset, top level included: train/, val/, batch2/ ... as utils/data/families/tool_exports.py says), each
        {shapes: [{label, points, shape_type}], imagePath (relative to the JSON), imageHeight, imageWidth,
         imageData (optional, base64: the image when imagePath names no file)}
    labels.txt (there, or --labels_path), LabelMe's own list for labelme2voc.py: '__ignore__' (shapes with that
        label become the ignore label), '_background_' (the class of pixels no shape covers; without it they
        are the ignore label), then one class per line.  Without labels.txt: '_background_', then every label
        found, sorted.

Shapes are drawn in file order, later ones on top, with PIL the way LabelMe draws them: polygon (outline
included), rectangle (two corners, both included), circle (centre, a point on the rim).  Lines and points have
no area and are refused.
"""
import base64
import binascii
import json
import math
import os

import numpy as np
from PIL import Image, ImageDraw

from utils.data.families.base import (DatasetError, DatasetFamily, Example, LabelValueError, UnreadableFileError,
                                      image_from_bytes, read_image)
from utils.data.families.tool_exports import add_holdout_arguments, assign_splits
from utils.viz import voc_colormap

IGNORE = "__ignore__"
BACKGROUND = "_background_"
AREA_SHAPES = ("polygon", "rectangle", "circle")


def load_labelme_json(path):
    """The parsed file, refused in one line when it is not a LabelMe annotation."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise UnreadableFileError("%s: cannot read LabelMe JSON (%s: %s)" % (path, type(error).__name__, error)) \
            from error
    if not (isinstance(data, dict) and isinstance(data.get("shapes"), list) and isinstance(data.get("imagePath"), str)
            and all(isinstance(data.get(k), int) for k in ("imageHeight", "imageWidth"))):
        raise DatasetError("%s: not a LabelMe JSON: expected shapes [list], imagePath, imageHeight, imageWidth" % path)
    return data


def read_label_list(path):
    """labels.txt -> (class names, names that mean 'ignore')."""
    with open(path) as handle:
        names = [line.strip() for line in handle if line.strip()]
    classes = tuple(n for n in names if n != IGNORE)
    if not classes:
        raise DatasetError("%s lists no classes" % path)
    return classes, {IGNORE}


def shape_mask(shape, height, width, where):
    """One LabelMe shape -> bool HxW mask, drawn with PIL as LabelMe's shape_to_mask draws it."""
    kind = shape.get("shape_type") or "polygon"  # LabelMe writes null for polygons in old files
    points = shape.get("points")
    if kind not in AREA_SHAPES:
        raise LabelValueError("%s is a %r shape; only polygon, rectangle and circle shapes have an area to label"
                              % (where, kind))
    try:
        xy = [(float(x), float(y)) for x, y in points]
    except (TypeError, ValueError):
        raise LabelValueError("%s: expected points as [[x, y], ...], got %r" % (where, points)) from None
    needed = 3 if kind == "polygon" else 2
    if len(xy) < needed or (kind != "polygon" and len(xy) != 2):
        raise LabelValueError("%s: a %s needs %s%d points, got %d"
                              % (where, kind, "at least " if kind == "polygon" else "", needed, len(xy)))
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    if kind == "polygon":
        draw.polygon(xy, outline=1, fill=1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = xy
        draw.rectangle([(min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))], outline=1, fill=1)
    else:
        (cx, cy), (px, py) = xy
        radius = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=1, fill=1)
    return np.asarray(mask, bool)


class LabelMe(DatasetFamily):
    name = "labelme"
    description = "LabelMe JSON polygons, rectangles and circles (labels.txt as for labelme2voc.py)"
    ignore_label = 255
    default_pixels = 512
    layout = "LabelMe <stem>.json per image"

    def __init__(self, datapath="/data", **options):
        super().__init__(datapath, **options)
        subsets, labels = self._find_annotations()
        labels_path = os.path.expanduser(self.option("labels_path", os.path.join(self.root, "labels.txt")))
        if os.path.isfile(labels_path):
            self.class_names, self.ignore_names = read_label_list(labels_path)
        elif self.option("labels_path"):
            raise DatasetError("missing %s (LabelMe's labels.txt: '__ignore__', '_background_', one class a line)"
                               % labels_path)
        else:
            self.class_names, self.ignore_names = (BACKGROUND,) + tuple(sorted(labels - {BACKGROUND, IGNORE})), {IGNORE}
        self.palette = tuple(voc_colormap(len(self.class_names)))
        self.class_index = {name: index for index, name in enumerate(self.class_names)}
        self.background_value = self.class_index.get(BACKGROUND, self.ignore_label)
        if len(self.class_names) > 255:
            raise DatasetError("%s: %d classes do not fit uint8 labels beside the ignore label 255"
                               % (labels_path, len(self.class_names)))
        self._splits = assign_splits(subsets, self.option("val_fraction", 0.1), self.option("split_seed", 0),
                                     self.root)

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--labelme_path", default=None,
                            help="folder of LabelMe *.json (top level and/or one folder per subset) "
                                 "(default: <datapath>/labelme)")
        parser.add_argument("--labels_path", default=None,
                            help="LabelMe's labels.txt ('__ignore__', '_background_', one class a line; default: "
                                 "<labelme_path>/labels.txt, else '_background_' + the labels found, sorted)")
        add_holdout_arguments(parser)

    @property
    def root(self):
        return self.source_path("labelme_path", "labelme")

    def _find_annotations(self):
        """({subset: {name: Example}}, every label used) of the JSON files at the top level and one folder down."""
        root = self.root
        if not os.path.isdir(root):
            raise DatasetError("missing folder %s (LabelMe *.json files)" % root)
        folders = [""] + sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                                and not d.startswith("."))
        subsets, labels = {}, set()
        for folder in folders:
            directory = os.path.join(root, folder)
            for name in sorted(f for f in os.listdir(directory) if f.lower().endswith(".json")):
                path = os.path.join(directory, name)
                try:
                    data = load_labelme_json(path)
                except UnreadableFileError:  # skipped like any unreadable label (fatal with --strict)
                    stem = os.path.join(folder, os.path.splitext(name)[0]) if folder else os.path.splitext(name)[0]
                    subsets.setdefault(folder, {})[stem] = Example(name=stem, image_path="", label_path=path)
                    continue
                labels.update(str(shape.get("label")) for shape in data["shapes"] if isinstance(shape, dict))
                image = os.path.normpath(os.path.join(directory, data["imagePath"].replace("\\", "/")))
                example_name = os.path.join(folder, os.path.basename(image)) if folder else os.path.basename(image)
                subsets.setdefault(folder, {})[example_name] = Example(name=example_name, image_path=image,
                                                                       label_path=path)
        if not subsets:
            raise DatasetError("%s: no LabelMe *.json files at the top level or one folder down" % root)
        return subsets, labels

    # --- converter interface -----------------------------------------------------------
    def splits(self):
        return list(self._splits)

    def examples(self, split):
        return list(self._splits.get(split, []))

    def load_image(self, example):
        """The file imagePath names, else the JSON's embedded imageData."""
        if os.path.isfile(example.image_path):
            return read_image(example.image_path)
        embedded = load_labelme_json(example.label_path).get("imageData")  # an unreadable JSON is named here
        if not embedded:
            return read_image(example.image_path)  # names the missing file
        try:
            data = base64.b64decode(embedded, validate=True)
        except (binascii.Error, TypeError, ValueError) as error:
            raise UnreadableFileError("%s: imageData is not base64 (%s)" % (example.label_path, error)) from error
        return image_from_bytes(data, "%s (imageData)" % example.label_path)

    def read_label(self, example):
        data = load_labelme_json(example.label_path)
        height, width = data["imageHeight"], data["imageWidth"]
        label = np.full((height, width), self.background_value, np.uint8)
        for number, shape in enumerate(data["shapes"]):
            where = "%s: shape %d" % (example.label_path, number)
            if not isinstance(shape, dict):
                raise LabelValueError("%s: expected an object with label, points, shape_type" % where)
            name = str(shape.get("label"))
            if name in self.ignore_names:
                value = self.ignore_label
            elif name in self.class_index:
                value = self.class_index[name]
            else:
                raise LabelValueError("%s: label %r is not in the class list (%s)"
                                      % (where, name, ", ".join(self.class_names)))
            label[shape_mask(shape, height, width, "%s (%r)" % (where, name))] = value
        return label

    def source_description(self):
        return dict(super().source_description(), layout=self.layout)

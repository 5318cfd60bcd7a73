"""COCO-format JSON (polygons and RLE) -> semantic masks: COCO itself and the tools that export it.

Found under --coco_json_path (default <datapath>/coco_json), the first layout that matches:
    annotations/instances_<subset>.json (+ stuff_<subset>.json, merged)   COCO 2017, CVAT "COCO 1.0"
        images in images/<subset>/, <subset>/ or images/ (the first that holds the file)
    <subset>/_annotations.coco.json                                        Roboflow "COCO"
        images beside the JSON
or --coco_annotations FILE [FILE ...] (Label Studio's result.json, any other export): subset = the file name
less 'instances_' / 'stuff_' and '.json'; images in --coco_images_path, beside the JSON, in its images/ or in
../images/.  Subsets become splits as utils/data/families/tool_exports.py says.

Classes: 'background' (index 0: the pixels no annotation covers), then the categories in id order; a
category named 'background' is that class.  --unannotated ignore makes uncovered pixels the ignore label
instead, with no background class (COCO-Stuff's stuff_*.json covers every pixel).
Overlaps: annotations are painted largest first, so a smaller object lying on a larger one (a cup on a table)
keeps its pixels; of equal areas the later one in the file is on top.  iscrowd=1 regions become the ignore
label wherever no single (non-crowd) annotation covers them.  Masks are decoded by pycocotools.
"""
import dataclasses
import json
import os
import re

import numpy as np
from pycocotools import mask as mask_utils

from utils.data.families.base import DatasetError, DatasetFamily, Example, LabelValueError
from utils.data.families.tool_exports import add_holdout_arguments, assign_splits
from utils.viz import voc_colormap

ANNOTATION_FILE = re.compile(r"^(?:instances|stuff)_(?P<subset>.+)\.json$")
ROBOFLOW_FILE = "_annotations.coco.json"
REQUIRED_KEYS = ("images", "annotations", "categories")


@dataclasses.dataclass(frozen=True)
class Source:
    """One subset's JSON files (merged) and the folders its images may be in, in search order."""
    subset: str
    json_paths: tuple
    image_dirs: tuple


@dataclasses.dataclass(frozen=True)
class Annotation:
    order: int          # position among the image's annotations: the tie-break of the overlap rule
    class_index: int
    iscrowd: bool
    segmentation: object
    where: str          # '<json>: annotation <id>' for error messages


@dataclasses.dataclass
class AnnotatedImage:
    height: int
    width: int
    annotations: list


def load_coco_json(path):
    """The parsed file, refused in one line when it is not COCO-format JSON."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise DatasetError("%s: cannot read COCO JSON (%s: %s)" % (path, type(error).__name__, error)) from error
    if not isinstance(data, dict) or not all(isinstance(data.get(key), list) for key in REQUIRED_KEYS):
        raise DatasetError("%s: not COCO-format JSON: expected lists 'images', 'annotations' and 'categories'"
                           % path)
    return data


def annotation_mask(segmentation, height, width, where):
    """One annotation's segmentation (polygons, uncompressed or compressed RLE) -> bool HxW mask."""
    if isinstance(segmentation, list):
        if not segmentation:
            raise LabelValueError("%s has an empty segmentation (a bounding box only?); expected polygons or RLE"
                                  % where)
        if any(not isinstance(p, list) or len(p) % 2 for p in segmentation):
            raise LabelValueError("%s: expected polygons as flat [x1, y1, x2, y2, ...] lists" % where)
        polygons = [p for p in segmentation if len(p) >= 6]  # fewer: no area (and pycocotools reads 4 as a box)
        if not polygons:
            return np.zeros((height, width), bool)
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            raise LabelValueError("%s: RLE size %s differs from the image's [%d, %d]"
                                  % (where, list(segmentation["size"]), height, width))
    else:
        raise LabelValueError("%s: segmentation is neither polygons nor RLE {counts, size}" % where)
    try:
        if isinstance(segmentation, list):
            rle = mask_utils.merge(mask_utils.frPyObjects([[float(v) for v in p] for p in polygons], height, width))
        elif isinstance(segmentation["counts"], list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        return mask_utils.decode(rle).astype(bool)
    except Exception as error:  # pycocotools raises plain Exceptions (and TypeErrors) on bad input
        raise LabelValueError("%s: cannot decode the segmentation (%s: %s)"
                              % (where, type(error).__name__, error)) from error


def semantic_label(image, background_value, ignore_label):
    """Paint an image's annotations into one class map by the overlap rule of the module docstring."""
    label = np.full((image.height, image.width), background_value, np.uint8)
    singles, crowd = [], np.zeros(label.shape, bool)
    for annotation in image.annotations:
        mask = annotation_mask(annotation.segmentation, image.height, image.width, annotation.where)
        if annotation.iscrowd:
            crowd |= mask
        else:
            singles.append((-int(mask.sum()), annotation.order, annotation.class_index, mask))
    covered = np.zeros(label.shape, bool)
    for _, _, class_index, mask in sorted(singles, key=lambda single: single[:2]):
        label[mask] = class_index
        covered |= mask
    label[crowd & ~covered] = ignore_label
    return label


def _pixels(value):
    """A positive whole number (some tools write 480.0)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value) and value > 0


def merged_categories(data):
    """{category id: name} over all files; one id with two names is refused."""
    names, origin = {}, {}
    for path, content in data.items():
        for category in content["categories"]:
            if not isinstance(category, dict) or "id" not in category or "name" not in category:
                raise DatasetError("%s: every category needs an 'id' and a 'name', got %r" % (path, category))
            known = names.setdefault(category["id"], category["name"])
            if known != category["name"]:
                raise DatasetError("%s: category id %s is %r here but %r in %s"
                                   % (path, category["id"], category["name"], known, origin[category["id"]]))
            origin.setdefault(category["id"], path)
    if not names:
        raise DatasetError("%s: no categories" % ", ".join(data))
    return names


class CocoJson(DatasetFamily):
    name = "coco_json"
    description = "COCO-format JSON, polygons and RLE (COCO, CVAT, Label Studio, Roboflow exports)"
    ignore_label = 255
    default_pixels = 512

    def __init__(self, datapath="/data", **options):
        super().__init__(datapath, **options)
        self.sources, self.layout = self._find_sources()
        data = {path: load_coco_json(path) for source in self.sources for path in source.json_paths}
        self._set_classes(merged_categories(data))
        subsets, self._images = {}, {}
        for source in self.sources:
            subsets.setdefault(source.subset, {}).update(self._examples_of(source, data))
        self._splits = assign_splits(subsets, self.option("val_fraction", 0.1), self.option("split_seed", 0),
                                     self.root)

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--coco_json_path", default=None,
                            help="folder with annotations/{instances,stuff}_<subset>.json (COCO, CVAT 'COCO 1.0'; "
                                 "images in images/<subset>/, <subset>/ or images/) or <subset>/"
                                 "_annotations.coco.json (Roboflow; images beside it) (default: <datapath>/coco_json)")
        parser.add_argument("--coco_annotations", nargs="+", default=None,
                            help="these COCO JSON files instead (e.g. Label Studio's result.json); subset = file name")
        parser.add_argument("--coco_images_path", default=None,
                            help="folder the JSON's file_name entries are relative to (searched first)")
        parser.add_argument("--unannotated", choices=("background", "ignore"), default="background",
                            help="pixels no annotation covers: class 0 'background' (default) or the ignore label")
        add_holdout_arguments(parser)

    @property
    def root(self):
        return self.source_path("coco_json_path", "coco_json")

    # --- finding the files -----------------------------------------------------
    def _find_sources(self):
        """([Source], layout name) of the first layout that matches."""
        images_path = self.option("coco_images_path")
        extra = (os.path.expanduser(images_path),) if images_path else ()
        if self.option("coco_annotations"):
            return [self._explicit_source(os.path.expanduser(p), extra) for p in self.option("coco_annotations")], \
                "--coco_annotations files"
        root, by_subset = self.root, {}
        annotations = os.path.join(root, "annotations")
        for name in sorted(os.listdir(annotations)) if os.path.isdir(annotations) else []:
            match = ANNOTATION_FILE.match(name)
            if match:
                by_subset.setdefault(match.group("subset"), []).append(os.path.join(annotations, name))
        if by_subset:
            return [Source(subset, tuple(paths), extra + (os.path.join(root, "images", subset),
                                                          os.path.join(root, subset), os.path.join(root, "images")))
                    for subset, paths in by_subset.items()], "COCO annotations/{instances,stuff}_<subset>.json"
        roboflow = [d for d in sorted(os.listdir(root)) if os.path.isfile(os.path.join(root, d, ROBOFLOW_FILE))] \
            if os.path.isdir(root) else []
        if roboflow:
            return [Source(d, (os.path.join(root, d, ROBOFLOW_FILE),), extra + (os.path.join(root, d),))
                    for d in roboflow], "Roboflow <subset>/_annotations.coco.json"
        raise DatasetError("%s: no COCO JSON found; expected annotations/instances_<subset>.json (COCO, CVAT), "
                           "<subset>/%s (Roboflow), or name the files with --coco_annotations" % (root, ROBOFLOW_FILE))

    @staticmethod
    def _explicit_source(path, extra):
        folder = os.path.dirname(os.path.abspath(path))
        name = os.path.basename(path)
        match = ANNOTATION_FILE.match(name)
        subset = os.path.basename(folder) if name == ROBOFLOW_FILE else \
            match.group("subset") if match else os.path.splitext(name)[0]
        return Source(subset, (path,), extra + (folder, os.path.join(folder, "images"),
                                                os.path.join(os.path.dirname(folder), "images")))

    def _set_classes(self, categories):
        ids = sorted(categories)
        names = [categories[i] for i in ids]
        self.background_value = self.ignore_label
        if self.option("unannotated", "background") == "background":
            named = [i for i in ids if str(categories[i]).lower() == "background"]
            ids = named[:1] + [i for i in ids if i not in named[:1]] if named else [None] + ids
            names = ["background" if i is None else categories[i] for i in ids]
            self.background_value = 0
        if len(names) > 255:
            raise DatasetError("%s: %d classes do not fit uint8 labels beside the ignore label 255"
                               % (self.root, len(names)))
        self.class_of_category = {i: index for index, i in enumerate(ids) if i is not None}
        self.class_names = tuple(str(n) for n in names)
        self.palette = tuple(voc_colormap(len(names)) if self.background_value == 0
                             else voc_colormap(len(names) + 1)[1:])

    def _examples_of(self, source, data):
        """{file_name: Example} of one source, its annotations kept for read_label."""
        label_path, images = source.json_paths[0], {}
        for path in source.json_paths:
            content, by_id = data[path], {}
            for entry in content["images"]:
                if not (isinstance(entry, dict) and isinstance(entry.get("file_name"), str) and "id" in entry
                        and all(_pixels(entry.get(k)) for k in ("height", "width"))):
                    raise DatasetError("%s: every image needs id, file_name, height and width (pixels), got %r"
                                       % (path, entry))
                size = (int(entry["height"]), int(entry["width"]))
                image = images.setdefault(entry["file_name"], AnnotatedImage(size[0], size[1], []))
                if (image.height, image.width) != size:
                    raise DatasetError("%s: image %s is %dx%d here but %dx%d in %s" % (
                        path, entry["file_name"], entry["height"], entry["width"], image.height, image.width,
                        label_path))
                by_id[entry["id"]] = image
            for number, annotation in enumerate(content["annotations"]):
                self._attach(annotation, number, by_id, path)
        examples = {}
        for file_name, image in images.items():
            example = Example(name=file_name, image_path=self._image_path(source.image_dirs, file_name),
                              label_path=label_path)
            self._images[(label_path, file_name)] = image
            examples[file_name] = example
        return examples

    def _attach(self, annotation, number, by_id, path):
        known = isinstance(annotation, dict) and "id" in annotation
        where = "%s: annotation %s" % (path, annotation["id"] if known else "#%d" % number)
        if not isinstance(annotation, dict) or not all(k in annotation for k in ("image_id", "category_id")):
            raise DatasetError("%s needs image_id and category_id" % where)
        if "segmentation" not in annotation:
            raise DatasetError("%s has no segmentation (a detection-only export?); expected polygons or RLE" % where)
        image = by_id.get(annotation["image_id"])
        if image is None:
            raise DatasetError("%s: image_id %s is not in 'images'" % (where, annotation["image_id"]))
        if annotation["category_id"] not in self.class_of_category:
            raise DatasetError("%s: category_id %s is not in 'categories'" % (where, annotation["category_id"]))
        image.annotations.append(Annotation(order=len(image.annotations),
                                            class_index=self.class_of_category[annotation["category_id"]],
                                            iscrowd=bool(annotation.get("iscrowd", 0)),
                                            segmentation=annotation["segmentation"], where=where))

    @staticmethod
    def _image_path(image_dirs, file_name):
        """The first folder holding the image (by its file_name, then its base name); else the first guess."""
        candidates = [os.path.join(d, name) for d in image_dirs for name in (file_name, os.path.basename(file_name))]
        return next((c for c in candidates if os.path.isfile(c)), candidates[0])

    # --- converter interface -------------------------------------------------------
    def splits(self):
        return list(self._splits)

    def examples(self, split):
        return list(self._splits.get(split, []))

    def read_label(self, example):
        return semantic_label(self._images[(example.label_path, example.name)], self.background_value,
                              self.ignore_label)

    def source_description(self):
        return dict(super().source_description(), layout=self.layout,
                    annotation_files=[p for s in self.sources for p in s.json_paths])

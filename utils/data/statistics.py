"""Per-class statistics of a split, recorded in dataset.json: what class weighting and label checks read.

For each class c of a split (the ignore label apart):
    class_pixels[c]        pixels labelled c
    class_images[c]        images containing c
    class_image_pixels[c]  labelled (non-ignore) pixels of the images containing c (median-frequency
                           balancing's denominator)
The converter fills them in while it writes the records; for a dataset
converted before that, `split_statistics` counts them once from the records
and writes them into dataset.json.
"""
import numpy as np

from utils.data.dataset_info import MissingData, dataset_dir, dataset_files, read_dataset_json, write_dataset_json
from utils.data.records import read_examples

KEYS = ("class_pixels", "class_images", "class_image_pixels")


class ClassCounts:
    """Accumulates the statistics above over label maps."""

    def __init__(self, num_classes, ignore_label=None):
        self.num_classes, self.ignore_label = int(num_classes), ignore_label
        self.pixels = np.zeros(self.num_classes, np.int64)
        self.images = np.zeros(self.num_classes, np.int64)
        self.image_pixels = np.zeros(self.num_classes, np.int64)

    def add(self, label):
        counts = np.bincount(np.asarray(label, np.int64).ravel(), minlength=256)
        if self.ignore_label is not None and 0 <= self.ignore_label < len(counts):
            counts[self.ignore_label] = 0
        per_class = counts[:self.num_classes]
        present = per_class > 0
        self.pixels += per_class
        self.images += present
        self.image_pixels += present * int(per_class.sum())
        return self

    def merge(self, other):
        self.pixels += other.pixels
        self.images += other.images
        self.image_pixels += other.image_pixels
        return self

    def as_dict(self):
        return {"class_pixels": self.pixels.tolist(), "class_images": self.images.tolist(),
                "class_image_pixels": self.image_pixels.tolist()}


def count_records(files, num_classes, ignore_label):
    """ClassCounts of every label in record files."""
    counts = ClassCounts(num_classes, ignore_label)
    for example in read_examples(files):
        counts.add(example["label"])
    return counts


def split_statistics(datapath, family, split, log=print):
    """{class_pixels, class_images, class_image_pixels} of a converted split, from dataset.json; counted from
    the records (once) and written into dataset.json when a conversion before these statistics lacks them."""
    directory = dataset_dir(datapath, family)
    info = read_dataset_json(directory) or {}
    entry = info.get("splits", {}).get(split, {})
    if all(key in entry for key in KEYS):
        return {key: entry[key] for key in KEYS}
    files = dataset_files(datapath, family, split)
    if not info:
        raise MissingData("no dataset.json in %s: convert the dataset again to record its classes" % directory)
    log("%s/%s: dataset.json has no class statistics yet; counting them from %d record file(s) (once)"
        % (family, split, len(files)))
    stats = count_records(files, info["num_classes"], info.get("ignore_label")).as_dict()
    info.setdefault("splits", {}).setdefault(split, {}).update(stats)
    write_dataset_json(directory, info)
    return stats

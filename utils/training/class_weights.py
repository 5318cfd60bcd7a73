"""Per-class loss weights from a training split's class statistics (utils/data/statistics.py).

    enet         w_c = 1 / ln(1.02 + p_c), p_c the class's share of the labelled training pixels,
                 normalised to mean 1 over the classes (ENet; seg-mentor's CamVid weighting)
    median_freq  w_c = median(f) / f_c, f_c = pixels of c / labelled pixels of the images containing c
                 (Eigen & Fergus; SegNet's median-frequency balancing); a class never labelled gets 0
    <file.json>  a list of num_classes weights, or {class name: weight} naming every class
    none         no weighting
"""
import json
import os

import numpy as np

CHOICES = ("none", "enet", "median_freq")
ENET_C = 1.02


def default_choice(dataset_family):
    """seg-mentor weighted CamVid's loss (ENet weights); nothing else by default."""
    return "enet" if dataset_family == "camvid" else "none"


def enet_weights(class_pixels, c=ENET_C):
    pixels = np.asarray(class_pixels, np.float64)
    share = pixels / max(pixels.sum(), 1.0)
    weights = 1.0 / np.log(c + share)
    return weights / weights.mean()


def median_frequency_weights(class_pixels, class_image_pixels):
    pixels = np.asarray(class_pixels, np.float64)
    image_pixels = np.asarray(class_image_pixels, np.float64)
    seen = (pixels > 0) & (image_pixels > 0)
    frequency = np.where(seen, pixels / np.maximum(image_pixels, 1.0), 0.0)
    weights = np.zeros_like(frequency)
    weights[seen] = np.median(frequency[seen]) / frequency[seen]
    return weights


def read_weights_file(path, class_names):
    """Weights from a JSON file: a list in class order, or {class name: weight} naming every class."""
    if not os.path.isfile(path):
        raise ValueError("--class_weights %r: neither %s nor an existing JSON file" % (path, ", ".join(CHOICES)))
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError("--class_weights %s: not a JSON file (%s)" % (path, error)) from None
    if isinstance(data, dict):
        missing = [name for name in class_names if name not in data]
        extra = [name for name in data if name not in class_names]
        if missing or extra:
            raise ValueError("--class_weights %s: classes missing %s, unknown %s; the dataset's classes: %s"
                             % (path, missing, extra, ", ".join(class_names)))
        data = [data[name] for name in class_names]
    if not isinstance(data, list) or len(data) != len(class_names):
        raise ValueError("--class_weights %s holds %s weights; the model has %d classes (%s)"
                         % (path, len(data) if isinstance(data, list) else "no list of", len(class_names),
                            ", ".join(class_names)))
    weights = np.asarray(data, np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("--class_weights %s: weights must be finite and >= 0" % path)
    return weights


def resolve(choice, class_names, statistics=None):
    """(choice, weights as a list or None) for --class_weights `choice` and the model's classes.

    statistics: the training split's {class_pixels, class_image_pixels, ...} (needed by enet and median_freq).
    """
    if choice in (None, "", "none"):
        return "none", None
    if choice not in CHOICES:
        return choice, read_weights_file(choice, class_names).tolist()
    pixels = statistics["class_pixels"][:len(class_names)]
    if choice == "enet":
        return choice, enet_weights(pixels).tolist()
    return choice, median_frequency_weights(pixels, statistics["class_image_pixels"][:len(class_names)]).tolist()

"""Raw predictions on disk (test.py --save_masks): class-index PNGs and float16 probabilities, one per image.

    formats = parse_formats("png,npy")                       # ('png', 'npy')
    writer = PredictionWriter(outdir, formats, class_names, palette, ignore_label)
    writer.write("0016E5_08039", classes, probabilities)     # masks/0016E5_08039.png, probabilities/....npy
    writer.save_index()                                      # predictions.json: what went where
    read_mask(path)                                          # HxW class indices back

Why these files: an overlay is for eyes, a downstream tool (a benchmark
server, an ensemble, a label-correction pass) needs the class map itself, as
mmsegmentation's --out / format-only mode writes it: one PNG per image, named
after its source image, holding the class index of every pixel.  The PNG is
palette mode ('P') with the dataset's colours, so it also opens as a
coloured picture; the ignore label keeps its own index (drawn black), so a
mask reads like the dataset's own label files.  The .npy holds the softmax
probabilities (H, W, C) at the image's resolution in float16: half the bytes
of float32, and the argmax survives (classes whose probabilities round to the
same float16 are the only ties).  No TensorFlow here: numpy and Pillow.
"""
import json
import os

import numpy as np
from PIL import Image

from utils import viz

FORMATS = ("png", "npy")
FOLDERS = {"png": "masks", "npy": "probabilities"}
INDEX = "predictions.json"


def parse_formats(text):
    """--save_masks 'png', 'npy' or 'png,npy' -> a tuple of formats, in FORMATS' order; '' -> ()."""
    if text is None or str(text).strip() == "":
        return ()
    asked = [part.strip().lower() for part in str(text).split(",") if part.strip()]
    unknown = [part for part in asked if part not in FORMATS]
    if unknown or not asked:
        raise ValueError("--save_masks %r: choose png, npy or png,npy" % text)
    return tuple(kind for kind in FORMATS if kind in asked)


def check_classes(formats, num_classes):
    """ValueError when class-index PNGs cannot hold `num_classes` (8-bit palette images: 256 at most)."""
    if "png" in formats and num_classes > 256:
        raise ValueError("--save_masks png: %d classes do not fit an 8-bit PNG; use --save_masks npy" % num_classes)


def png_palette(palette, ignore_label=None):
    """768 ints for PIL's putpalette: class index -> the dataset's colour, the ignore label (and unused) black."""
    return viz.color_lut(palette, ignore_label).reshape(-1).tolist()


def read_mask(path):
    """HxW class indices of a mask PNG (the palette indices, not the colours)."""
    with Image.open(path) as image:
        return np.asarray(image)


class PredictionWriter:
    """Writes each image's class map and / or probabilities under `outdir`, and an index of what went where."""

    def __init__(self, outdir, formats, class_names, palette, ignore_label=None):
        self.outdir, self.formats = outdir, tuple(formats)
        self.class_names, self.ignore_label = list(class_names), ignore_label
        check_classes(self.formats, len(self.class_names))
        self._palette = png_palette(palette, ignore_label)
        self.files = []  # [{"source": ..., "png": relative path, "npy": relative path}]
        self._names = set()
        for kind in self.formats:
            os.makedirs(os.path.join(outdir, FOLDERS[kind]), exist_ok=True)

    @property
    def wants_probabilities(self):
        return "npy" in self.formats

    def _unique(self, name):
        """`name`, or name_2, name_3 ... when two sources share a file stem (images from several folders)."""
        candidate, count = name, 1
        while candidate in self._names:
            count += 1
            candidate = "%s_%d" % (name, count)
        self._names.add(candidate)
        return candidate

    def write(self, name, classes, probabilities=None, source=None):
        """One image's files, named `name` (its source's stem or a frame number); returns {format: path}."""
        name, written = self._unique(name), {}
        if "png" in self.formats:
            mask = Image.fromarray(np.asarray(classes, np.uint8))
            mask.putpalette(self._palette)  # an 'L' image becomes 'P': same bytes, now with colours
            written["png"] = os.path.join(self.outdir, FOLDERS["png"], name + ".png")
            mask.save(written["png"])
        if "npy" in self.formats:
            if probabilities is None:
                raise ValueError("--save_masks npy needs the probabilities of %s" % name)
            written["npy"] = os.path.join(self.outdir, FOLDERS["npy"], name + ".npy")
            np.save(written["npy"], np.asarray(probabilities, np.float16))
        entry = {kind: os.path.relpath(path, self.outdir) for kind, path in written.items()}
        entry["source"] = source if source is not None else name
        self.files.append(entry)
        return written

    def record(self):
        """What results.json (or segmented.json) says about the predictions: formats, folders, count, index."""
        return {"formats": list(self.formats), "folders": {kind: FOLDERS[kind] for kind in self.formats},
                "images": len(self.files), "index": INDEX}

    def save_index(self):
        """predictions.json: the class names, palette and ignore label the masks use, and each file's source."""
        index = dict(self.record(), class_names=self.class_names, ignore_label=self.ignore_label,
                     palette=[self._palette[i:i + 3] for i in range(0, 3 * len(self.class_names), 3)],
                     png="palette mode, pixel value = class index" if "png" in self.formats else None,
                     npy="float16 softmax probabilities (H, W, classes)" if "npy" in self.formats else None,
                     files=self.files)
        path = os.path.join(self.outdir, INDEX)
        with open(path, "w") as handle:
            json.dump(index, handle, indent=2)
            handle.write("\n")
        return path

    def describe(self):
        """'masks/ (PNG class indices) and probabilities/ (float16 .npy) in DIR'."""
        parts = {"png": "%s/ (class-index PNGs)" % FOLDERS["png"], "npy": "%s/ (float16 .npy)" % FOLDERS["npy"]}
        return "%d prediction(s): %s in %s" % (len(self.files), " and ".join(parts[k] for k in self.formats),
                                                self.outdir)

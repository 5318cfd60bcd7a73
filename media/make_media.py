"""Regenerate the README's pictures from a trained run: `python media/make_media.py --traindir tmp/<run>`

    media/camvid_prediction.png   a CamVid validation image | prediction | ground truth, with the class legend
    media/camvid_sequence.gif     consecutive 0016E5 validation frames, prediction overlaid, small
    media/made_with.json          which run, checkpoint and frames made them (provenance)

The pictures come from real CamVid validation frames (never seen in training),
segmented by `utils.inference.Segmenter` exactly as test.py does; run this
again after training a better net and commit the new files.  Kept small for
the repository: the GIF is downscaled (default 240x180) and short.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

from utils import viz
from utils.inference import evaluation, pictures
from utils.inference.movie import write_gif
from utils.inference.segmenter import Segmenter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

DEFAULT_CAMVID = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "camvid"))


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traindir", required=True, help="run folder made by train.py")
    parser.add_argument("--afteriter", type=int, default=None, help="milestone step (default: newest checkpoint)")
    parser.add_argument("--camvid_path", default=DEFAULT_CAMVID, help="CamVid in the SegNet layout (val/, valannot/)")
    parser.add_argument("--image", default="0016E5_08085", help="validation frame for the prediction picture")
    parser.add_argument("--first_frame", default="0016E5_08121", help="first validation frame of the GIF")
    parser.add_argument("--frames", type=int, default=18, help="GIF length in frames")
    parser.add_argument("--fps", type=float, default=8.0, help="GIF frame rate")
    parser.add_argument("--gif_size", default="240x180", help="GIF width x height")
    parser.add_argument("--panel_scale", type=float, default=0.75, help="size of the picture's panels vs the frame")
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the class colours in the GIF")
    parser.add_argument("--outdir", default=HERE, help="where the pictures go")
    return parser


def read_frame(camvid_path, name):
    return np.asarray(Image.open(os.path.join(camvid_path, "val", name + ".png")).convert("RGB"))


def read_label(camvid_path, name):
    return np.asarray(Image.open(os.path.join(camvid_path, "valannot", name + ".png")))


def shrink(array, scale=None, size=None, nearest=False):
    image = Image.fromarray(np.asarray(array, np.uint8))
    size = size or (int(round(image.width * scale)), int(round(image.height * scale)))
    return np.asarray(image.resize(size, Image.NEAREST if nearest else Image.LANCZOS))


def sequence_names(camvid_path, first, count):
    """`count` validation frames in file order starting at `first` (CamVid val frames are consecutive)."""
    names = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(camvid_path, "val")) if n.endswith(".png"))
    if first not in names:
        raise SystemExit("error: frame %s not in %s/val" % (first, camvid_path))
    start = names.index(first)
    return names[start:start + count]


def make_prediction_picture(segmenter, camvid_path, name, scale, path):
    image, truth = read_frame(camvid_path, name), read_label(camvid_path, name)
    prediction = segmenter.segment(image)
    report = evaluation.summarize([evaluation.image_confusion(prediction, truth, segmenter.num_classes,
                                                              segmenter.ignore_label)],
                                  segmenter.class_names, bootstrap=0)
    truth_small = shrink(truth, scale, nearest=True)
    picture = pictures.prediction_panel(shrink(image, scale), shrink(prediction, scale, nearest=True),
                                        segmenter.class_names, segmenter.palette, truth=truth_small,
                                        ignore_label=segmenter.ignore_label, title=name)
    viz.to_pil(picture).save(path, optimize=True)
    return report["mIoU"]


def make_sequence_gif(segmenter, camvid_path, names, size, fps, alpha, path):
    frames = [read_frame(camvid_path, n) for n in names]
    predictions = segmenter.segment(frames)
    overlays = [shrink(viz.overlay(f, p, segmenter.palette, alpha, segmenter.ignore_label), size=size)
                for f, p in zip(frames, predictions)]
    return write_gif(path, overlays, fps)


def main(argv=None):
    args = build_parser().parse_args(argv)
    size = tuple(int(v) for v in args.gif_size.lower().split("x"))
    os.makedirs(args.outdir, exist_ok=True)
    with Segmenter(args.traindir, step=args.afteriter) as segmenter:
        print("segmenting with %s" % segmenter.describe())
        picture = os.path.join(args.outdir, "camvid_prediction.png")
        image_miou = make_prediction_picture(segmenter, args.camvid_path, args.image, args.panel_scale, picture)
        names = sequence_names(args.camvid_path, args.first_frame, args.frames)
        gif = os.path.join(args.outdir, "camvid_sequence.gif")
        make_sequence_gif(segmenter, args.camvid_path, names, size, args.fps, args.alpha, gif)
        provenance = {"run": os.path.basename(os.path.normpath(args.traindir)), "net": segmenter.name,
                      "step": segmenter.step, "pixels": segmenter.pixels,
                      "prediction_picture": {"file": os.path.basename(picture), "frame": args.image,
                                             "image_mIoU": image_miou},
                      "sequence_gif": {"file": os.path.basename(gif), "frames": names, "fps": args.fps,
                                       "size": list(size)},
                      "command": "python media/make_media.py --traindir <run>%s"
                                 % ("" if args.afteriter is None else " --afteriter %d" % args.afteriter)}
    with open(os.path.join(args.outdir, "made_with.json"), "w") as handle:
        json.dump(provenance, handle, indent=2)
        handle.write("\n")
    for path in (picture, gif):
        print("wrote %s (%.0f kB)" % (path, os.path.getsize(path) / 1024.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())

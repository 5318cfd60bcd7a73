"""Test a trained run: `python test.py --traindir tmp/<YYYYMMDD>_<NETNAME>__<#RUN> [--g 1]`

Every net and dataset setting comes from the run folder's runargs and the
weights from its checkpoint, so any training run can be tested as it was
trained.  Scores the whole validation (or test) split at each image's
original resolution: mIoU with a bootstrap 95 % CI, per-class IoU, pixel and
mean class accuracy, frequency-weighted IoU, per-class F1 (Dice), the
calibration of the softmax (expected calibration error and a reliability
diagram), the confusion matrix (CSV + PNG), and pictures of the images asked
for (--first2viz..--last2viz); all of it lands in results.json and friends
under <traindir>/test_<split>_<step>/.  Where the records know each image's
sequence (the recording: CamVid's drive, Cityscapes' city), the report says
how many scored images come from sequences training also holds, a score
optimistic for new scenes (results.json `sequences`), with the mIoU per
sequence when there are several.

    --afteriter 3000          the checkpoint after 3000 steps (an unknown step lists the saved ones)
    --afteriter 3000,6000     several checkpoints: each scored, plus the spread of the mIoU
    --afteriter last:3        the three newest (the run's last step is always one: every run ends on a milestone)
    --afteriter best          the best full-validation checkpoint (train.py --keep_best)
    --scales 0.75,1,1.25 --flip   multi-scale + flip testing (averaged probabilities)
    --pixels 0 --tile 512x512     native resolution through sliding 512x512 windows (4K images; with
                              --imagepath / --moviepath too), probabilities blended where they overlap
    --imagepath 'pics/*.jpg'  segment images of your fancy (no labels) -> overlay PNGs
    --moviepath drive.mp4     segment a movie -> H.264 overlay movie, same frame count and rate, a legend strip
                              under the frames (--no_legend: without)
    --save_masks png,npy      also the raw predictions, for the split, --imagepath or --moviepath: masks/<image>.png
                              (class indices, the dataset's palette) and probabilities/<image>.npy (float16 H x W x C)
    --export exported/        a SavedModel (batch norm folded) that plain TensorFlow can load and run
    --export_tflite int8 deploy/int8   TFLite fp32 | fp16 | int8 | int16x8 of the same folded net (static shape, see
                              --export_shape, --export_output, --calibration_images, --int8_io); export.json beside it
    --export_onnx deploy/onnx ONNX (tf2onnx, opset 17) of the same net
    --model deploy/int8/model.tflite   score an exported model (.tflite, .onnx or a SavedModel folder) with the
                              same evaluation; results.json names the runtime and precision
    --quantized               export int8 (into <traindir>/export_tflite_int8_<step>) and score it

Result folders are named after what was scored: test_<split>_<step>[_<runtime>_<precision>][_px<N>][_scales..]
[_flip][_tile<H>x<W>] (segmented_... for --imagepath / --moviepath).  One that holds results made with other
settings (results.json's `settings`) is never overwritten: the next free _2, _3 ... is used and the printout
says so; the same settings again replace their results (--overwrite: replace whatever is there).
"""
import argparse
import dataclasses
import glob
import os
import re
import sys
import time

import numpy as np
from PIL import Image

from utils.compat import precision
from utils.compat import backend
from utils.data import sequences
from utils.data.dataset_info import dataset_files, load_dataset_info
from utils.data.families import canonical_split
from utils.flags import add_bool_flag, add_gpu_flag, add_setting_flags, apply_gpu_flag_early, settings_from_args
from utils.inference import clusters, deploy, evaluation, export, pictures, predictions, result_folders, runtimes
from utils.inference import score_events
from utils.inference.geometry import check_overlap, parse_scales, parse_tile
from utils.inference.movie import check_movie, segment_movie
from utils.inference.segmenter import Segmenter, describe_tile
from utils.training import checkpoint_check, runfolder
from utils.training.config import RunConfig, TrainSettings, provenance

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SPLITS = ("validation", "test", "holdout", "training")  # holdout: utils/tfrecordify.py --holdout_sequence
RESULTS_RECORD = "results.json"
SEGMENTED_RECORD = "segmented.json"  # --imagepath / --moviepath's record: what was segmented, with what, where


class UsageError(Exception):
    """A problem with the command line or the run folder: printed without a traceback, exit code 2."""


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traindir", required=True, help="run folder made by train.py (holds runargs)")
    parser.add_argument("--afteriter", default=None,
                        help="checkpoint saved after X steps (default: newest); 'X,Y,...' or 'last:K' for several; "
                             "'best' for the one train.py --keep_best kept")
    parser.add_argument("--pixels", type=int, default=None,
                        help="larger image side fed to the net (default: as trained; 0 = native resolution)")
    parser.add_argument("--scales", default="1", help="comma list of test scales, factors on --pixels (default: 1)")
    add_bool_flag(parser, "flip", False, "also segment the mirrored image and average")
    parser.add_argument("--tile", default=None, metavar="HxW",
                        help="segment through overlapping windows of HxW net-input pixels (e.g. 256x256) at the "
                             "image's scale, for images too large for one net call (default: whole images)")
    parser.add_argument("--tile_overlap", type=float, default=0.25,
                        help="share of a window its neighbour also covers, in [0, 1) (default: 0.25)")
    parser.add_argument("--split", default="validation", help="split to score: %s (default: validation)" % ", ".join(SPLITS))
    parser.add_argument("--datapath", default=None, help="root of <family>/<split>.tfrecords (default: runargs')")
    parser.add_argument("--num_images", type=int, default=None, help="score only the first N images of the split")
    parser.add_argument("--first2viz", type=int, default=0, help="first image index to draw (default: 0)")
    parser.add_argument("--last2viz", type=int, default=2, help="last image index to draw, -1: none (default: 2)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the mIoU 95 %% CI, 0 = off (default: 1000)")
    parser.add_argument("--bootstrap_by", default="auto",
                        help="what the bootstrap resamples: sequence (whole videos; a single one falls back to blocks "
                             "of consecutive frames), block, block:N, image; auto = sequence where the dataset has "
                             "sequences (CamVid, Cityscapes), else image (default: auto)")
    parser.add_argument("--imagepath", default=None, help="image file, folder or glob to segment (no scoring)")
    parser.add_argument("--moviepath", default=None, help="video file to segment into an overlay movie")
    parser.add_argument("--export", default=None, metavar="DIR",
                        help="write the checkpoint as a SavedModel (batch norm folded, runs without this code) and stop")
    parser.add_argument("--export_tflite", nargs=2, default=None, metavar=("PRECISION", "DIR"),
                        help="write DIR/model.tflite at PRECISION %s (the folded net, static input shape) and stop"
                             % "|".join(deploy.PRECISIONS))
    parser.add_argument("--export_onnx", default=None, metavar="DIR",
                        help="write DIR/model.onnx (the folded net, static input shape, opset %d) and stop"
                             % deploy.ONNX_OPSET)
    add_setting_flags(parser, deploy.ExportSettings)
    parser.add_argument("--model", default=None,
                        help="score (or --imagepath / --moviepath) an exported model instead of the checkpoint: "
                             "DIR/model.tflite, DIR/model.onnx or a SavedModel folder")
    parser.add_argument("--quantized", action="store_true",
                        help="export int8 TFLite into <traindir>/export_tflite_int8_<step> (reused when its "
                             "settings match) and score it: seg-mentor's --hquant")
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the class colours in overlays (default: 0.5)")
    parser.add_argument("--save_masks", default="", metavar="png|npy|png,npy",
                        help="also write the raw predictions of every image scored or segmented: png = class-index "
                             "PNG in the dataset's palette (masks/), npy = float16 softmax probabilities H x W x C "
                             "(probabilities/); listed in predictions.json (default: none)")
    add_bool_flag(parser, "legend", True, "a strip of the class colours and names under each movie frame")
    parser.add_argument("--no_legend", dest="legend", action="store_false", help="movie frames without the legend")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into the result folder even when it holds results made with other settings "
                             "(default: the next free <folder>_2, _3 ...)")
    parser.add_argument("--outdir", default=None,
                        help="output folder (default: <traindir>/test_<split>_<step> or <traindir>/segmented_<step>)")
    parser.add_argument("--batch_size", type=int, default=None, help="images per net call (default: training's)")
    add_bool_flag(parser, "fold_batch_norms", True,
                  "run the frozen graph with batch norm folded into the convolutions, as --export writes it "
                  "(--no-fold_batch_norms: the variable graph as trained)")
    add_bool_flag(parser, "xla", False, "XLA JIT compilation (as train.py --xla)")
    add_setting_flags(parser, TrainSettings, only=("mixed_precision",))  # train.py's flag: auto|bf16|fp16|fp32
    parser.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads (0 = TF default)")
    add_gpu_flag(parser)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log")
    return parser


# ------------------------------------------------------------------------ arguments, before TF
def select_steps(afteriter, available):
    """--afteriter -> list of saved steps (runfolder.addressable_steps: the milestones and latest/'s); None ->
    [None] (the newest checkpoint).

    Accepts 'X', 'X,Y,...', 'last:K' and 'best' (the checkpoint train.py --keep_best kept).  An unknown
    step raises UsageError naming the saved ones.
    """
    if afteriter is None or str(afteriter).strip() == "":
        return [None]
    text = str(afteriter).strip()
    if text == "best":
        return ["best"]
    saved = ", ".join(map(str, available)) or "none"
    last = re.fullmatch(r"last:(\d+)", text)
    if last:
        count = int(last.group(1))
        if count < 1 or not available:
            raise UsageError("--afteriter %s: need K >= 1 and saved milestones; saved steps: %s" % (text, saved))
        return available[-count:]
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError("--afteriter %r: expected a step, a comma list of steps or last:K" % text) from None
    unknown = [s for s in steps if s not in available]
    if unknown or not steps:
        raise UsageError("no checkpoint after %s steps; saved steps: %s"
                         % (", ".join(map(str, unknown or steps)), saved))
    return steps


def resolve_datapath(path):
    """A relative runargs datapath is tried from the working directory, then from the repository root."""
    if path and not os.path.isabs(path) and not os.path.exists(path) and os.path.exists(os.path.join(HERE, path)):
        return os.path.join(HERE, path)
    return path


def find_images(path):
    """Image files named by a file, a folder (its images, sorted) or a glob pattern."""
    if os.path.isdir(path):
        found = [os.path.join(path, name) for name in sorted(os.listdir(path))]
    elif os.path.isfile(path):
        if not path.lower().endswith(IMAGE_EXTENSIONS):
            raise UsageError("--imagepath %s: not an image file name (%s)" % (path, ", ".join(IMAGE_EXTENSIONS)))
        return [path]
    else:
        found = sorted(glob.glob(path))
    images = [p for p in found if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS)]
    if not images:
        raise UsageError("no images found at %s (a file, a folder or a glob such as 'pics/*.jpg')" % path)
    return images


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def trained_sequences(datapath, family):
    """{sequence: images} of the dataset's training split, for runs whose runargs predate recording it."""
    try:
        return sequences.split_sequences(load_dataset_info(datapath, family), "training")
    except (FileNotFoundError, ValueError):
        return None


# ------------------------------------------------------------------------ scoring
def evaluate_checkpoint(segmenter, settings, outdir, viz_range, bootstrap, identity=None):
    """Score the split with the loaded weights; write results.json, confusion CSV/PNG, pictures and, with
    settings["save_masks"], each image's predictions exactly as scored.  identity: results.json's `settings`."""
    os.makedirs(outdir, exist_ok=True)
    names, palette, ignore = segmenter.class_names, segmenter.palette, segmenter.ignore_label
    drawn = []
    writer = prediction_writer(segmenter, settings["save_masks"], outdir)

    def draw(index, example, prediction, probabilities=None):
        if writer is not None:
            writer.write(stem(example["filename"] or str(index)), prediction, probabilities,
                         source=example["filename"] or str(index))
        if viz_range[0] <= index <= viz_range[1]:
            picture_dir = os.path.join(outdir, "viz")
            os.makedirs(picture_dir, exist_ok=True)
            base = os.path.join(picture_dir, "%03d_%s" % (index, stem(example["filename"] or str(index))))
            pictures.prediction_panel(example["image"], prediction, names, palette, example["label"],
                                             ignore, title=example["filename"]).save(base + "_panel.png")
            pictures.overlay_picture(example["image"], prediction, palette, settings["alpha"],
                                            ignore).save(base + "_overlay.png")
            drawn.append(base + "_panel.png")

    examples = evaluation.split_examples(settings["datapath"], settings["dataset_family"], settings["split"],
                                         settings["num_images"])
    scored = evaluation.score_split(segmenter, examples, on_image=draw,
                                    probabilities=writer is not None and writer.wants_probabilities)
    report = evaluation.summarize(scored.confusions, names, bootstrap=bootstrap, calibration=scored.calibration,
                                  filenames=scored.filenames, family=settings["dataset_family"],
                                  bootstrap_by=settings["bootstrap_by"], categories=scored.categories,
                                  sequences=scored.sequences)
    speed = len(scored.filenames) / scored.seconds if scored.seconds > 0 else float("nan")
    results = {"run": os.path.abspath(segmenter.traindir), "net": segmenter.name,
               "checkpoint": segmenter.checkpoint, "step": segmenter.step, "split": settings["split"],
               "runtime": segmenter.runtime, "precision": segmenter.precision, "backend": backend.record(),
               "model": os.path.abspath(segmenter.model_path) if getattr(segmenter, "model_path", None) else None,
               "dataset_family": settings["dataset_family"], "datapath": settings["datapath"],
               "pixels": segmenter.pixels, "scales": list(segmenter.scales), "flip": segmenter.flip,
               "tile": list(segmenter.tile) if segmenter.tile else None,
               "tile_overlap": segmenter.tile_overlap if segmenter.tile else None,
               "images_per_second": speed, "segmentation_seconds": scored.seconds,
               "filenames": scored.filenames, "pictures": [os.path.relpath(p, outdir) for p in drawn],
               "predictions": None if writer is None else writer.record(), "settings": identity,
               "provenance": provenance(),  # what scored it: code, libraries, CPU, kernels
               "sequences": sequences.contamination(scored.sequences, settings["training_sequences"],
                                                    settings["split"])}  # did training see these recordings?
    results.update(report)
    if writer is not None:
        writer.save_index()
    evaluation.write_json(os.path.join(outdir, RESULTS_RECORD), results)
    score_events.write_scores(segmenter, results)  # TensorBoard: <traindir>/tb_scores at the scored step
    evaluation.write_confusion_csv(os.path.join(outdir, "confusion_matrix.csv"), report["confusion_matrix"], names)
    pictures.confusion_heatmap(os.path.join(outdir, "confusion_matrix.png"), report["confusion_matrix"],
                                      names, title="%s step %s, %s (%s)" % (segmenter.name, segmenter.step,
                                                                            settings["split"],
                                                                            evaluation.headline(report)))
    pictures.reliability_diagram(os.path.join(outdir, "reliability_diagram.png"), report["reliability"],
                                 title="%s step %s, %s: ECE %s" % (segmenter.name, segmenter.step, settings["split"],
                                                                  "n/a" if report["ECE"] is None
                                                                  else "%.1f %%" % (100 * report["ECE"])))
    return results


def prediction_writer(segmenter, formats, outdir):
    """The PredictionWriter for --save_masks (None when not asked for), in the segmenter's classes and palette."""
    if not formats:
        return None
    return predictions.PredictionWriter(outdir, formats, segmenter.class_names, segmenter.palette,
                                        segmenter.ignore_label)


def read_images(paths):
    """([(path, RGB array)], [(path, why)]): the images that read, and the ones that do not."""
    good, bad = [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                good.append((path, np.asarray(image.convert("RGB"))))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            bad.append((path, str(error).replace(repr(path), "").strip() or type(error).__name__))
    return good, bad


def segment_image_files(segmenter, paths, outdir, alpha, writer=None):
    """Overlay and panel PNGs (and the writer's raw predictions) for images without labels; unreadable files are
    skipped and named.  Returns (images per second, [(skipped path, why)])."""
    os.makedirs(outdir, exist_ok=True)
    seconds, skipped = 0.0, []
    for start in range(0, len(paths), segmenter.batch_size):
        readable, bad = read_images(paths[start:start + segmenter.batch_size])
        for path, why in bad:
            print("  skipped %s: %s" % (path, why))
        skipped += bad
        if not readable:
            continue
        chunk, images = [path for path, _ in readable], [image for _, image in readable]
        tic = time.time()
        keep = writer is not None and writer.wants_probabilities
        outputs = segmenter.segment(images, probabilities=True) if keep else (segmenter.segment(images),)
        seconds += time.time() - tic
        for path, image, prediction, *probabilities in zip(chunk, images, *outputs):
            if writer is not None:
                writer.write(stem(path), prediction, *probabilities, source=path)
            base = os.path.join(outdir, stem(path))
            pictures.overlay_picture(image, prediction, segmenter.palette, alpha,
                                            segmenter.ignore_label).save(base + "_overlay.png")
            pictures.prediction_panel(image, prediction, segmenter.class_names, segmenter.palette,
                                             ignore_label=segmenter.ignore_label,
                                             title=os.path.basename(path)).save(base + "_panel.png")
            print("  %s -> %s_overlay.png" % (path, base))
    return (len(paths) - len(skipped)) / seconds if seconds > 0 else float("nan"), skipped


# ------------------------------------------------------------------------ commands
def export_command(args, steps):
    """--export DIR: the checkpoint as a SavedModel (batch norm folded) that plain TensorFlow runs."""
    if len(steps) > 1:
        raise UsageError("--export takes one checkpoint: give --afteriter a single step")
    try:
        info = export.export_saved_model(args.traindir, args.export, step=steps[0], pixels=args.pixels)
    except (FileExistsError, ValueError) as error:
        raise UsageError(str(error)) from None
    print("exported %s (%s) to %s: %d -> %d graph nodes, %d batch norms folded into convolutions"
          % (info["net"], info["checkpoint"], info["export_dir"], info["nodes_before"], info["nodes_after"],
             info["batch_norms_before"] - info["batch_norms_after"]))
    print("inputs: images float32 [N, H, W, 3] RGB 0-255; outputs: classes [N, H, W], probabilities [N, H, W, C]")
    return 0


def deploy_command(args, steps):
    """--export_tflite PRECISION DIR / --export_onnx DIR: the folded net as a deployment file, then stop."""
    if len(steps) > 1:
        raise UsageError("an export takes one checkpoint: give --afteriter a single step")
    settings = deploy.ExportSettings(**settings_from_args(args, deploy.ExportSettings))
    try:
        if args.export_tflite:
            precision, folder = args.export_tflite
            info = deploy.export_tflite(args.traindir, folder, precision, settings, step=steps[0], pixels=args.pixels)
        else:
            folder = args.export_onnx
            info = deploy.export_onnx(args.traindir, folder, settings, step=steps[0], pixels=args.pixels)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None
    print("exported %s (%s) as %s %s to %s: %.1f MB, input images %s RGB 0-255, output %s %s%s"
          % (info["net"], info["checkpoint"], info["format"], info["precision"], os.path.join(folder, info["model"]),
             info["file_bytes"] / 1e6, "x".join(map(str, info["input"]["shape"])), info["output"]["kind"],
             "x".join(map(str, info["output"]["shape"])),
             calibration_note(info.get("calibration"))))
    return 0


def calibration_note(calibration):
    """'; calibrated on 24 training images (all the split has; the default takes up to 100), seed 0'."""
    if not calibration:
        return ""
    auto = not isinstance(calibration["asked"], int)
    how = ("all the split has; the default takes up to %d" % deploy.CALIBRATION_CAP
           if auto and calibration["images"] == calibration["available"] else
           "drawn from %d; the default takes up to %d" % (calibration["available"], deploy.CALIBRATION_CAP) if auto
           else "drawn from %d, as --calibration_images asked" % calibration["available"])
    return "; calibrated on %d training images (%s), seed %d" % (calibration["images"], how, calibration["seed"])


def quantized_model(args, step, newest):
    """--quantized: <traindir>/export_tflite_int8_<step>/model.tflite, exported now or reused when export.json
    records the same checkpoint and settings."""
    folder = os.path.join(args.traindir, "export_tflite_int8_%s" % newest)
    settings = deploy.ExportSettings(**settings_from_args(args, deploy.ExportSettings))
    record = runtimes.read_record(os.path.join(folder, deploy.MODEL_FILES["tflite"]))
    wanted = runfolder.checkpoint_path(args.traindir, step)
    if record:
        if record.get("settings") != dataclasses.asdict(settings) or record.get("checkpoint") != wanted \
                or record.get("precision") != "int8":
            raise UsageError("%s holds an int8 export with other settings or another checkpoint: remove it, or "
                             "score it with --model %s" % (folder, os.path.join(folder, deploy.MODEL_FILES["tflite"])))
        print("reusing the int8 export in %s" % folder)
    else:
        args.export_tflite = ("int8", folder)
        deploy_command(args, [step])
    return os.path.join(folder, deploy.MODEL_FILES["tflite"])




def segment_command(args, segmenter, outdir, identity=None):
    """--imagepath / --moviepath: segment pictures or a movie of your fancy (no labels, no scores); with
    --save_masks their raw predictions too.  Writes segmented.json (`settings`: identity) beside them."""
    code = 0
    formats = predictions.parse_formats(args.save_masks)
    writer = prediction_writer(segmenter, formats, outdir)
    record = {"run": os.path.abspath(segmenter.traindir) if segmenter.traindir else None, "net": segmenter.name,
              "step": segmenter.step, "checkpoint": segmenter.checkpoint, "runtime": segmenter.runtime, "precision": segmenter.precision,
              "model": os.path.abspath(segmenter.model_path) if getattr(segmenter, "model_path", None) else None,
              "settings": identity}
    if args.imagepath:
        paths = find_images(args.imagepath)
        speed, skipped = segment_image_files(segmenter, paths, outdir, args.alpha, writer)
        print("segmented %d image(s) into %s: %.1f images/s" % (len(paths) - len(skipped), outdir, speed))
        record.update(images=[p for p in paths if p not in dict(skipped)], skipped=[p for p, _ in skipped])
        if skipped:
            print("error: %d of %d image(s) could not be read and were skipped: %s"
                  % (len(skipped), len(paths), ", ".join(path for path, _ in skipped)), file=sys.stderr)
            code = 1
    if args.moviepath:
        out_movie = os.path.join(outdir, stem(args.moviepath) + "_segmented.mp4")
        movie_stem = stem(args.moviepath)

        def save_frame(number, prediction, probabilities=None):
            writer.write("%s_%06d" % (movie_stem, number), prediction, probabilities,
                         source="%s frame %d" % (args.moviepath, number))

        try:
            stats = segment_movie(segmenter, args.moviepath, out_movie, alpha=args.alpha, legend=args.legend,
                                  on_frame=save_frame if writer is not None else None,
                                  probabilities=writer is not None and writer.wants_probabilities)
        except (IOError, ValueError) as error:
            raise UsageError("--moviepath %s: %s" % (args.moviepath, error)) from None
        record["movie"] = stats
        print("segmented movie: %d frames -> %s (H.264), %.2f frames/s measured (%.1f s)%s"
              % (stats["frames"], out_movie, stats["frames_per_second"], stats["seconds"],
                 ", a %d-pixel legend under the frames" % stats["legend_height"] if stats["legend_height"] else ""))
        if stats["written_padded_size"] != stats["written_size"]:
            print("note: the %dx%d movie was written as %dx%d, padded by one edge pixel (H.264 yuv420p needs even "
                  "sizes)" % (stats["written_size"] + stats["written_padded_size"]))
        if stats["truncated"]:
            print("error: --moviepath %s ended after %d of the %d frames its container states (a truncated file?); "
                  "the %d frames that decoded are segmented" % (args.moviepath, stats["frames"], stats["stated_frames"],
                                                               stats["frames"]), file=sys.stderr)
            code = 1
    if writer is not None:
        writer.save_index()
        record["predictions"] = writer.record()
        print("saved %s" % writer.describe())
    os.makedirs(outdir, exist_ok=True)
    evaluation.write_json(os.path.join(outdir, SEGMENTED_RECORD), record)
    return code


def score_command(args, segmenter, settings, outdir, identity=None):
    """The default: score one checkpoint on a split, with error bars and pictures."""
    results = evaluate_checkpoint(segmenter, settings, outdir, (args.first2viz, args.last2viz), args.bootstrap,
                                  identity)
    _print_results(results)
    if results["predictions"]:
        print("saved %d prediction(s): %s in %s" % (results["predictions"]["images"],
                                                    ", ".join(results["predictions"]["folders"].values()), outdir))
    print("results: %s" % outdir)
    return 0


def score_checkpoints_command(args, segmenter, settings, steps, outdir, identity=None):
    """--afteriter X,Y,... / last:K: score each checkpoint, then the spread of the mIoU across them."""
    per_step = {}
    for step in steps:
        if segmenter.step != step:
            segmenter.restore(step)
        viz_range = (args.first2viz, args.last2viz) if step == steps[-1] else (0, -1)
        results = evaluate_checkpoint(segmenter, settings, os.path.join(outdir, "step_%d" % step), viz_range,
                                      args.bootstrap)
        print("step %d: %s" % (step, evaluation.headline(results)))
        per_step[step] = results
    _print_results(per_step[steps[-1]])
    spread = evaluation.checkpoint_spread({s: r["mIoU"] for s, r in per_step.items()})
    spread["mIoU_ci"] = {str(s): r["mIoU_ci"] for s, r in per_step.items()}
    summary = {"run": os.path.abspath(args.traindir), "net": segmenter.name, "split": settings["split"],
               "steps": steps, "checkpoint_spread": spread, "settings": identity,
               "per_step": {str(s): {k: r[k] for k in ("mIoU", "mIoU_ci", "fwIoU", "fwIoU_ci", "mean_F1", "mean_F1_ci",
                                                       "ECE", "ECE_ci", "pixel_accuracy", "mean_class_accuracy",
                                                       "per_class_iou", "checkpoint")}
                            for s, r in per_step.items()},
               "provenance": per_step[steps[-1]]["provenance"], "sequences": per_step[steps[-1]].get("sequences")}
    evaluation.write_json(os.path.join(outdir, RESULTS_RECORD), summary)
    print(evaluation.format_spread(spread))
    print("results: %s" % outdir)
    return 0


# ------------------------------------------------------------------------ main
def run(args):
    """Check the command line against the run folder, then hand over to one command."""
    if not os.path.isdir(args.traindir):
        raise UsageError("--traindir %s does not exist" % args.traindir)
    try:
        config = RunConfig.load(args.traindir)
        steps = select_steps(args.afteriter, runfolder.addressable_steps(args.traindir))
        newest = runfolder.checkpoint_step(runfolder.checkpoint_path(args.traindir, steps[-1])) or "latest"
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None
    if sum(bool(x) for x in (args.export, args.export_tflite, args.export_onnx, args.model, args.quantized)) > 1:
        raise UsageError("--export, --export_tflite, --export_onnx, --model and --quantized: give one at a time")
    if args.export:
        return export_command(args, steps)
    if args.export_tflite or args.export_onnx:
        return deploy_command(args, steps)
    if (args.model or args.quantized) and len(steps) > 1:
        raise UsageError("--model / --quantized score one model: give --afteriter a single step")
    if args.imagepath:
        find_images(args.imagepath)  # nothing to segment: say so before loading the net
    if args.moviepath and not os.path.isfile(args.moviepath):
        raise UsageError("--moviepath %s: no such file" % args.moviepath)
    if args.moviepath:
        try:
            check_movie(args.moviepath)  # not a movie, or not one that can be segmented: say so before the net loads
        except (IOError, ValueError) as error:
            raise UsageError("--moviepath %s: %s" % (args.moviepath, error)) from None
    fancy = args.imagepath or args.moviepath
    try:
        split = canonical_split(args.split)
        scales = parse_scales(args.scales)
        clusters.parse_mode(args.bootstrap_by)
        save_masks = predictions.parse_formats(args.save_masks)
        predictions.check_classes(save_masks, config.model.num_classes)
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        tile, overlap = parse_tile(args.tile), check_overlap(args.tile_overlap)
    except ValueError as error:
        raise UsageError("--tile %s --tile_overlap %s: %s" % (args.tile, args.tile_overlap, error)) from None
    settings = {"split": split, "dataset_family": config.data.dataset_family, "num_images": args.num_images,
                "datapath": resolve_datapath(args.datapath or config.data.datapath), "alpha": args.alpha,
                "bootstrap_by": args.bootstrap_by, "save_masks": save_masks}
    if not fancy:
        try:
            dataset_files(settings["datapath"], settings["dataset_family"], split)
        except FileNotFoundError as error:
            raise UsageError(str(error)) from None
    settings["training_sequences"] = config.data.training_sequences or (None if fancy else trained_sequences(
        settings["datapath"], settings["dataset_family"]))
    try:
        arithmetic = precision.resolve(args.mixed_precision)  # asks TensorFlow about the machine: the last check
    except ValueError as error:
        raise UsageError(str(error)) from None
    model = quantized_model(args, steps[0], newest) if args.quantized else args.model
    try:
        if model:
            if tile:
                raise UsageError("--tile works with checkpoints; an exported model (--model, --quantized) has a "
                                 "static input shape: segment without --tile")
            segmenter = runtimes.ExportedSegmenter(model, args.traindir, pixels=args.pixels,
                                                   batch_size=args.batch_size, scales=scales, flip=args.flip,
                                                   threads=args.threads)
            newest = "%s_%s" % (segmenter.step or newest, runtimes.model_tag(segmenter))
        else:
            segmenter = Segmenter(args.traindir, step=steps[-1] if fancy else steps[0], pixels=args.pixels,
                                  batch_size=args.batch_size, scales=scales, flip=args.flip, threads=args.threads,
                                  xla=args.xla, mixed_precision=arithmetic.mode,
                                  fold_batch_norms=args.fold_batch_norms, tile=tile, tile_overlap=overlap)
    except (checkpoint_check.DamagedCheckpoint, FileNotFoundError) as error:
        raise UsageError("%s; %s" % (error, "saved steps: %s" % (", ".join(
            map(str, runfolder.addressable_steps(args.traindir))) or "none"))) from None
    except (runtimes.ModelFileError, runtimes.ShapeMismatch) as error:
        raise UsageError(str(error)) from None
    print("loaded %s" % segmenter.describe())
    identity = result_identity(args, segmenter, settings, steps)
    base = args.outdir or os.path.join(args.traindir, result_folder_name(args, segmenter, config, settings, steps,
                                                                         newest))
    outdir, note = result_folders.choose_folder(base, identity, SEGMENTED_RECORD if fancy else RESULTS_RECORD,
                                                overwrite=args.overwrite)
    if note:
        print("note: %s" % note)
    try:
        if fancy:
            return segment_command(args, segmenter, outdir, identity)
        if len(steps) == 1 or model:
            return score_command(args, segmenter, settings, outdir, identity)
    except runtimes.ShapeMismatch as error:
        raise UsageError(str(error)) from None
    return score_checkpoints_command(args, segmenter, settings, steps, outdir, identity)


def _several_checkpoints(args, segmenter, steps):
    return len(steps) > 1 and not getattr(segmenter, "model_path", None) and not (args.imagepath or args.moviepath)


def result_folder_name(args, segmenter, config, settings, steps, newest):
    """test_<split>_<step or steps_a-b or step_runtime_precision>[_<arithmetic>][_px..][_scales..][_flip][_tile..],
    or segmented_... for --imagepath / --moviepath (utils/inference/result_folders.py)."""
    prefix = "segmented" if args.imagepath or args.moviepath else "test_%s" % settings["split"]
    what = "steps_%s" % "-".join(map(str, steps)) if _several_checkpoints(args, segmenter, steps) else str(newest)
    if not getattr(segmenter, "model_path", None) and segmenter.precision != "fp32":
        what += "_%s" % segmenter.precision  # an exported model's tag names its precision already
    pixels = args.pixels if args.pixels is not None and args.pixels != config.data.pixels else None
    return result_folders.folder_name(prefix, what, segmenter.scales, segmenter.flip, segmenter.tile,
                                      segmenter.tile_overlap, pixels)


def result_identity(args, segmenter, settings, steps):
    """The settings that identify this command's results (results.json / segmented.json `settings`): a result
    folder holding other ones is never overwritten (utils/inference/result_folders.py)."""
    model = getattr(segmenter, "model_path", None)
    several = _several_checkpoints(args, segmenter, steps)
    checkpoint = None if several or not segmenter.checkpoint else os.path.relpath(
        os.path.abspath(segmenter.checkpoint), os.path.abspath(args.traindir))
    identity = {"checkpoint": checkpoint, "steps": list(steps) if several else None,
                "model": os.path.abspath(model) if model else None, "precision": segmenter.precision,
                "pixels": segmenter.pixels, "scales": list(segmenter.scales), "flip": segmenter.flip,
                "tile": list(segmenter.tile) if segmenter.tile else None,
                "tile_overlap": segmenter.tile_overlap if segmenter.tile else None,
                "fold_batch_norms": None if model else bool(args.fold_batch_norms)}
    if args.imagepath or args.moviepath:
        identity.update(imagepath=os.path.abspath(args.imagepath) if args.imagepath else None,
                        moviepath=os.path.abspath(args.moviepath) if args.moviepath else None)
    else:
        identity.update(split=settings["split"], dataset_family=settings["dataset_family"],
                        datapath=os.path.abspath(settings["datapath"]), num_images=args.num_images,
                        bootstrap=args.bootstrap, bootstrap_by=args.bootstrap_by)
    return identity


def _print_results(results):
    print("%s step %s on %s %s (%d images, pixels %s, scales %s%s%s)"
          % (results["net"], results["step"], results["dataset_family"], results["split"], results["num_images"],
             results["pixels"] or "native", ",".join("%g" % s for s in results["scales"]),
             ", flip" if results["flip"] else "",
             ", tiles %s" % describe_tile(results["tile"], results["tile_overlap"]) if results.get("tile") else ""))
    print("runtime: %s, precision %s%s" % (results["runtime"], results["precision"],
                                          ", model %s" % results["model"] if results.get("model") else ""))
    print(evaluation.format_report(results))
    if results.get("sequences"):
        print("sequences: %s" % sequences.describe(results["sequences"]))
    print("speed: %.1f images/s (segmentation at original resolution)" % results["images_per_second"])


def main(argv=None):
    apply_gpu_flag_early(argv)  # before the first session: CUDA reads CUDA_VISIBLE_DEVICES once
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UsageError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

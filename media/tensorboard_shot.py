"""The README's TensorBoard picture: `bash tboards/createlinks && python media/tensorboard_shot.py`

    media/tensorboard_scalars.png    TensorBoard's scalars page of every run in --logdir, tags filtered by --tags
    media/tensorboard_scalars.json   which runs (and their settings), TensorBoard and Chromium made it

The installed `tensorboard` serves --logdir (tools.tensorboard_server); headless Chromium opens the scalars
page (tools.headless_chromium) and, once every run's name and every chart's lines are drawn, the window is
saved as a palette PNG, small for the repository.  Run it again after training runs worth showing.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import tempfile
import urllib.parse

from PIL import Image

from tools.headless_chromium import Page
from tools.processes import wait_until
from tools.tensorboard_server import TENSORBOARD, TensorBoard
from utils.training.config import RunConfig

HERE = os.path.dirname(os.path.abspath(__file__))
# TensorBoard's scalars page, deep-linked: tags filtered, no smoothing; its y axes span every point once
# the page's "ignore outliers" switch, kept in the browser's local storage, is off.
SCALARS_PAGE = "/#scalars&tagFilter=%s&_smoothingWeight=0"
KEEP_OUTLIERS_JS = "localStorage.setItem('_ignoreYOutliers', 'false')"
LINES_PER_CHART_AND_RUN = 2  # the scalars page draws each series twice: the raw line and the smoothed one


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="tboards", help="runs to show, as TensorBoard names it on the page")
    parser.add_argument("--tags", default="loss|val_mIoU", help="regular expression of the scalar tags to show")
    parser.add_argument("--size", default="1000x600", help="window width x height")
    parser.add_argument("--colors", type=int, default=64, help="palette size of the PNG")
    parser.add_argument("--outdir", default=HERE, help="where the picture and its provenance go")
    return parser


def run_names(logdir):
    return sorted(name for name in os.listdir(logdir) if glob.glob(os.path.join(logdir, name, "events.out.tfevents.*")))


def describe(folder):
    config = RunConfig.load(folder)
    return {"net": config.net_name, "steps": config.train.total_steps, "batch_size": config.train.batch_size,
            "learnrate": config.train.learnrate, "pixels": config.data.pixels, "seed": config.train.seed,
            "dataset": config.data.dataset_family, "pretrained": config.train.pretrained}


def version(command):
    return subprocess.run(command, capture_output=True, text=True).stdout.strip().splitlines()[-1]


def main(argv=None):
    args = build_parser().parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    runs = run_names(args.logdir)
    if not runs:
        raise SystemExit("no runs with TensorBoard events in %s: run `bash tboards/createlinks` first" % args.logdir)
    pattern = re.compile(args.tags)
    with TensorBoard(args.logdir) as board:
        tags = board.poll_json("/data/plugin/scalars/tags", lambda found: set(runs) <= set(found) and all(
            any(pattern.search(tag) for tag in found[run]) for run in runs), "the scalar tags of %s" % runs)
        charts = {tag for run in runs for tag in tags[run] if pattern.search(tag)}
        lines = LINES_PER_CHART_AND_RUN * len(charts) * len(runs)
        with Page((width, height)) as page, tempfile.TemporaryDirectory() as scratch:
            page.open(board.url + "/data/runs")  # TensorBoard's origin, for its local storage
            page.evaluate(KEEP_OUTLIERS_JS)
            page.open(board.url + SCALARS_PAGE % urllib.parse.quote(args.tags))
            page.wait_for_text(runs + sorted(charts))
            path = os.path.join(scratch, "shot.png")

            def drawn():
                return page.count("path.line") >= lines

            # every line drawn before the screenshot and still there after it (a data reload redraws them)
            wait_until(lambda: drawn() and page.screenshot(path) and drawn(), 60,
                       "the lines of %d charts x %d runs" % (len(charts), len(runs)))
            shot = Image.open(path).convert("RGB")
    picture = os.path.join(args.outdir, "tensorboard_scalars.png")
    shot.quantize(colors=args.colors).save(picture, optimize=True)
    provenance = {"file": os.path.basename(picture), "size": [width, height], "tags": args.tags,
                  "runs": {run: describe(os.path.join(args.logdir, run)) for run in runs},
                  "tensorboard": version([TENSORBOARD, "--version"]),
                  "chromium": version([page.binary, "--version"]),
                  "command": "python media/tensorboard_shot.py --tags '%s' --size %s" % (args.tags, args.size)}
    with open(os.path.join(args.outdir, "tensorboard_scalars.json"), "w") as handle:
        json.dump(provenance, handle, indent=2)
    print("%s (%d kB): %s" % (picture, os.path.getsize(picture) // 1024, ", ".join(runs)))


if __name__ == "__main__":
    main()

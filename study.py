"""Run a grid of experiments and tabulate it with honest error bars: `python study.py STUDY.json`

A study is a base recipe (any train.py flags), axes (any train.py flag, e.g.
encoder, decoder, seed, loss, class_weights, pixels) and a budget.  Each cell
of the grid is an ordinary run folder made by train.py and scored by
test.py, under <studies_root>/<name>/cells/<cell>/; the study writes
results/table.md, table.csv, cells.json and pictures, and prints the table.
Run it again to continue: finished cells are skipped, a cell cut mid-run
resumes (train.py --resume).  See utils/study/grid.py for the file format.
A cell is its settings: one whose recorded train or test settings differ from
the study's (an edited study file, another --set) is stale; the study lists
the keys that changed and exits 2 before anything runs, unless --rerun_stale
(retrain those cells, re-score those whose test settings alone changed).

    python study.py studies/camvid_encoders_decoders.json --dry_run   # the cells, their params and GMACs
    python study.py studies/camvid_encoders_decoders.json             # run what is missing, write the table
    python study.py studies/camvid_encoders_decoders.json --parallel 2 --threads 1
    python study.py studies/camvid_losses.json --set datapath=/data --set budget.max_steps=600
    python study.py studies/camvid_encoders_decoders.json --executor slurm --slurm_partition gpu --gpus_per_cell 1
"""
import argparse
import json
import os
import signal
import sys

import train
from utils.flags import add_setting_flags, settings_from_args
from utils.study import cluster, grid, plots, runner, table

HERE = os.path.dirname(os.path.abspath(__file__))


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="the study file (JSON)")
    parser.add_argument("--studies_root", default=os.path.join(HERE, "tmp", "studies"),
                        help="where study folders are made (default: tmp/studies)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="change a value of the study file for this run: a base key (datapath=/data) or a "
                             "dotted one (budget.max_steps=600, test.bootstrap=2000, axes.seed=[1,2]); JSON "
                             "values, else strings; recorded in the study folder's study.json (repeatable)")
    parser.add_argument("--rerun_stale", action="store_true",
                        help="retrain the cells whose recorded train settings differ from the study's and re-score "
                             "those whose test settings alone differ (without it the study stops, exit 2)")
    parser.add_argument("--dry_run", action="store_true", help="list the cells with their settings, params, GMACs")
    parser.add_argument("--parallel", type=int, default=1, help="cells trained at once (default: 1)")
    parser.add_argument("--threads", type=int, default=0, help="TF threads per cell (default: TF's choice)")
    parser.add_argument("--table_only", action="store_true", help="only (re)write the table of the scored cells")
    parser.add_argument("--tboards", default=os.path.join(HERE, "tboards"),
                        help="folder that gets a TensorBoard link per cell (default: tboards/)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log")
    add_setting_flags(parser, cluster.ExecutorSettings)
    return parser


def link_tensorboard(study, root, tboards, log=print):
    """<tboards>/study_<name>__<cell> -> each cell's run folder, for `tensorboard --logdir tboards`."""
    linked = 0
    os.makedirs(tboards, exist_ok=True)
    for cell in study.cells:
        run = runner.run_folder(root, cell)
        if run:
            link = os.path.join(tboards, "study_%s__%s" % (study.name, cell.id))
            if os.path.islink(link):
                os.remove(link)
            os.symlink(run, link)
            linked += 1
    log("tensorboard: %d cell(s) linked into %s (tensorboard --logdir %s)" % (linked, tboards, tboards))


def _stale_verdict(stale, rerun, stream):
    """List the stale cells with what changed; 2 (stop) unless they are to be run again."""
    if not stale:
        return 0
    print("\n".join(runner.stale_lines(stale)), file=stream)
    if rerun:
        print("%d stale cell(s): --rerun_stale retrains them (re-scores where only test settings changed)"
              % len(stale), file=stream)
        return 0
    print("error: %d cell(s) of this study were made with other settings than the study's now (above); nothing "
          "ran.  Give --rerun_stale to run them again (retrain, or re-score where only test settings changed; what "
          "they made is kept in cells/<cell>/stale/), or another study name to keep both" % len(stale), file=stream)
    return 2


def _interrupt(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        study = grid.load(args.study, train.build_parser(), args.overrides)
        runner.check_cells(study, train.build_parser())
        root = os.path.join(args.studies_root, study.name)
        os.makedirs(root, exist_ok=True)
        record_path = os.path.join(root, "study.json")
        recorded = json.load(open(record_path)) if os.path.isfile(record_path) else {}
        steps = (runner.budget_steps(study) if "max_steps" in study.budget
                 else recorded.get("budget_steps") or runner.budget_steps(study, runner.probe_step_seconds))
        stale = runner.stale_cells(study, root, steps)
        if args.dry_run:
            print("study %s: %d cells, %d steps each, folder %s" % (study.name, len(study.cells), steps, root))
            print("\n".join(runner.dry_run_lines(study, root, steps)))
            return _stale_verdict(stale, args.rerun_stale, sys.stdout)
        if stale and (not args.rerun_stale or args.table_only):
            return _stale_verdict(stale, False, sys.stderr)
        with open(record_path, "w") as handle:
            json.dump({"study": grid.with_overrides(grid.read(args.study), args.overrides, train.build_parser()),
                       "file": os.path.abspath(args.study), "overrides": list(args.overrides),
                       "budget_steps": steps}, handle, indent=1)
        failures = {}
        if not args.table_only:
            print("study %s: %d cells, %d steps each, folder %s" % (study.name, len(study.cells), steps, root))
            if argv is None:  # as a command: SIGTERM stops the running cells as Ctrl-C does
                signal.signal(signal.SIGTERM, _interrupt)
            try:
                runner.set_aside_stale(study, root, steps)
                if args.executor == "local":
                    failures = runner.run_cells(study, root, steps, args.parallel, args.threads)
                else:
                    failures = cluster.run_cells(study, root, steps,
                                                 cluster.ExecutorSettings(**settings_from_args(
                                                     args, cluster.ExecutorSettings)), args.threads,
                                                 train.build_parser)
            except KeyboardInterrupt:
                print("study %s stopped; run the same command to continue" % study.name, file=sys.stderr)
                return 130
        records, text = table.write(study, root)
        pictures = plots.draw_all(records, os.path.join(root, "results"))
        link_tensorboard(study, root, args.tboards)
    except grid.StudyError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    print(text)
    for path in pictures:
        print("picture: %s" % path)
    if failures:
        print("error: %d cell(s) failed: %s" % (len(failures), "; ".join("%s: %s" % item for item in failures.items())),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

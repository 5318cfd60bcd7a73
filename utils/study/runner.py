"""Running a study's cells: each an ordinary train.py run folder scored by test.py, resumable at any point.

The study folder (`<studies_root>/<name>/`):
    study.json            the study file as run (with the --set overrides and the budget in steps)
    cells/<cell id>/      the cell's --runs_root: holds exactly one run folder, test/ (test.py's output) and
                          cell.json, the settings it was trained and scored with (utils/study/identity.py)
    cells/<cell id>/stale/<when>/  what --rerun_stale set aside: the stale run folder or scores
    latency/<config>__<hash>.json  bench.py's inference latency of a model at a size (seeds share it)
    results/              table.md, table.csv, cells.json, the pictures (utils/study/table.py, plots.py)
A cell is done when its run reached the budget, test/results.json exists and
cell.json's settings are the ones the study would run now; a cell cut
mid-training continues with `train.py --resume`; finished cells are skipped, so
a second invocation of the same study only does what is missing.  A cell whose
recorded settings differ is stale: "stale" (train settings: retrain) or
"rescore" (test settings only: score again); nothing runs until study.py is
told what to do with them (--rerun_stale).
"""
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import arch
from utils.data.dataset_info import load_dataset_info
from utils.data.spec import DataSpec
from utils.flags import settings_from_args
from utils.study import identity
from utils.study.grid import StudyError, check_classes
from utils.training import runfolder
from utils.training.config import TrainSettings

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable


def script(name):
    return os.path.join(HERE, name)


def check_cells(study, parser):
    """Parse and resolve every cell's command line as train.py would (without reading data), so a wrong value
    stops the study before anything runs, naming the cell and the flag's valid values."""
    def refuse(message):
        raise StudyError("%s: %s" % (study.path, message))

    original = parser.error
    parser.error = refuse
    try:
        for cell in study.cells:
            try:
                args = parser.parse_args(cell.argv)
                arch.model_spec_from_args(args)
                TrainSettings(**settings_from_args(args, TrainSettings))
                DataSpec(**settings_from_args(args, DataSpec))
                _check_classes(study, args)
            except (ValueError, StudyError) as error:
                raise StudyError("%s: cell %s: %s" % (study.path, cell.id, str(error).split(": ", 1)[-1]
                                                      if isinstance(error, StudyError) else error)) from None
    finally:
        parser.error = original


def _check_classes(study, args):
    """The table's `classes` against the cell's dataset, when its dataset.json is there to say."""
    if not study.classes:
        return
    try:
        names = load_dataset_info(args.datapath, args.dataset_family)["class_names"]
    except (OSError, ValueError):
        return  # no converted data yet: train.py names the command that makes it
    check_classes(study, names, args.dataset_family)


def cell_folder(root, cell):
    return os.path.join(root, "cells", cell.id)


def run_folder(root, cell):
    """The cell's run folder, or None before train.py made it."""
    folder = cell_folder(root, cell)
    runs = sorted(d for d in (os.listdir(folder) if os.path.isdir(folder) else [])
                  if os.path.isfile(os.path.join(folder, d, runfolder.RUNARGS)))
    if len(runs) > 1:
        raise StudyError("%s holds %d run folders (%s); a cell holds one: remove the extra ones"
                         % (folder, len(runs), ", ".join(runs)))
    return os.path.join(folder, runs[0]) if runs else None


def results_path(root, cell):
    return os.path.join(cell_folder(root, cell), "test", "results.json")


def trained_steps(run):
    try:
        return runfolder.checkpoint_step(runfolder.checkpoint_path(run)) or 0
    except FileNotFoundError:
        return 0


def recorded_train_settings(root, cell):
    """What the cell's run was trained with: cell.json's record, or for a run made before cells recorded it,
    the train.py command lines in its runargs (the last resume's budget and milestones win)."""
    recorded = identity.read(cell_folder(root, cell)).get("train")
    if recorded is not None:
        return recorded
    made = runfolder.read_runargs(run_folder(root, cell)).get("provenance") or {}
    try:
        settings = cell.flags.resolve(made.get("argv", [])[1:])
        resumed = made.get("resumed_with", {}).get("argv", [])[1:]
        if resumed:
            given = cell.flags.parse(resumed)
            settings.update({key: getattr(given, key) for key in ("max_steps", "save_every")
                             if "--" + key in resumed})
    except StudyError:
        return {}
    return settings


def train_changes(root, cell, steps):
    """[(key, recorded, now)] of the train settings that differ between the cell's run and the study."""
    return identity.changes(recorded_train_settings(root, cell), identity.train_settings(cell, steps),
                            cell.flags.defaults if cell.flags else {})


def test_changes(root, cell):
    """[(key, recorded, now)] of the test settings that differ between the cell's scores and the study."""
    recorded = identity.read(cell_folder(root, cell)).get("test")
    if recorded is None:
        return [("test settings", identity.NOT_RECORDED, "the study's")]
    return identity.changes(recorded, identity.test_settings(cell), identity.TEST_KEYS_GAINED)


def status(root, cell, steps):
    """'new', 'cut' (a run folder short of the budget), 'scoring' (trained, not scored), 'done', or, when the
    recorded settings differ from the study's, 'stale' (train settings) or 'rescore' (test settings only)."""
    run = run_folder(root, cell)
    if run is None:
        return "new"
    if train_changes(root, cell, steps):
        return "stale"
    if trained_steps(run) < steps:
        return "cut"
    if not os.path.isfile(results_path(root, cell)):
        return "scoring"
    return "rescore" if test_changes(root, cell) else "done"


def stale_cells(study, root, steps):
    """[(cell, status, [(key, recorded, now)])] of the stale cells, in study order."""
    found = []
    for cell in study.cells:
        state = status(root, cell, steps)
        if state == "stale":
            found.append((cell, state, train_changes(root, cell, steps)))
        elif state == "rescore":
            found.append((cell, state, test_changes(root, cell)))
    return found


def stale_lines(stale):
    """One line per stale cell: what will happen to it and the keys that changed (old -> new)."""
    return ["cell %s: %s: %s" % (cell.id, "stale, retrain" if state == "stale" else "test settings changed, re-score",
                                 identity.describe(found)) for cell, state, found in stale]


def set_aside_stale(study, root, steps, log=print):
    """Move what a stale cell made into cells/<id>/stale/<when>/ (its run folder and scores when its train
    settings changed, its scores when only the test settings did), so the study runs it again."""
    stale = stale_cells(study, root, steps)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    for cell, state, found in stale:
        folder = cell_folder(root, cell)
        aside = os.path.join(folder, "stale", stamp)
        os.makedirs(aside)
        names = ["test"] + (["cell.json", "train.log", "test.log", os.path.basename(run_folder(root, cell))]
                            if state == "stale" else ["test.log"])
        for name in names:
            if os.path.exists(os.path.join(folder, name)):
                shutil.move(os.path.join(folder, name), os.path.join(aside, name))
        log("cell %s: %s (%s); the old one is in %s" % (cell.id, "retraining" if state == "stale" else "re-scoring",
                                                         identity.describe(found), aside))
    return stale


def budget_steps(study, probe=None):
    """The budget in steps: max_steps, or minutes converted with a timed probe of the first cell's steps."""
    if "max_steps" in study.budget:
        return int(study.budget["max_steps"])
    seconds_per_step = probe(study.cells[0]) if probe else None
    if not seconds_per_step:
        raise StudyError("a minutes budget needs a probe of the step time")
    return max(1, int(study.budget["minutes"] * 60.0 / seconds_per_step))


def probe_step_seconds(cell, batch_size=None):
    """Median training-step time of a cell's configuration (bench/bench.py, on random data in memory)."""
    args = model_argv(cell) + ["--no_infer", "--runs", "5", "--warmup", "2"]
    size = cell.settings.get("pixels") or 512
    batch = cell.settings.get("batch_size") or batch_size or 16
    proc = subprocess.run([PYTHON, script("bench/bench.py")] + args + ["--train_size", str(size), "--train_batch",
                                                                         str(batch)],
                          capture_output=True, text=True, cwd=HERE)
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    if proc.returncode or not records:
        raise StudyError("timing the budget probe failed:\n%s" % proc.stderr[-2000:])
    return records[-1]["train_step_ms_median"] / 1000.0


def model_argv(cell):
    """The model's flags of a cell's command line (what bench.py and arch.py take)."""
    parser = arch.build_parser()
    model_dests = {action.dest for action in parser._actions if action.option_strings}
    argv, skip = [], False
    for index, item in enumerate(cell.argv):
        if skip:
            skip = False
            continue
        if item.startswith("--"):
            dest = next((a.dest for a in parser._actions if item in a.option_strings), None)
            if dest in model_dests and dest not in ("pixels", "json", "verbose", "size", "table", "decoders"):
                argv += [item, cell.argv[index + 1]]
            skip = True
    return argv


def train_command(root, cell, steps, checkpoints, threads):
    """train.py's command for the cell: a new run, or --resume of its cut run."""
    run = run_folder(root, cell)
    save_every = identity.save_every(steps, checkpoints)
    extra = ["--threads", str(threads)] if threads else []
    if run is not None:  # the run's settings are in its runargs; the command line adds where and how
        log_every = cell.settings.get("log_every")
        extra += ["--log_every", str(log_every)] if log_every else []
        return [PYTHON, script("train.py"), "--resume", run, "--max_steps", str(steps), "--save_every",
                str(save_every)] + extra
    return ([PYTHON, script("train.py")] + cell.argv + ["--runs_root", cell_folder(root, cell), "--max_steps",
                                                        str(steps), "--save_every", str(save_every)] + extra)


def test_command(root, cell, test):
    run = run_folder(root, cell)
    command = [PYTHON, script("test.py"), "--traindir", run, "--afteriter", "last:%d" % max(1, test["checkpoints"]),
               "--bootstrap", str(test["bootstrap"]), "--bootstrap_by", str(test["bootstrap_by"]), "--last2viz", "-1",
               "--outdir", os.path.join(cell_folder(root, cell), "test"),
               "--overwrite"]  # a re-scored cell (more steps after a resume) replaces its test/: the table reads it
    if test.get("pixels") is not None:
        command += ["--pixels", str(test["pixels"])]
    if test.get("split"):
        command += ["--split", str(test["split"])]
    return command


def latency_path(root, cell, size):
    """The latency file of the cell's model at `size`: a configuration's seeds share it, another model or
    size gets its own."""
    measured = hashlib.sha256(json.dumps([model_argv(cell), str(size)]).encode()).hexdigest()[:8]
    name = "%s__%s.json" % (re.sub(r"[^A-Za-z0-9_.=-]", "_", cell.config_key()), measured)
    return os.path.join(root, "latency", name)


def latency_command(root, cell, size):
    return [PYTHON, script("bench/bench.py")] + model_argv(cell) + ["--infer_size", str(size), "--no_train",
                                                                    "--runs", "10", "--warmup", "2",
                                                                    "--json", latency_path(root, cell, size)]


def cells_to_run(study, root, steps, log=print):
    """The cells not done yet, each done one logged as skipped.  Stale cells are refused (StudyError):
    set_aside_stale first, when the user asked to run them again.  Every executor starts here."""
    stale = stale_cells(study, root, steps)
    if stale:
        raise StudyError("%d stale cell(s), nothing run:\n%s" % (len(stale), "\n".join(stale_lines(stale))))
    todo = [cell for cell in study.cells if status(root, cell, steps) != "done"]
    for cell in study.cells:
        if cell not in todo:
            log("cell %s: done, skipped" % cell.id)
    return todo


def run_cells(study, root, steps, parallel=1, threads=0, log=print):
    """Train, score and time every cell not done yet; `parallel` cells at once.  Returns {cell id: problem}."""
    todo = cells_to_run(study, root, steps, log)
    failures, running = {}, []
    queue = list(todo)
    try:
        while queue or running:
            while queue and len(running) < max(1, parallel):
                cell = queue.pop(0)
                running.append((cell, _CellJob(study, root, cell, steps, threads, log)))
            time.sleep(0.5)
            for cell, job in list(running):
                problem = job.poll()
                if problem is not False:
                    running.remove((cell, job))
                    if problem:
                        failures[cell.id] = problem
                        log("cell %s FAILED: %s" % (cell.id, problem))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (study.py): stop the cells' processes too, none left orphaned
        for cell, job in running:
            job.stop()
            log("cell %s: stopped; it resumes when the study runs again" % cell.id)
        raise
    for cell in study.cells:
        if cell.id not in failures:
            measure_latency(study, root, cell, log)
    return failures


def run_cell(study, root, cell, steps, threads=0, log=print, started=None):
    """Train (or resume), score and time one cell to its end in this process: a job array's task.
    None when it is done, else the problem; `started(job)` is told the cell's job, to stop it on a signal."""
    job = _CellJob(study, root, cell, steps, threads, log)
    if started:
        started(job)
    try:
        problem = job.poll()
        while problem is False:
            time.sleep(0.5)
            problem = job.poll()
    except KeyboardInterrupt:
        job.stop()
        raise
    if problem is None:
        measure_latency(study, root, cell, log)
    return problem


def measure_latency(study, root, cell, log=print):
    """bench.py's inference latency of the cell's model at the study's size, unless its configuration has it."""
    size = study.test.get("latency")
    if size and not os.path.isfile(latency_path(root, cell, size)):
        os.makedirs(os.path.join(root, "latency"), exist_ok=True)
        log("latency of %s at %s" % (cell.config_key(), size))
        subprocess.run(latency_command(root, cell, size), cwd=HERE, capture_output=True, text=True)


class _CellJob:
    """One cell's train -> test sequence as subprocesses, polled without blocking."""

    def __init__(self, study, root, cell, steps, threads, log):
        self.study, self.root, self.cell, self.steps, self.threads, self.log = study, root, cell, steps, threads, log
        os.makedirs(cell_folder(root, cell), exist_ok=True)
        self.stage, self.proc = None, None
        self._next()

    def _start(self, stage, command):
        self.stage = stage
        log_path = os.path.join(cell_folder(self.root, self.cell), "%s.log" % stage)
        self.log("cell %s: %s" % (self.cell.id, "resuming" if "--resume" in command else stage))
        with open(log_path, "a") as handle:
            self.proc = subprocess.Popen(command, cwd=HERE, stdout=handle, stderr=subprocess.STDOUT,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def _next(self):
        state = status(self.root, self.cell, self.steps)
        folder = cell_folder(self.root, self.cell)
        if state in ("new", "cut"):
            if state == "new" or not identity.read(folder).get("train"):
                identity.write(folder, self.cell.id, "train", identity.train_settings(self.cell, self.steps))
            self._start("train", train_command(self.root, self.cell, self.steps, self.study.test["checkpoints"],
                                               self.threads))
        elif state == "scoring":
            identity.write(folder, self.cell.id, "test", identity.test_settings(self.cell))
            self._start("test", test_command(self.root, self.cell, self.study.test))
        else:
            self.stage = "done"

    def stop(self, grace=120):
        """SIGTERM the running stage (train.py saves a checkpoint at its next step), SIGKILL after `grace` s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def poll(self):
        """False while running; None when the cell is done; a one-line problem when it failed."""
        if self.stage == "done":
            return None
        if self.proc.poll() is None:
            return False
        if self.proc.returncode:
            log_path = os.path.join(cell_folder(self.root, self.cell), "%s.log" % self.stage)
            tail = open(log_path).read().strip().splitlines()[-1:] or ["(no output)"]
            return "%s exited with %d: %s (%s)" % (self.stage, self.proc.returncode, tail[0], log_path)
        before = self.stage
        self._next()
        if self.stage == before:  # no progress: training ended short of the budget, or scoring wrote nothing
            return "%s ended without finishing the cell (see its %s.log)" % (before, before)
        return None if self.stage == "done" else False


def dry_run_lines(study, root, steps):
    """One line per cell: status, settings and the model's parameters and GMACs."""
    lines = []
    size = study.test.get("latency") or "360x480"
    height, width = (int(v) for v in str(size).lower().split("x"))
    for cell in study.cells:
        args = arch.build_parser().parse_args(model_argv(cell))
        spec = arch.model_spec_from_args(args, num_classes=args.num_classes or 11)
        counts = arch.summarize(spec, height, width)
        lines.append("%-8s %s  %s: %.2f M params, %.2f GMACs at %dx%d; %d steps; train.py %s"
                     % (status(root, cell, steps), cell.id, spec.run_name, counts["params"] / 1e6, counts["gmacs"],
                        height, width, steps, " ".join(cell.argv)))
    return lines

"""A study's cells as one Slurm job array through submitit (`study.py --executor slurm`).

Each array task is one cell run exactly as `--executor local` runs it (runner.run_cell: train.py, or
--resume of a cut run, then test.py and bench.py as subprocesses), so the cell folders, their logs, stale
and cut cells, resuming and the table are the same whichever executor ran them.  The task reads the study
from <root>/study.json (what study.py recorded at submission) and refuses to run when that no longer gives
the cell it was submitted for.  What must be on storage that every node sees, at the same path: the
project, its Python environment (the task runs the submitter's sys.executable), the data and the study
folder.  submitit's files (the sbatch script, each task's stdout/stderr, pickles) are in <root>/slurm/.

`submitit_local` runs the same tasks with submitit's local executor, as processes on this machine: the
cluster path checked without a cluster.
"""
import dataclasses
import json
import os
import subprocess
import time
import typing

import submitit

from utils.flags import setting
from utils.study import grid, identity, runner
from utils.study.errors import StudyError

EXECUTORS = ("local", "slurm", "submitit_local")
GROUP = "where the cells run"
ARRAY_RECORD = "array.json"  # <root>/slurm/array.json: the last submitted array, its job id and cells


@dataclasses.dataclass
class ExecutorSettings:
    executor: str = setting("local", "local: processes on this machine, --parallel at once; slurm: one Slurm job "
                                     "array through submitit (the project, its venv, the data and the study folder "
                                     "on storage every node sees); submitit_local: the slurm path run by submitit "
                                     "on this machine", choices=EXECUTORS, group=GROUP)
    slurm_partition: typing.Optional[str] = setting(None, "Slurm partition of the cells' jobs (default: the "
                                                          "cluster's default partition)", group=GROUP)
    gpus_per_cell: int = setting(0, "GPUs each cell's job asks for", group=GROUP)
    cpus_per_cell: int = setting(0, "CPUs each cell's job asks for (0: --threads, or 1 without it)", group=GROUP)
    max_parallel: int = setting(0, "tasks of the array running at once (0: as many as the cluster gives)",
                                group=GROUP)
    time_limit: int = setting(60, "minutes a cell's job may run; one cut by the limit is stopped with a "
                                  "checkpoint and requeued (up to 3 times), and resumes", group=GROUP)


def cell_hash(cell, steps):
    """What the task must find in study.json to run: the cell's train and test settings."""
    return identity.digest({"train": identity.train_settings(cell, steps), "test": identity.test_settings(cell)})


def recorded_study(root, parser):
    """The study as study.py recorded it in <root>/study.json (the file with its --set overrides)."""
    with open(os.path.join(root, "study.json")) as handle:
        recorded = json.load(handle)
    return grid.build(recorded["study"], recorded["file"], parser)


class CellTask(submitit.helpers.Checkpointable):
    """One array task: a cell trained, scored and timed on its node.  At the time limit (submitit's USR2
    shortly before it) the cell's running stage is stopped with SIGTERM (train.py saves a checkpoint) and
    the task requeued: it resumes the cut run."""

    def __init__(self):
        self.job = None

    def _started(self, job):
        self.job = job

    def __call__(self, root, cell_id, steps, threads, expected, parser_factory):
        study = recorded_study(root, parser_factory())
        cell = next((c for c in study.cells if c.id == cell_id), None)
        if cell is None or cell_hash(cell, steps) != expected:
            raise StudyError("%s/study.json no longer gives cell %s as it was submitted (the study ran again "
                             "with other settings?): this task runs nothing" % (root, cell_id))
        problem = runner.run_cell(study, root, cell, steps, threads, log=lambda text: print(text, flush=True),
                                  started=self._started)
        if problem:
            raise RuntimeError("cell %s: %s" % (cell_id, problem))
        return runner.status(root, cell, steps)

    def checkpoint(self, *args):
        if self.job is not None:
            self.job.stop(grace=60)
        return submitit.helpers.DelayedSubmission(CellTask(), *args)


def make_executor(root, settings, study_name, threads):
    """submitit's executor for the study: Slurm, or its local one for submitit_local."""
    cluster = "slurm" if settings.executor == "slurm" else "local"
    executor = submitit.AutoExecutor(folder=os.path.join(root, "slurm", "%j"), cluster=cluster)
    parameters = {"name": "study_%s" % study_name, "timeout_min": settings.time_limit,
                  "cpus_per_task": settings.cpus_per_cell or threads or 1, "gpus_per_node": settings.gpus_per_cell}
    if cluster == "slurm":
        parameters.update(slurm_partition=settings.slurm_partition or None,
                          slurm_array_parallelism=settings.max_parallel or 256)
    executor.update_parameters(**{key: value for key, value in parameters.items() if value is not None})
    return executor


def _still_queued(job_id):
    """The tasks of Slurm job `job_id` still pending or running (squeue), [] when none or no squeue."""
    try:
        listed = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%i"], capture_output=True, text=True)
    except OSError:
        return []
    return listed.stdout.split() if listed.returncode == 0 else []


def refuse_running_array(root):
    """A study runs one array at a time: a second one would resume cells the first is still training."""
    path = os.path.join(root, "slurm", ARRAY_RECORD)
    if not os.path.isfile(path):
        return
    with open(path) as handle:
        last = json.load(handle)
    if last.get("cluster") == "slurm" and _still_queued(last["job"]):
        raise StudyError("job array %s of this study is still queued or running (%s); wait for it (squeue -j %s) "
                         "or cancel it (scancel %s) before running the study again"
                         % (last["job"], ", ".join(_still_queued(last["job"])), last["job"], last["job"]))


def _finished(job, cluster):
    """submitit's answer, or, where Slurm keeps no accounting (sacct), the job gone from squeue."""
    if job.done():
        return True
    return cluster == "slurm" and not _still_queued(job.job_id) and job.state in ("UNKNOWN", "PENDING", "RUNNING")


def _problem(job):
    """The one line a failed task leaves: its exception's last line, with where its log is."""
    try:
        job.result()
    except Exception as error:  # submitit re-raises the task's error (or says it died without a result)
        lines = [line for line in str(error).strip().splitlines() if line.strip()]
        return "%s (job %s, log %s)" % (lines[-1] if lines else type(error).__name__, job.job_id, job.paths.stderr)
    return None


def run_cells(study, root, steps, settings, threads, parser_factory, log=print, poll=2.0):
    """Submit the cells not done yet as one job array and wait for it.  Returns {cell id: problem}.
    parser_factory: train.py's build_parser (the task rebuilds the study with it on its node)."""
    cluster = "slurm" if settings.executor == "slurm" else "local"
    if cluster == "slurm":
        refuse_running_array(root)
    todo = runner.cells_to_run(study, root, steps, log)
    if not todo:
        return {}
    for cell in todo:
        os.makedirs(runner.cell_folder(root, cell), exist_ok=True)
    executor = make_executor(root, settings, study.name, threads)
    count = len(todo)
    jobs = executor.map_array(CellTask(), [root] * count, [cell.id for cell in todo], [steps] * count,
                              [threads] * count, [cell_hash(cell, steps) for cell in todo], [parser_factory] * count)
    array = jobs[0].job_id.split("_")[0]
    with open(os.path.join(root, "slurm", ARRAY_RECORD), "w") as handle:
        json.dump({"job": array, "cluster": cluster, "cells": {job.job_id: cell.id for job, cell in zip(jobs, todo)},
                   "submitted": time.strftime("%Y-%m-%d %H:%M:%S")}, handle, indent=1)
    log("%d cell(s) submitted as %s job array %s (%s)" % (count, settings.executor, array,
                                                         os.path.join(root, "slurm")))
    failures, waiting = {}, list(zip(todo, jobs))
    try:
        while waiting:
            time.sleep(poll)
            for cell, job in list(waiting):
                if _finished(job, cluster):
                    waiting.remove((cell, job))
                    problem = _problem(job)
                    if problem:
                        failures[cell.id] = problem
                        log("cell %s FAILED: %s" % (cell.id, problem))
                    else:
                        log("cell %s: done (job %s)" % (cell.id, job.job_id))
    except KeyboardInterrupt:  # as locally: the running cells stop (train.py saves a checkpoint) and resume later
        for cell, job in waiting:
            job.cancel(check=False)
            log("cell %s: job %s cancelled; it resumes when the study runs again" % (cell.id, job.job_id))
        raise
    return failures

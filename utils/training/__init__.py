"""The training floor: what train.py runs.

config.py     RunConfig (model spec + TrainSettings + DataSpec) and runargs, old run folders included
step.py       the one train-step recipe (objective, optimizer step) and the single-device TrainStep
losses.py     cross-entropy over valid pixels, batch confusion
schedule.py   learning-rate schedules
optimizer.py  which variables train, weight decay, (differential) Adam, loss scaling
placement.py  where replicas live (GPUs, logical CPUs, workers) and what the count decides
replicas.py   the replicated step over tf.distribute, on the same recipe
monitor.py    runlog, progress bar, TensorBoard, the quarter-validation monitor
runfolder.py  run folders: creation, runargs, checkpoints
checkpointing.py  what a run saves where: latest/, milestones (full, shared by hard links, or weights only), best/
checkpoint_check.py  is a checkpoint whole and finite (and full enough to resume from)?
loop.py       one run, start to end: graph, loop, stop requests, errors
exit_codes.py train.py's exit codes, declared once
"""

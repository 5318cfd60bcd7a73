"""A grid of experiments, run as ordinary run folders and summarised with error bars (`python study.py`).

grid.py       the study file -> cells, checked against train.py's flags
overrides.py  study.py --set KEY=VALUE: a study file's value changed for one invocation
identity.py   a cell is its settings: what it trained and was scored with, recorded in cell.json
errors.py     StudyError and the "did you mean" of a misspelt key
runner.py     each cell trained (train.py), resumed when cut, scored (test.py), timed (bench.py); stale cells
table.py      the table: per cell, per configuration across seeds, paired comparisons, what made the cells
plots.py      mIoU vs GMACs, per-class IoU, the training curves
"""

"""A grid of experiments, run as ordinary run folders and summarised with error bars (`python study.py`).

grid.py    the study file -> cells, checked against train.py's flags
runner.py  each cell trained (train.py), resumed when cut, scored (test.py), timed (bench.py)
table.py   the table: per cell, per configuration across seeds, paired comparisons
plots.py   mIoU vs GMACs, per-class IoU, the training curves
"""

"""The data floor: a dataset's published layout -> tfrecords + dataset.json -> batches for the net.

families/      one module per dataset family (CamVid, Pascal VOC, Cityscapes, ...): its layout and classes
records.py     the record schema: how examples are written, named on disk and parsed back
convert.py     the converter (`python utils/tfrecordify.py`)
sequences.py   which recording each image comes from: --holdout_sequence, the "scored on training sequences" report
dataset_info.py  where converted records and dataset.json live; missing ones name the command that makes them
pipeline.py    the one tf.data input pipeline (training, validation, testing, benchmarks)
label_checker.py  checks converted records by value and by eye (`python utils/label_checker.py`)
"""

"""A worker for tests/test_train.py's concurrent-start test, in a module without TensorFlow: the test's
processes are spawned, not forked (a fork of a pytest worker that has run TensorFlow can deadlock in
TensorFlow's thread pools), and a spawned child imports only this."""
from utils.training import runfolder


def create(args):
    root, barrier = args
    barrier.wait()
    return runfolder.create(root, "resnet_v1_18_LinkNet")

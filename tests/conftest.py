"""Shared pytest fixtures: every test gets a fresh TF1 graph; paths to shared data."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from utils.tf1 import tf  # noqa: E402

SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
CAMVID = os.path.join(SHARED, "data", "camvid")
SLIM_VARS = os.path.join(SHARED, "reference", "slim_vars")


@pytest.fixture(autouse=True)
def fresh_graph():
    """Each test builds into its own default graph, so variable names never collide."""
    graph = tf.Graph()
    with graph.as_default():
        yield graph


def requires(path):
    return pytest.mark.skipif(not os.path.exists(path), reason="needs %s" % path)

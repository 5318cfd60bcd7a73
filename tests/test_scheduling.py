"""tests/scheduling.py: how make test spreads the suite over xdist's workers."""
import json
import types

from tests import scheduling


class _Definition:
    def __init__(self, scope):
        self.scope = scope


class _Item:
    """What order_and_group reads of a pytest item: its id, fixtures and markers."""

    def __init__(self, nodeid, fixtures=()):
        self.nodeid, self.fixturenames, self.markers = nodeid, list(fixtures), []
        self._fixtureinfo = types.SimpleNamespace(name2fixturedefs={
            name: [_Definition(scope)] for name, scope in fixtures.items()} if fixtures else {})

    def add_marker(self, marker):
        self.markers.append(marker)


def test_units_run_longest_first_and_a_module_fixture_keeps_its_tests_together():
    shared = {"trained": "module", "sample_datapath": "session"}
    items = [_Item("tests/test_a.py::quick"),
             _Item("tests/test_b.py::first", shared), _Item("tests/test_b.py::second", shared),
             _Item("tests/test_a.py::slow"), _Item("tests/test_a.py::unknown")]
    durations = {"tests/test_a.py::quick": 0.1, "tests/test_b.py::first": 30.0, "tests/test_b.py::second": 2.0,
                 "tests/test_a.py::slow": 31.0}
    scheduling.order_and_group(items, durations)
    # the group's 32 s outrank the single 31 s test; an unknown test counts UNKNOWN_SECONDS, above 0.1 s
    assert [item.nodeid for item in items] == ["tests/test_b.py::first", "tests/test_b.py::second",
                                               "tests/test_a.py::slow", "tests/test_a.py::unknown",
                                               "tests/test_a.py::quick"]
    groups = [[mark.args[0] for mark in item.markers if mark.name == "xdist_group"] for item in items]
    assert groups == [["tests/test_b.py::trained"]] * 2 + [[]] * 3  # a session fixture groups nothing


def test_recorded_durations_drop_the_group_suffix_and_tests_that_are_gone(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("")
    path = tmp_path / "tests" / "durations.json"
    path.write_text(json.dumps({"tests/test_a.py::old": 5.0, "tests/test_gone.py::x": 1.0}))
    recorder = scheduling.DurationRecorder(str(path))
    for when, seconds in (("setup", 1.5), ("call", 2.25), ("teardown", 0.25)):
        recorder.pytest_runtest_logreport(types.SimpleNamespace(nodeid="tests/test_a.py::t[x@y]@grp",
                                                                when=when, duration=seconds))
    recorder.pytest_sessionfinish(None)
    assert json.loads(path.read_text()) == {"tests/test_a.py::old": 5.0, "tests/test_a.py::t[x@y]": 4.0}

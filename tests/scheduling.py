"""How the suite is spread over pytest-xdist's workers: longest work first, shared fixtures on one worker.

`make test` runs `pytest -n 2 --dist loadgroup --no-loadscope-reorder`: xdist then hands a worker the next unit
of work (a test, or a group of tests) in collection order whenever it is almost out of work.  Two rules make
that fast on two cores:

- the tests that use one of their module's module-scoped fixtures (three training runs, an export) form one
  group, so only one worker builds that fixture; under plain `--dist load` both workers often built it;
- units are collected longest first, by the times in `tests/durations.json` (written by
  `pytest --store-durations`), so the run ends on short tests and both workers finish together.  A test the
  file does not know counts as `UNKNOWN_SECONDS`; a stale file only makes the order less good, never wrong.
"""
import json
import os

import pytest

DURATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "durations.json")
UNKNOWN_SECONDS = 1.0


def read_durations(path=DURATIONS):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


def plain_nodeid(nodeid):
    """The test's id without the '@group' suffix xdist's loadgroup adds."""
    head, at, group = nodeid.rpartition("@")
    return head if at and "]" not in group and "::" not in group else nodeid


def fixture_group(item):
    """The module fixture this test shares with others (module::fixture), or None."""
    module = item.nodeid.split("::")[0]
    for name in sorted(getattr(item, "fixturenames", ())):
        for definition in item._fixtureinfo.name2fixturedefs.get(name, ()):
            if definition.scope == "module":
                return "%s::%s" % (module, name)
    return None


def order_and_group(items, durations):
    """Mark each test sharing a module fixture with that fixture's xdist group; sort units longest first."""
    units, order = {}, []
    for index, item in enumerate(items):
        group = fixture_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
        unit = group or item.nodeid
        if unit not in units:
            units[unit] = 0.0
            order.append(unit)
        units[unit] += durations.get(item.nodeid, UNKNOWN_SECONDS)
    rank = {unit: (-units[unit], position) for position, unit in enumerate(order)}
    keyed = [(rank[fixture_group(item) or item.nodeid], index, item) for index, item in enumerate(items)]
    items[:] = [item for _, _, item in sorted(keyed, key=lambda entry: entry[:2])]


class DurationRecorder:
    """Adds up setup + call + teardown per test and merges them into tests/durations.json at the end."""

    def __init__(self, path=DURATIONS):
        self.path, self.seconds = path, {}

    def pytest_runtest_logreport(self, report):
        nodeid = plain_nodeid(report.nodeid)
        self.seconds[nodeid] = self.seconds.get(nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self, session):
        merged = read_durations(self.path)
        merged.update({nodeid: round(seconds, 2) for nodeid, seconds in self.seconds.items()})
        root = os.path.dirname(os.path.dirname(self.path))
        merged = {nodeid: seconds for nodeid, seconds in sorted(merged.items())
                  if os.path.exists(os.path.join(root, nodeid.split("::")[0]))}  # tests that still exist
        with open(self.path, "w") as handle:
            json.dump(merged, handle, indent=0, sort_keys=True)
            handle.write("\n")

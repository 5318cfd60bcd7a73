"""The architecture contract: the import graph has no cycles and respects the floors, imports sit at the top.

Floors, top to bottom (a module may import its own floor's package and any
floor below it, never one above, never an independent sibling):

    scripts     train.py, test.py, study.py, demo.py, bench/, media/, the utils/ command entry points
    study       utils/study (a grid of runs: it starts train.py, test.py and bench.py as commands)
    inference   utils/inference
    training    utils/training
    model | data   arch.py | utils/data   (independent of each other)
    decoders    decoders/
    nets        nets/
    helpers     utils/flags, utils/viz, utils/metrics, utils/graphs; tools/ (what the tests and media/ share:
                TensorBoard served and seen in headless Chromium, processes waited for)
    compat      utils/compat (TensorFlow's entry point, the CPU and its kernels, precision, software versions)

Every import statement counts, also inside functions (an import deferred to a
function is still a dependency), and an import inside a function must say why
on its line or the line above (a comment with "deferred").  The graph is read
from the source with `ast`, so the test fails on the file that breaks the rule.
"""
import ast
import os

import pytest

from tests.conftest import ROOT

FLOORS = [
    [("scripts", ("train", "test", "study", "demo", "bench", "media", "utils.tfrecordify", "utils.label_checker",
                  "utils.convert_weights"))],
    [("study", ("utils.study",))],
    [("inference", ("utils.inference",))],
    [("training", ("utils.training",))],
    [("model", ("arch",)), ("data", ("utils.data",))],
    [("decoders", ("decoders",))],
    [("nets", ("nets",))],
    [("helpers", ("utils.flags", "utils.viz", "utils.metrics", "utils.graphs", "tools"))],
    [("compat", ("utils.compat", "utils"))],
]
# utils/'s top level holds the product's shared helpers and the three command shims, nothing more: a module that
# serves one role lives in that role's package (utils/data, training, inference, study, compat), one that only the
# tests and media/ use lives in tools/.
UTILS_TOP_LEVEL_MAX = 8
SKIP_DIRS = {"tests", "tmp", "data", "tboards", "__pycache__"}


def project_modules():
    """{dotted module name: path} of every Python file of the project (tests and data left out)."""
    modules = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (folder == ROOT and d in SKIP_DIRS)]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                modules[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return modules


def _resolve(name, modules):
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def import_graph(modules):
    """{module: {imported project module: first line}}, and [(module, line, statement)] of imports in functions."""
    graph, in_functions = {}, []
    for module, path in modules.items():
        source = open(path).read()
        lines = source.splitlines()
        tree = ast.parse(source)
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        edges = graph.setdefault(module, {})
        functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        nested = {id(sub) for f in functions for sub in ast.walk(f)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if id(node) in nested:
                comment = " ".join(lines[max(0, node.lineno - 2):node.lineno])
                if "deferred" not in comment:
                    in_functions.append((module, node.lineno, ast.unparse(node)))
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base + "." + alias.name for alias in node.names] + [base]
            for target in targets:
                found = _resolve(target, modules)
                if found and found != module:
                    edges.setdefault(found, node.lineno)
                    break
    return graph, in_functions


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def floor_of(module):
    """(floor index, part name) of a module: the longest matching prefix wins."""
    best = None
    for level, parts in enumerate(FLOORS):
        for part, prefixes in parts:
            for prefix in prefixes:
                if module == prefix or module.startswith(prefix + "."):
                    if best is None or len(prefix) > best[2]:
                        best = (level, part, len(prefix))
    if best is None:
        raise AssertionError("module %s is on no floor of the architecture contract" % module)
    return best[:2]


def violations(graph):
    found = []
    for module, edges in sorted(graph.items()):
        level, part = floor_of(module)
        for target, line in sorted(edges.items()):
            target_level, target_part = floor_of(target)
            if target_level < level or (target_level == level and target_part != part):
                found.append("%s:%d (%s) imports %s (%s)" % (module, line, part, target, target_part))
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph(project_modules())


def test_no_import_cycles(graph):
    assert cycles(graph[0]) == []


def test_every_module_respects_the_floors(graph):
    assert violations(graph[0]) == []


def test_imports_inside_functions_say_why(graph):
    assert graph[1] == []


def test_the_contract_catches_a_cycle_and_an_upward_import():
    """The checks themselves: a made-up graph with a cycle and an import from a lower floor upwards."""
    bad = {"arch": {"decoders.base": 1}, "decoders.base": {"arch": 3}, "nets.registry": {"utils.training.step": 7},
           "utils.training.step": {}, "utils.data.pipeline": {"arch": 2}}
    assert cycles(bad) == [["arch", "decoders.base"]]
    found = violations(bad)
    assert "decoders.base:3 (decoders) imports arch (model)" in found
    assert "nets.registry:7 (nets) imports utils.training.step (training)" in found
    assert "utils.data.pipeline:2 (data) imports arch (model)" in found  # independent siblings


def test_utils_top_level_stays_small():
    top = sorted(name for name in os.listdir(os.path.join(ROOT, "utils"))
                 if name.endswith(".py") and name != "__init__.py")
    assert len(top) <= UTILS_TOP_LEVEL_MAX, "utils/ has %d top-level modules (at most %d): %s" % (
        len(top), UTILS_TOP_LEVEL_MAX, ", ".join(top))

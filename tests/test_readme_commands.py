"""Every command the README documents starts on this checkout, so a missing dependency of any of them fails CI.

The README's ```bash blocks and its inline `python ...`, `make ...`, `bash ...` and `tensorboard ...` spans are
read as shell (shlex); every distinct script runs with --help as `__main__`, its folder first on sys.path, in one
fresh interpreter without PYTHONPATH (the project is installed editable by `make install`; one interpreter, so
TensorFlow is imported once, not once a script) and must exit 0 without a traceback; every make target must
exist (`make -n`), and the scripts its recipe runs get the same --help check, as does every top-level script of
the checkout (study.py before the README documents it).  A command of any other program
must be one of SYSTEM_TOOLS, so a new kind of command in the README needs a decision here.
"""
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from utils.tensorboard_server import TENSORBOARD

README = os.path.join(ROOT, "README.md")
SYSTEM_TOOLS = {"cat", "tail"}  # the README reads a run folder's runargs and runlog with them
FENCE = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"(?<!`)`((?:python|make|bash|tensorboard) [^`\n]+)`(?!`)")
ENVIRONMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SEPARATORS = set(";&|()")


def command_lines(text):
    """Every simple command of the README's bash blocks and inline spans, as a list of words."""
    sources = [block.replace("\\\n", " ") for block in FENCE.findall(text)] + INLINE.findall(text)
    found = []
    for line in (line for source in sources for line in source.splitlines()):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        words = []
        for token in list(lexer) + [";"]:
            if set(token) <= SEPARATORS:
                if words:
                    found.append(words)
                words = []
            elif words or not ENVIRONMENT.match(token):  # leading VAR=value words are the environment
                words.append(token)
    return found


def classify(commands):
    """{'python': scripts, 'bash': scripts, 'make': targets, 'tensorboard': [...], 'system': [...], 'other': [...]}"""
    kinds = {kind: set() for kind in ("python", "bash", "make", "tensorboard", "system", "other")}
    for words in commands:
        program = os.path.basename(words[0])
        if re.fullmatch(r"python3?(\.\d+)?", program) and len(words) > 1 and words[1].endswith(".py"):
            kinds["python"].add(words[1])
        elif program == "bash" and len(words) > 1:
            kinds["bash"].add(words[1])
        elif program == "make":
            kinds["make"].update(word for word in words[1:] if not word.startswith("-") and "=" not in word)
        elif program == "tensorboard":
            kinds["tensorboard"].add(" ".join(words))
        elif program in SYSTEM_TOOLS:
            kinds["system"].add(" ".join(words))
        else:
            kinds["other"].add(" ".join(words))
    return kinds


def readme_commands():
    return classify(command_lines(open(README).read()))


def top_level_scripts():
    """The checkout's own commands at its root (train.py, test.py, study.py, ...): checked even before the README
    documents them, so a new script's missing dependency fails CI from the day it lands."""
    return {name for name in os.listdir(ROOT) if name.endswith(".py")
            and "__name__ == \"__main__\"" in open(os.path.join(ROOT, name)).read()}


def make_recipe(target):
    return subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)


def fresh_env():
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def run_help(command):
    """(command, CompletedProcess) of `command --help` run from the checkout's root as a user would."""
    return command, subprocess.run(command + ["--help"], cwd=ROOT, env=fresh_env(), capture_output=True,
                                   text=True, timeout=300)


# Runs in the fresh interpreter: each script as `python <script> --help` would, its output and exit code kept.
_HELP_DRIVER = """
import contextlib, io, json, os, runpy, sys, traceback
results = {}
for script in json.loads(sys.argv[1]):
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv, saved_path = [script, "--help"], list(sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    sys.path[:] = saved_path
    results[script] = [code, out.getvalue(), err.getvalue()]
sys.stdout.write(json.dumps(results))
"""


def run_python_helps(scripts):
    """[(command, CompletedProcess)] of `python <script> --help` for every script, in one fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", _HELP_DRIVER, json.dumps(sorted(scripts))], cwd=ROOT,
                          env=fresh_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout[proc.stdout.index("{"):])
    return [([sys.executable, script], subprocess.CompletedProcess([script, "--help"], *results[script]))
            for script in sorted(scripts)]


def failed(command, proc):
    if proc.returncode != 0 or "Traceback" in proc.stdout + proc.stderr:
        return "%s --help exited %d:\n%s" % (" ".join(command), proc.returncode, (proc.stdout + proc.stderr)[-3000:])
    return None


def test_the_parser_finds_the_documented_commands():
    kinds = readme_commands()
    assert {"train.py", "test.py", "arch.py", "study.py", "utils/tfrecordify.py", "utils/label_checker.py",
            "utils/convert_weights.py", "bench/bench.py", "bench/compare_peer.py"} <= kinds["python"], kinds
    assert {"demo", "test", "tensorboard"} <= kinds["make"], kinds
    assert kinds["bash"] == {"tboards/createlinks"}, kinds
    assert kinds["tensorboard"] == {"tensorboard --logdir tboards"}, kinds
    assert kinds["other"] == set(), "README commands of an unknown program: %s" % kinds["other"]
    sample = classify(command_lines("```bash\nTF_CONFIG='{\"a\": 1}' \\\n    python x.py --k 1 & # note\n"
                                    "bash s && tensorboard --logdir t; cat f\n```\nand `make demo` then `ls -l`\n"))
    assert sample["python"] == {"x.py"} and sample["bash"] == {"s"} and sample["make"] == {"demo"}
    assert sample["tensorboard"] == {"tensorboard --logdir t"} and sample["system"] == {"cat f"}
    assert sample["other"] == set()  # `ls -l` is not an inline span of a known program


@pytest.mark.parametrize("target", sorted(readme_commands()["make"]))
def test_each_make_target_exists(target):
    recipe = make_recipe(target)
    assert recipe.returncode == 0, recipe.stderr


def test_each_documented_command_answers_help():
    """Every README script, the scripts the README's make targets run, createlinks and tensorboard: --help."""
    kinds = readme_commands()
    scripts, bash_scripts = set(kinds["python"]) | top_level_scripts(), set(kinds["bash"])
    for target in kinds["make"]:
        recipe = classify(command_lines("```bash\n%s\n```" % make_recipe(target).stdout))
        scripts |= recipe["python"]
        bash_scripts |= recipe["bash"]
    assert {"demo.py", "study.py"} <= scripts  # `make demo` runs demo.py; study.py is a top-level command
    commands = [["bash", script] for script in sorted(bash_scripts)] + [[TENSORBOARD]]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # the other programs, meanwhile
        others = pool.submit(lambda: [run_help(command) for command in commands])
        results = run_python_helps(scripts) + others.result()
    failures = [message for message in (failed(*result) for result in results) if message]
    assert not failures, "\n\n".join(failures)
    usage = {" ".join(command[1:] or command): proc.stdout for command, proc in results}
    assert "--basenet" in usage["train.py"] and "--traindir" in usage["test.py"] and "--dry_run" in usage["study.py"]
    assert "RUNS_ROOT" in usage["tboards/createlinks"] and "--logdir" in usage[TENSORBOARD]

"""Every command the README and docs/ document starts on this checkout, and every link in them leads somewhere.

The documents' ```bash blocks and their inline `python ...`, `make ...`, `bash ...` and `tensorboard ...` spans
are read as shell (shlex); every distinct script runs with --help as `__main__`, its folder first on sys.path, in
one fresh interpreter without PYTHONPATH (the project is installed editable by `make install`; one interpreter, so
TensorFlow is imported once, not once a script) and must exit 0 without a traceback; every make target must
exist (`make -n`), and the scripts its recipe runs get the same --help check, as does every top-level script of
the checkout (study.py before the README documents it).  Every `--flag` a documented command passes must be one
its script's --help lists (with the command's `--dataset_family`, for the converter's per-family arguments), so
a renamed flag fails here, not in a reader's shell.  A command of any other program must be one of SYSTEM_TOOLS,
so a new kind of command in the documents needs a decision here.

Every relative link and #anchor resolves (anchors as GitHub makes them from headings), inside the repository, and
no text points outside it (`../`): the documents describe where data goes as arguments, not as this machine's
neighbouring folders.  demo.py's closing hints are documented commands too.
"""
import concurrent.futures
import functools
import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

import demo
from tests.conftest import ROOT
from tools.tensorboard_server import TENSORBOARD

README = os.path.join(ROOT, "README.md")
DOCUMENTS = [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
SYSTEM_TOOLS = {"cat", "tail", "ls"}  # the documents and demo.py read a run folder's runargs, runlog, outputs
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


def documented_text():
    return "\n".join(open(path).read() for path in DOCUMENTS)


def readme_commands():
    """classify() of every command of the README and docs/*.md."""
    return classify(command_lines(documented_text()))


def python_commands():
    """[words] of every documented `python <script>.py ...` command, words[0] the script."""
    return [words[1:] for words in command_lines(documented_text())
            if re.fullmatch(r"python3?(\.\d+)?", os.path.basename(words[0])) and len(words) > 1
            and words[1].endswith(".py")]


def family_of(words):
    """The command's --dataset_family value (a placeholder such as <family> is none)."""
    for flag, value in zip(words, words[1:]):
        if flag == "--dataset_family" and not value.startswith("<"):
            return value
    return None


# ---- Markdown: headings, anchors, links ---------------------------------------------------------------------
FENCE_LINE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
LEAVES = re.compile(r"(?<![.\w])\.\./")  # `../` climbs out (`.../`, an ellipsis in a path, does not)


def prose(text):
    """The text with fenced code blocks blanked (line numbers kept): headings and links live outside them."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if FENCE_LINE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return "\n".join(lines)


def github_anchor(heading):
    """The id GitHub gives a heading: its text (link text, code without backticks), lower case, punctuation
    but `-` and `_` dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text):
    """Every heading's anchor, repeats numbered -1, -2, ... as GitHub numbers them."""
    found, seen = set(), {}
    for line in prose(text).split("\n"):
        match = HEADING.match(line)
        if match:
            anchor = github_anchor(match.group(2))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if count == 0 else "%s-%d" % (anchor, count))
    return found


def links(text):
    """Every link and image target of the prose (not of code: a span or block shows text, it links nothing)."""
    return LINK.findall(CODE_SPAN.sub("", prose(text)))


def broken_links(path, text, root=ROOT):
    """'target: why' for each relative link of `text` (the document at `path`) that does not resolve."""
    broken = []
    for target in links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not this repository's to check
            continue
        file_part, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if os.path.commonpath([os.path.abspath(root), os.path.abspath(resolved)]) != os.path.abspath(root):
            broken.append("%s: outside the repository" % target)
        elif file_part and not os.path.exists(resolved):
            broken.append("%s: no such file" % target)
        elif anchor and resolved.endswith(".md"):
            heading_ids = anchors(open(resolved).read() if file_part else text)
            if anchor not in heading_ids:
                broken.append("%s: no heading with that anchor in %s" % (target, os.path.relpath(resolved, root)))
    return broken


def paths_outside(text):
    """Lines that climb out of the repository (`../`) other than through a link that resolves inside it."""
    without_links = LINK.sub("", text)
    return [line.strip() for line in without_links.split("\n") if LEAVES.search(line)]


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
for argv in json.loads(sys.argv[1]):
    script = argv[0]
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv, saved_path = argv + ["--help"], list(sys.path)
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
    results[" ".join(argv)] = [code, out.getvalue(), err.getvalue()]
sys.stdout.write(json.dumps(results))
"""


def run_python_helps(argvs):
    """{argv: CompletedProcess} of `python <argv> --help` for every argv (a tuple: script, then arguments before
    --help), in one fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", _HELP_DRIVER, json.dumps(sorted(argvs))], cwd=ROOT,
                          env=fresh_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout[proc.stdout.index("{"):])
    return {argv: subprocess.CompletedProcess(list(argv) + ["--help"], *results[" ".join(argv)])
            for argv in sorted(argvs)}


def checked_scripts():
    """(python scripts, bash scripts): the documented ones, those the documented make targets run, the top level."""
    kinds = readme_commands()
    scripts, bash_scripts = set(kinds["python"]) | top_level_scripts(), set(kinds["bash"])
    for target in kinds["make"]:
        recipe = classify(command_lines("```bash\n%s\n```" % make_recipe(target).stdout))
        scripts |= recipe["python"]
        bash_scripts |= recipe["bash"]
    return scripts, bash_scripts


@functools.lru_cache(maxsize=None)
def python_helps():
    """{argv: CompletedProcess}: every checked script's --help, and each documented (script, --dataset_family)
    pair's, from one interpreter shared by the tests of this module."""
    scripts, _ = checked_scripts()
    argvs = {(script,) for script in scripts}
    argvs |= {(words[0], "--dataset_family", family_of(words)) for words in python_commands()
              if family_of(words) and os.path.isfile(os.path.join(ROOT, words[0]))}
    return run_python_helps(argvs)


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


def test_each_documented_script_exists():
    """A script a document names that the checkout lacks is named here, before any --help runs."""
    scripts, bash_scripts = checked_scripts()
    missing = sorted(script for script in scripts | bash_scripts if not os.path.isfile(os.path.join(ROOT, script)))
    assert not missing, "documented scripts the checkout lacks: %s" % missing


def test_each_documented_command_answers_help():
    """Every documented script, the scripts the documented make targets run, createlinks and tensorboard: --help."""
    scripts, bash_scripts = checked_scripts()
    assert {"demo.py", "study.py"} <= scripts  # `make demo` runs demo.py; study.py is a top-level command
    commands = [["bash", script] for script in sorted(bash_scripts)] + [[TENSORBOARD]]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # the other programs, meanwhile
        others = pool.submit(lambda: [run_help(command) for command in commands])
        helps = python_helps()
        results = [([sys.executable, script], helps[(script,)]) for script in sorted(scripts)] + others.result()
    failures = [message for message in (failed(*result) for result in results) if message]
    assert not failures, "\n\n".join(failures)
    usage = {" ".join(command[1:] or command): proc.stdout for command, proc in results}
    assert "--basenet" in usage["train.py"] and "--traindir" in usage["test.py"] and "--dry_run" in usage["study.py"]
    assert "RUNS_ROOT" in usage["tboards/createlinks"] and "--logdir" in usage[TENSORBOARD]


def listed_flags(usage):
    """The --flags a --help text lists; `--x [BOOL]` (utils/flags.py) also takes --no-x."""
    flags = set(re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", usage))
    return flags | {"--no-" + flag[2:] for flag in re.findall(r"(--[A-Za-z][\w-]*) \[BOOL\]", usage)}


def unknown_flags(words, helps):
    """The --flags of one documented command (words[0] the script) that its script's --help does not list."""
    usage = helps[(words[0],)].stdout
    if family_of(words):
        usage += helps[(words[0], "--dataset_family", family_of(words))].stdout
    known = listed_flags(usage)
    return sorted({word.split("=")[0] for word in words[1:] if word.startswith("--") and len(word) > 2}
                  - known)


def test_each_documented_flag_exists():
    """`python train.py --no_such_flag` in a document fails here: every flag is one its script's parser has."""
    helps = python_helps()
    failures = ["%s: %s" % (" ".join(words), unknown)
                for words in python_commands() for unknown in [unknown_flags(words, helps)] if unknown]
    assert not failures, "documented flags the scripts do not take:\n" + "\n".join(failures)
    usage = helps[("train.py",)].stdout
    assert unknown_flags(["train.py", "--fcn16=False", "--no-fcn16", "--g", "0"], helps) == []
    assert unknown_flags(["train.py", "--no_such_flag", "--no-basenet"], helps) == ["--no-basenet", "--no_such_flag"]
    assert "--camvid_path" in helps[("utils/tfrecordify.py", "--dataset_family", "camvid")].stdout, usage[:200]


def test_every_link_and_anchor_resolves():
    failures = ["%s: %s" % (os.path.relpath(path, ROOT), problem)
                for path in DOCUMENTS for problem in broken_links(path, open(path).read())]
    assert not failures, "\n".join(failures)


def test_the_link_checker_finds_what_is_broken(tmp_path):
    """The checker itself: GitHub's anchors, and each way a link can fail."""
    assert github_anchor("Precision: `--mixed_precision auto|bf16|fp16|fp32`") == \
        "precision---mixed_precision-autobf16fp16fp32"
    assert github_anchor("Why the training rows are at 1.0-1.2, not 1.3") == "why-the-training-rows-are-at-10-12-not-13"
    assert github_anchor("A [linked](x.md) `code` heading") == "a-linked-code-heading"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Twice\n\n## Twice\n")
    doc = str(tmp_path / "README.md")
    text = ("# Top\n\n```bash\n# not a heading\n```\n[ok](docs/page.md#twice-1) [ok](#top) [ok](https://x.org/#y)\n"
            "`[code](missing.md)` [a](#not-a-heading) [b](docs/page.md#nope) [c](missing.md) [d](../outside.md)\n"
            "[e](docs/page.md#twice-2)\n")
    assert broken_links(doc, text, root=str(tmp_path)) == [
        "#not-a-heading: no heading with that anchor in README.md",
        "docs/page.md#nope: no heading with that anchor in docs/page.md", "missing.md: no such file",
        "../outside.md: outside the repository", "docs/page.md#twice-2: no heading with that anchor in docs/page.md"]


def test_no_path_leaves_the_repository():
    """Data, tools and results are arguments or this repository's files, never this machine's neighbours."""
    failures = ["%s: %s" % (os.path.relpath(path, ROOT), line)
                for path in DOCUMENTS for line in paths_outside(open(path).read())]
    assert not failures, "\n".join(failures)
    assert paths_outside("[media](../media/x.png) and gradients/.../Conv2D") == []
    assert paths_outside("--camvid_path ../shared/data/camvid") == ["--camvid_path ../shared/data/camvid"]


def test_every_docs_page_is_linked_from_the_readme():
    linked = {os.path.normpath(os.path.join(ROOT, target.partition("#")[0])) for target in links(open(README).read())}
    assert set(DOCUMENTS[1:]) <= linked, sorted(set(DOCUMENTS[1:]) - linked)


def test_the_demo_ends_with_documented_commands():
    """demo.py's last words: `make tensorboard` and `make notebook`, as the README says them, not a command of its
    own (it once printed `.venv/bin/python -m jupyter notebook ...`, which no make target runs)."""
    hints = dict(demo.next_steps("tmp/run"))
    kinds = classify(command_lines("```bash\n%s\n```" % "\n".join(hints.values())))
    assert kinds["other"] == set() and kinds["python"] == set(), kinds
    assert hints["notebook"] == "make notebook" and hints["TensorBoard"] == "make tensorboard"
    assert kinds["make"] <= readme_commands()["make"], kinds["make"]
    for target in kinds["make"]:
        assert make_recipe(target).returncode == 0, target

"""What software made a result: the project's code version (git commit, dirty or not) and the libraries'.

Stored with every run (runargs' provenance) and every score (results.json), so two runs that differ are
told apart by what made them, not only by their settings.

    code_version()  {"commit": "599883b...", "dirty": False, "changed_files": 0}
                    or {"commit": None, "dirty": None, "git": "not a git checkout (...)"}
    versions()      {"python": "3.11.2", "tensorflow": "2.21.0", "tf_slim": "1.1.0", "numpy": "1.26.4"}
"""
import importlib.metadata
import os
import platform
import subprocess
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_A_CHECKOUT = "not a git checkout"
# distribution names each library ships under (the first one installed counts)
DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu", "intel-tensorflow", "tf-nightly"),
                 "tf_slim": ("tf-slim", "tf_slim"), "numpy": ("numpy",)}


def _git(folder, *args):
    proc = subprocess.run(["git", "-C", folder] + list(args), capture_output=True, text=True, timeout=20)
    if proc.returncode:
        raise OSError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "git failed")
    return proc.stdout


def code_version(folder=PROJECT):
    """The commit `folder` is checked out at and whether tracked files differ from it (untracked files, such as
    run folders, do not count)."""
    try:
        commit = _git(folder, "rev-parse", "HEAD").strip()
        changed = [line for line in _git(folder, "status", "--porcelain", "--untracked-files=no").splitlines()
                   if line.strip()]
    except (OSError, subprocess.SubprocessError) as error:
        return {"commit": None, "dirty": None, "git": "%s (%s)" % (NOT_A_CHECKOUT, error)}
    return {"commit": commit, "dirty": bool(changed), "changed_files": len(changed)}


def _version(name):
    module = sys.modules.get(name)
    if getattr(module, "__version__", None):
        return module.__version__
    for distribution in DISTRIBUTIONS.get(name, (name,)):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def versions():
    return {"python": platform.python_version(), **{name: _version(name) for name in DISTRIBUTIONS}}


def describe(code):
    """"599883b" / "599883b+dirty" / "not a git checkout" for tables and logs."""
    if not code or not code.get("commit"):
        return NOT_A_CHECKOUT
    return code["commit"][:7] + ("+dirty" if code.get("dirty") else "")

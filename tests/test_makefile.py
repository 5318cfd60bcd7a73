"""The Makefile's viewers never install behind the user's back, and make install says why it installs.

Runs the real Makefile in a scratch copy of the repository's top level with a stand-in venv whose `python`,
`tensorboard` and `jupyter` only write down how they were called, so nothing is installed or served.
"""
import os
import shutil
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDER = "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> \"%s\"\n"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


@pytest.fixture
def scratch(tmp_path):
    for name in ("Makefile", "requirements", "requirements-notebook", "pyproject.toml"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    (tmp_path / "tboards").mkdir()
    (tmp_path / "tboards" / "createlinks").write_text("true\n")
    return tmp_path


def make_venv(root, installed_at=None):
    """A stand-in .venv; `installed_at` (seconds since the epoch) gives its install stamp that time."""
    log = root / "calls.log"
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("python", "tensorboard", "jupyter"):
        path = bin_dir / tool
        path.write_text(RECORDER % log)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    if installed_at is not None:
        stamp = root / ".venv" / ".installed"
        stamp.write_text("")
        os.utime(stamp, (installed_at, installed_at))
    return log


def run_make(root, *targets):
    return subprocess.run(["make", "-s", *targets], cwd=root, capture_output=True, text=True, timeout=60)


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def test_viewers_without_a_venv_name_make_install(scratch):
    for target in ("tensorboard", "notebook"):
        done = run_make(scratch, target)
        assert done.returncode != 0
        assert "no virtual environment at .venv: run 'make install' first" in done.stderr
    assert not (scratch / ".venv").exists()  # nothing was created either


def test_viewers_with_a_stale_venv_refuse_instead_of_installing(scratch):
    requirements_time = os.stat(scratch / "requirements").st_mtime
    log = make_venv(scratch, installed_at=requirements_time - 3600)  # installed before the last pull
    for target in ("tensorboard", "notebook"):
        done = run_make(scratch, target)
        assert done.returncode != 0, done.stdout
        assert "requirements changed since .venv was installed: run 'make install'" in done.stderr
    assert calls(log) == []  # neither pip nor the viewer ran


def test_an_up_to_date_venv_serves_without_pip(scratch):
    log = make_venv(scratch, installed_at=os.stat(scratch / "pyproject.toml").st_mtime + 3600)
    done = run_make(scratch, "tensorboard", "TB_PORT=6123")
    assert done.returncode == 0, done.stderr
    assert calls(log) == ["tensorboard --logdir tboards --port 6123"]


def test_install_says_why_and_pins_pip(scratch):
    log = make_venv(scratch, installed_at=os.stat(scratch / "requirements").st_mtime - 3600)
    done = run_make(scratch, "install")
    assert done.returncode == 0, done.stderr
    assert "make install: requirements pyproject.toml changed since .venv was installed" in done.stdout \
        or "make install: requirements changed since .venv was installed" in done.stdout
    pip_calls = [line for line in calls(log) if " pip install" in line]
    assert pip_calls[0].startswith("python -m pip install -q pip==") and pip_calls[0].split("==")[1].strip()
    assert "--upgrade" not in " ".join(pip_calls)

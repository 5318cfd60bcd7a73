"""TensorBoard as a child process on a free local port: start it, wait until it answers, read its data API, stop.

The README's run comparison is `tensorboard --logdir tboards`; the tests and the README's screenshot
(media/tensorboard_shot.py) run that same installed command, next to this interpreter, with `--port 0`
(the operating system picks a free port; TensorBoard prints the address it got) and read what a browser
would read: `/data/runs`, `/data/plugin/scalars/...`, `/data/plugin/images/...`.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from tools.processes import stop, wait_until

# The `tensorboard` console script of the environment this interpreter belongs to.
TENSORBOARD = os.path.join(os.path.dirname(sys.executable), "tensorboard")
ADDRESS = re.compile(r"TensorBoard \S+ at (http://\S+?)/? ")


class TensorBoard:
    """`tensorboard --logdir LOGDIR` on 127.0.0.1 and a free port; a context manager that stops it at exit."""

    def __init__(self, logdir, timeout=120, reload_interval=1):
        self.logdir, self.timeout, self.reload_interval = logdir, timeout, reload_interval
        self.process, self.url = None, None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [TENSORBOARD, "--logdir", self.logdir, "--host", "127.0.0.1", "--port", "0",
             "--reload_interval", str(self.reload_interval)],
            stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT)
        try:
            self.url = wait_until(self._address, self.timeout, "TensorBoard to print its address")
            wait_until(lambda: self._get("/data/runs") is not None, self.timeout, "TensorBoard to answer")
        except Exception:
            self.stop()
            raise

    def _printed(self):
        self.output.seek(0)
        return self.output.read().decode(errors="replace")

    def _address(self):
        if self.process.poll() is not None:
            raise RuntimeError("tensorboard exited (%d):\n%s" % (self.process.returncode, self._printed()[-3000:]))
        found = ADDRESS.search(self._printed())
        return found and found.group(1)

    def _get(self, path, **params):
        """The body of GET path?params, or None while TensorBoard does not answer or has no such data yet."""
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return answer.read()
        except urllib.error.HTTPError as error:
            if error.code in (400, 404):  # "no data for that run / tag" until the event files are read
                return None
            raise
        except (urllib.error.URLError, ConnectionError):
            return None

    def get(self, path, **params):
        """Bytes of a data-API path; None when TensorBoard has none (yet)."""
        return self._get(path, **params)

    def json(self, path, **params):
        body = self._get(path, **params)
        return None if body is None else json.loads(body)

    def poll_json(self, path, ready, what, **params):
        """GET path until ready(answer) holds, then return the answer (TensorBoard reads event files lazily)."""
        last = [None]

        def probe():
            last[0] = self.json(path, **params)
            return last[0] is not None and ready(last[0])
        try:
            wait_until(probe, self.timeout, what)
        except TimeoutError as error:
            raise TimeoutError("%s; TensorBoard's last answer to %s: %.2000s" % (error, path, last[0])) from None
        return last[0]

    def stop(self):
        if self.process is None:
            return
        stop(self.process)
        self.process = None
        self.output.close()

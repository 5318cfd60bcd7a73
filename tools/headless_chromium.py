"""One page in headless Chromium, driven over the DevTools pipe: open, wait until it shows something, screenshot.

Why the DevTools protocol and not `chromium --dump-dom`: TensorBoard's scalars page draws its run selector
and charts inside shadow roots, which `--dump-dom` leaves out, and `--screenshot` fires at a guessed moment.
Over `--remote-debugging-pipe` (file descriptors 3 and 4, JSON messages ended by a NUL byte; no driver
package, no port) we read the page's text through its shadow roots until what we wait for is there, then
take the screenshot of exactly that page.  Chromium is Debian's `chromium` package (`/usr/bin/chromium`),
started with the flags a closed network needs and a new empty profile.
"""
import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

from tools.processes import stop, wait_until

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe")

# The text of every element the page shows (rendered, not display:none), shadow roots included, as one string.
VISIBLE_TEXT_JS = """(() => {
  const parts = [];
  const skip = new Set(['STYLE', 'SCRIPT', 'TEMPLATE', 'NOSCRIPT']);
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      const owner = node.parentElement || (node.parentNode && node.parentNode.host);
      if (owner && owner.checkVisibility() && node.textContent.trim()) parts.push(node.textContent.trim());
      return;
    }
    if (node.nodeType === Node.ELEMENT_NODE && skip.has(node.tagName)) return;
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) walk(child);
  };
  if (document.documentElement) walk(document.documentElement);
  return parts.join(' ');
})()"""

# How many elements match a CSS selector (%s: the selector as a JSON string), shadow roots included.
COUNT_JS = """(() => {
  let found = 0;
  const walk = (root) => {
    found += root.querySelectorAll(%s).length;
    for (const element of root.querySelectorAll('*')) if (element.shadowRoot) walk(element.shadowRoot);
  };
  walk(document);
  return found;
})()"""

# Resolves after the next two frames are painted: what is in the DOM now is on screen.
TWO_FRAMES_JS = "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"


def find_chromium():
    """Path of the Chromium binary (SEGMENTOR_CHROMIUM, else `chromium` on PATH), or None."""
    return os.environ.get("SEGMENTOR_CHROMIUM") or shutil.which("chromium")


class ChromiumError(RuntimeError):
    pass


def _fd_at_least(fd, low):
    return fcntl.fcntl(fd, fcntl.F_DUPFD, low)


def stop_group(pgid, timeout=10):
    """SIGKILL what is left of Chromium's process group (renderer, utility and crash-handler children can outlive
    the browser process for a moment, writing to the profile) and wait until none is left or timeout s pass."""
    def gone():
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return True
        except PermissionError:  # a reused id that is not ours: nothing of Chromium's is left
            return True
        return False
    try:
        wait_until(gone, timeout, "Chromium's child processes to exit", interval=0.1)
    except TimeoutError:
        pass  # zombies nobody reaps yet: they write nothing, the profile can go


def remove_profile(folder, attempts=5):
    """Remove the browser profile; a file a dying child wrote after the listing makes rmtree fail: list again."""
    for _ in range(attempts - 1):
        try:
            shutil.rmtree(folder)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.2)
    shutil.rmtree(folder, ignore_errors=True)


class Page:
    """A headless Chromium window of `size` (width, height) with one page; use as a context manager."""

    def __init__(self, size=(1000, 600), chromium=None):
        self.binary = chromium or find_chromium()
        if not self.binary:
            raise ChromiumError("no Chromium found: install Debian's chromium package or set SEGMENTOR_CHROMIUM")
        self.size, self.process, self._next_id, self._buffer, self._events = size, None, 0, b"", []

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        to_chromium_r, self._to_chromium = os.pipe()
        self._from_chromium, from_chromium_w = os.pipe()

        def wire_pipes():  # in the child: Chromium reads commands on fd 3 and writes answers on fd 4
            read_end, write_end = _fd_at_least(to_chromium_r, 10), _fd_at_least(from_chromium_w, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        width, height = self.size
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [self.binary, *FLAGS, "--user-data-dir=" + self.profile, "--window-size=%d,%d" % (width, height),
             "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            preexec_fn=wire_pipes, pass_fds=(3, 4), start_new_session=True)  # its own group: see close()
        os.close(to_chromium_r)
        os.close(from_chromium_w)
        try:
            pages = [t for t in self.call("Target.getTargets", timeout=60)["targetInfos"] if t["type"] == "page"]
            if not pages:
                raise ChromiumError("Chromium started without a page; its stderr ends:\n" + self._stderr_tail())
            self.session = self.call("Target.attachToTarget", targetId=pages[0]["targetId"], flatten=True)["sessionId"]
            self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:  # __exit__ does not run when __enter__ raises: stop the browser here
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.process is None:
            return
        for fd in (self._to_chromium, self._from_chromium):
            os.close(fd)
        stop(self.process)
        stop_group(self.process.pid)
        self.process = None
        self.stderr.close()
        remove_profile(self.profile)

    # ------------------------------------------------------------ protocol
    def _stderr_tail(self):
        self.stderr.seek(0)
        return self.stderr.read()[-2000:].decode(errors="replace")

    def _read_message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                raise ChromiumError("Chromium %s; its stderr ends:\n%s" % (
                    "did not answer in time" if left <= 0 else "exited (%d)" % self.process.returncode,
                    self._stderr_tail()))
            if select.select([self._from_chromium], [], [], min(left, 1.0))[0]:
                chunk = os.read(self._from_chromium, 1 << 20)
                if not chunk:
                    raise ChromiumError("Chromium closed the DevTools pipe; its stderr ends:\n" + self._stderr_tail())
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method, session=False, timeout=30, **params):
        """Send one DevTools command (to the page when session) and return its result; events are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chromium, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise ChromiumError("%s failed: %s" % (method, answer["error"]))
                return answer["result"]
            if "method" in answer:
                self._events.append(answer)

    def wait_event(self, method, timeout=60):
        """The first DevTools event named method, waiting for it when it has not come yet."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self._events:
                if event["method"] == method:
                    self._events.remove(event)
                    return event.get("params", {})
            self._events.append(self._read_message(deadline))

    def evaluate(self, expression, timeout=30):
        result = self.call("Runtime.evaluate", session=True, timeout=timeout, expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise ChromiumError("page script failed: %s" % result["exceptionDetails"])
        return result["result"].get("value")

    # ------------------------------------------------------------ page
    def open(self, url, timeout=60):
        """Navigate and wait for the load event (scripts may still be fetching data after it)."""
        self.call("Page.enable", session=True)
        self._events.clear()
        answer = self.call("Page.navigate", session=True, url=url)
        if answer.get("errorText"):
            raise ChromiumError("could not open %s: %s" % (url, answer["errorText"]))
        self.wait_event("Page.loadEventFired", timeout)

    def text(self):
        """The text the page shows, shadow roots included."""
        return self.evaluate(VISIBLE_TEXT_JS)

    def wait_for_text(self, needles, timeout=60):
        """Poll the page's text until every needle is in it; returns the text, or raises naming the missing ones."""
        last = [""]

        def probe():
            last[0] = self.text() or ""
            return all(needle in last[0] for needle in needles)
        try:
            wait_until(probe, timeout, "the page to show %s" % (list(needles),))
        except TimeoutError as error:
            missing = [needle for needle in needles if needle not in last[0]]
            raise ChromiumError("%s; missing %s; it showed: %.1500s" % (error, missing, last[0])) from None
        return last[0]

    def count(self, selector):
        """How many elements match a CSS selector, shadow roots included."""
        return self.evaluate(COUNT_JS % json.dumps(selector))

    def screenshot(self, path):
        """Write a PNG of the window as it is once the next two frames are painted."""
        self.evaluate(TWO_FRAMES_JS)
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

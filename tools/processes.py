"""Child processes the tests and media/ start (TensorBoard, Chromium): wait until they are ready by polling
with a deadline (no fixed sleeps), and stop them with a grace period."""
import subprocess
import time


def wait_until(probe, timeout, what, interval=0.2):
    """Call probe() until it returns something truthy and return that; after timeout seconds raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("waited %d s for %s" % (timeout, what))
        time.sleep(interval)


def stop(process, grace=20):
    """SIGTERM, then SIGKILL when it has not exited after grace seconds; returns its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode

"""Wait for a condition by polling it, with a deadline: no fixed sleeps where a process or a page gets ready."""
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

"""Native libraries' own log lines kept off the terminal: TensorFlow's start-up, the TFLite converter's
"fully_quantize: 0, inference_type: 6 ...", LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate",
OpenCV's ffmpeg ("moov atom not found" for a file that is no movie).

They write to file descriptor 2 from C/C++, below Python's sys.stderr, so no logging setting reaches them:
`stderr_hidden()` points fd 2 at a temporary file for the call; what was written there is kept (`.text`), so
a caller can turn it into one line of its own.  If the call fails, it is shown after all (it may say why),
before the exception goes on.  `--verbose` on the command line or
SEGMENTOR_VERBOSE=1 shows everything, as it happens.
"""
import contextlib
import os
import sys
import tempfile

VERBOSE = os.environ.get("SEGMENTOR_VERBOSE", "") not in ("", "0") or "--verbose" in sys.argv


class Captured:
    """What a stderr_hidden() block wrote to fd 2 (`text`, set when the block ends; '' with VERBOSE)."""
    text = ""


@contextlib.contextmanager
def stderr_hidden():
    """Run the block with fd 2 captured; replay the capture if the block raises (not with VERBOSE)."""
    log = Captured()
    if VERBOSE:
        yield log
        return
    sys.stderr.flush()
    saved = os.dup(2)
    captured = tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 2)
    failed = True
    try:
        yield log
        failed = False
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        captured.seek(0)
        written = captured.read()
        captured.close()
        log.text = written.decode("utf-8", "replace")
        if failed and written:
            os.write(2, written)

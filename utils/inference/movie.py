"""Video in (OpenCV) and out (H.264 MP4), GIFs, and segmenting a whole movie into an overlay movie.

    info = video_info("drive.mp4")                  # fps, frame_count, width, height
    for frame in read_frames("drive.mp4"): ...      # RGB uint8 frames
    frame_sizes("drive.mp4")                        # (width, height) of every decodable frame (ffmpeg)
    with VideoWriter("out.mp4", fps=15, size=(480, 360)) as writer:
        writer.write(rgb_frame)
    stats = segment_movie(segmenter, "drive.mp4", "drive_segmented.mp4")

Movies are written as H.264 (libx264, yuv420p, no audio, moov atom first)
through the ffmpeg binary that the imageio-ffmpeg wheel ships, so they play
in browsers, notebooks and phones; OpenCV's own MP4 writer only has 'mp4v'
(MPEG-4 part 2), which most browsers refuse.  yuv420p needs even sizes: an
odd width or height is padded by one edge-replicated pixel, and the writer
says so (`padded_size`).  Reading stays with OpenCV (its wheel decodes H.264
and every common container) and it reads the container's stated frame count,
so a truncated file shows.  OpenCV silently rescales a frame that changes
size to the first frame's, so `frame_sizes` asks ffmpeg, which reports each
decoded frame's own size, before a movie is segmented.
This module keeps the BGR<->RGB swap in one place so the rest of the project
only sees RGB.  GIFs (small, for the README) are written with Pillow.
"""
import collections
import functools
import os
import re
import subprocess
import time

import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image
from tqdm import tqdm

from utils import viz
from utils.compat import quiet

VideoInfo = collections.namedtuple("VideoInfo", "fps frame_count width height")
DEFAULT_FPS = 25.0
H264_QUALITY = 8  # imageio-ffmpeg's 0-10 scale; 8 is libx264 CRF 10: class colours and edges survive


_FFMPEG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\] ")


def open_capture(path):
    """cv2.VideoCapture of `path`, opened; IOError when it is not a video.  OpenCV's ffmpeg logs why not
    ("[mov,mp4,... @ 0x...] moov atom not found") to fd 2 itself: hidden (utils/compat/quiet.py), and its
    last line ends the IOError's message instead."""
    with quiet.stderr_hidden() as log:
        capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        lines = [_FFMPEG_PREFIX.sub("", line).strip() for line in log.text.splitlines() if line.strip()]
        raise IOError("cannot open video %s (not a video, or damaged%s)" % (path, ": " + lines[-1] if lines else ""))
    return capture


def video_info(path):
    """Frame rate, frame count (as the container states it), width and height of a video file."""
    capture = open_capture(path)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
        return VideoInfo(float(fps), int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
                         int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        capture.release()


def read_frames(path):
    """Yield the frames of a video as RGB uint8 arrays, in order (at the first frame's size: see frame_sizes)."""
    capture = open_capture(path)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


class VideoWriter:
    """H.264 MP4 writer taking RGB frames of one size (width, height); a context manager.

    `padded_size` is the size written: `size` rounded up to even numbers (yuv420p), by edge replication.
    """

    def __init__(self, path, fps, size):
        self.path, self.size = path, tuple(int(s) for s in size)  # size = (width, height)
        self.padded_size = tuple(s + s % 2 for s in self.size)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._writer = imageio_ffmpeg.write_frames(
            path, self.padded_size, fps=float(fps), codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            quality=H264_QUALITY, macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-movflags", "+faststart", "-an"])
        self._writer.send(None)  # starts ffmpeg
        self.frames = 0

    def write(self, frame):
        frame = np.asarray(frame)
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError("frame %dx%d differs from the video's %dx%d"
                             % (frame.shape[1], frame.shape[0], self.size[0], self.size[1]))
        pad = [(0, self.padded_size[1] - self.size[1]), (0, self.padded_size[0] - self.size[0]), (0, 0)]
        if any(after for _, after in pad):
            frame = np.pad(frame, pad, mode="edge")
        self._writer.send(np.ascontiguousarray(frame, np.uint8).tobytes())
        self.frames += 1

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ffmpeg_log(path, *args):
    """What ffmpeg (the imageio-ffmpeg wheel's) logs while it reads `path`, with these output arguments."""
    return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", "-i", path] + list(args),
                          capture_output=True, text=True).stderr


def video_codec(path):
    """The codec name of the first video stream ('h264', 'mpeg4', ...), as ffmpeg reports it; None if none."""
    for line in _ffmpeg_log(path).splitlines():
        if "Stream #" in line and "Video:" in line:
            return line.split("Video:", 1)[1].split()[0].strip(",")
    return None


_SHOWN_FRAME = re.compile(r"^\[Parsed_showinfo[^\]]*\] n: *\d+ .*? s:(\d+)x(\d+) ", re.MULTILINE)


def frame_sizes(path):
    """(width, height) of every frame of the first video stream that decodes, in order; [] for none.

    Decoded by ffmpeg, which reports each frame's own size: OpenCV rescales a
    frame that changes size to the first frame's, so it cannot tell.
    """
    log = _ffmpeg_log(path, "-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-")
    return [(int(width), int(height)) for width, height in _SHOWN_FRAME.findall(log)]


def check_one_size(sizes):
    """ValueError naming the first frame whose size differs from the first frame's, if one does."""
    for index, size in enumerate(sizes):
        if size != sizes[0]:
            raise ValueError("frame %d is %dx%d but frame 1 is %dx%d: movies whose frames change size are not "
                             "supported (re-encode at one size, e.g. ffmpeg -i IN -vf scale=%d:%d OUT.mp4)"
                             % ((index + 1,) + size + sizes[0] + sizes[0]))


def check_movie(path):
    """The VideoInfo of a movie that can be segmented; IOError / ValueError naming what is wrong (no such
    file, not a video, no decodable frame, frames that change size).  test.py asks before it loads the net;
    the answer is kept for the unchanged file, so segment_movie's own check does not decode it again."""
    stat = os.stat(path)
    return _checked_movie(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _checked_movie(path, mtime_ns, size):
    info = video_info(path)
    sizes = frame_sizes(path)
    if info.width <= 0 or info.height <= 0 or not sizes:
        raise ValueError("no video frame could be decoded (not a video, or damaged)")
    check_one_size(sizes)
    return info


def write_video(path, frames, fps):
    """Write RGB frames (all one size) to an MP4; returns the frame count."""
    writer = None
    try:
        for frame in frames:
            if writer is None:
                writer = VideoWriter(path, fps, (frame.shape[1], frame.shape[0]))
            writer.write(frame)
    finally:
        if writer is not None:
            writer.close()
    return writer.frames if writer is not None else 0


def write_gif(path, frames, fps, max_colors=128):
    """Looping GIF of RGB frames (Pillow, one adaptive palette per frame); returns the path."""
    images = [Image.fromarray(np.asarray(f, np.uint8)).convert("P", palette=Image.ADAPTIVE, colors=max_colors)
              for f in frames]
    if not images:
        raise ValueError("no frames for %s" % path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000.0 / fps)), loop=0,
                   optimize=True)
    return path


def _batches(iterable, size):
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _remove(path):
    """Remove a half-written output, if there is one."""
    if os.path.exists(path):
        os.remove(path)


def segment_movie(segmenter, in_path, out_path, alpha=0.5, progress=True, legend=False, on_frame=None,
                  probabilities=False):
    """Segment every frame, write the H.264 overlay movie (same frame rate, frame count and size; an odd size
    padded by one pixel, see VideoWriter).

    legend=True puts a strip of every class's colour and name under each
    frame (utils/viz.py legend_strip: the movie grows by its height, the
    frames keep theirs).  on_frame(number, prediction[, probabilities]) is
    called per frame, numbered from 1 (saved masks); probabilities=True
    passes the frame's softmax probabilities [H, W, C] too.

    The movie is checked before anything is segmented (check_movie): a file
    without video frames, or whose frames change size, is a ValueError naming
    the problem (frame_sizes decodes it once with ffmpeg, far faster than segmenting).
    Frames are segmented in batches of segmenter.batch_size.  A movie that
    ends before the frame count its container states (truncated) keeps every
    frame that decoded and says so in the returned dict: frames, seconds
    (segmentation + I/O), frames_per_second, stated_frames, truncated, size
    and padded_size (the frame's; the written movie is `written_size`, legend included, and
    `written_padded_size`).  A stopped run leaves no partial output.
    """
    info = check_movie(in_path)
    bar = tqdm(total=info.frame_count or None, unit="frame", desc=os.path.basename(in_path),
               disable=not progress)
    tic = time.time()
    strip = viz.legend_strip(segmenter.class_names, segmenter.palette, info.width) if legend else None
    writer = VideoWriter(out_path, info.fps, (info.width, info.height + (0 if strip is None else len(strip))))
    number = 0
    try:
        for frames in _batches(read_frames(in_path), segmenter.batch_size):
            outputs = segmenter.segment(frames, probabilities=True) if probabilities else (segmenter.segment(frames),)
            for frame, prediction, *extra in zip(frames, *outputs):
                painted = viz.overlay(frame, prediction, segmenter.palette, alpha, segmenter.ignore_label)
                writer.write(painted if strip is None else np.concatenate([painted, strip]))
                number += 1
                if on_frame is not None:
                    on_frame(number, prediction, *extra)
            bar.update(len(frames))
    except BaseException:
        writer.close()
        _remove(out_path)
        raise
    finally:
        writer.close()
        bar.close()
    count = writer.frames
    if not count:
        _remove(out_path)
        raise ValueError("no video frame could be decoded (not a video, or damaged)")
    seconds = time.time() - tic
    return {"input": in_path, "output": out_path, "frames": count, "fps": info.fps, "seconds": seconds,
            "frames_per_second": count / seconds if seconds > 0 else float("nan"),
            "stated_frames": info.frame_count, "truncated": count < info.frame_count,
            "size": (info.width, info.height), "padded_size": tuple(s + s % 2 for s in (info.width, info.height)),
            "written_size": writer.size, "written_padded_size": writer.padded_size,
            "legend_height": 0 if strip is None else len(strip)}

"""Video in and out (OpenCV), and segmenting a whole movie into an overlay movie.

    info = video_info("drive.mp4")                  # fps, frame_count, width, height
    for frame in read_frames("drive.mp4"): ...      # RGB uint8 frames
    with VideoWriter("out.mp4", fps=15, size=(480, 360)) as writer:
        writer.write(rgb_frame)
    stats = segment_movie(segmenter, "drive.mp4", "drive_segmented.mp4")

OpenCV speaks BGR and MP4 through its bundled FFmpeg ('mp4v' codec), which
opencv-python-headless ships everywhere; this module keeps the BGR<->RGB
swap in one place so the rest of the project only sees RGB.  GIFs (small,
for the README) are written with Pillow.
"""
import collections
import os
import time

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from utils import viz

VideoInfo = collections.namedtuple("VideoInfo", "fps frame_count width height")
DEFAULT_FPS = 25.0


def video_info(path):
    """Frame rate, frame count (as the container states it), width and height of a video file."""
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise IOError("cannot open video %s" % path)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
        return VideoInfo(float(fps), int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
                         int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        capture.release()


def read_frames(path):
    """Yield the frames of a video as RGB uint8 arrays, in order."""
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise IOError("cannot open video %s" % path)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


class VideoWriter:
    """MP4 ('mp4v') writer taking RGB frames of one size; a context manager."""

    def __init__(self, path, fps, size, codec="mp4v"):
        self.path, self.size = path, tuple(int(s) for s in size)  # size = (width, height)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codec), float(fps), self.size)
        if not self._writer.isOpened():
            raise IOError("cannot write video %s with codec %r" % (path, codec))
        self.frames = 0

    def write(self, frame):
        frame = np.asarray(frame)
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError("frame %dx%d differs from the video's %dx%d"
                             % (frame.shape[1], frame.shape[0], self.size[0], self.size[1]))
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(frame, np.uint8), cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self):
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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


def segment_movie(segmenter, in_path, out_path, alpha=0.5, progress=True):
    """Segment every frame, write the overlay movie (same frame rate, frame count and size).

    Frames are segmented in batches of segmenter.batch_size.  Returns a dict
    with frames, seconds (segmentation + I/O) and frames_per_second.
    """
    info = video_info(in_path)
    if info.frame_count <= 0 or info.width <= 0 or info.height <= 0:
        raise ValueError("no video frames found (not a video, or damaged)")
    bar = tqdm(total=info.frame_count or None, unit="frame", desc=os.path.basename(in_path),
               disable=not progress)
    tic = time.time()
    with VideoWriter(out_path, info.fps, (info.width, info.height)) as writer:
        for frames in _batches(read_frames(in_path), segmenter.batch_size):
            for frame, prediction in zip(frames, segmenter.segment(frames)):
                writer.write(viz.overlay(frame, prediction, segmenter.palette, alpha, segmenter.ignore_label))
            bar.update(len(frames))
        count = writer.frames
    bar.close()
    if not count:
        raise ValueError("no frame could be decoded (not a video, or damaged)")
    seconds = time.time() - tic
    return {"input": in_path, "output": out_path, "frames": count, "fps": info.fps, "seconds": seconds,
            "frames_per_second": count / seconds if seconds > 0 else float("nan"),
            "stated_frames": info.frame_count, "truncated": count < info.frame_count}

"""Movies: the segmented MP4 is H.264 with the input's frame count and rate; bad movies stop with a clear line.

Input movies are made by the same ffmpeg binary the project writes with (the
imageio-ffmpeg wheel's), from its test-pattern source: real files, real codecs.
"""
import os
import subprocess

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from tests.test_inference import NUM_CLASSES, red_channel_model
from tests.test_test_script import test_script
from utils.inference.movie import frame_sizes, read_frames, segment_movie, video_codec, video_info, write_video
from utils.inference.segmenter import Segmenter


def _pattern_movie(path, size, frames, rate=10, codec="libx264", pix_fmt="yuv420p"):
    """A movie of ffmpeg's test pattern: `frames` frames of size (w, h) at `rate` frames/s (index first)."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc=size=%dx%d:rate=%d" % (size + (rate,)), "-frames:v", str(frames), "-c:v", codec,
                    "-pix_fmt", pix_fmt, "-movflags", "+faststart", str(path)], check=True)
    return str(path)


@pytest.fixture(scope="module")
def segmenter():
    seg = Segmenter.from_logits_fn(red_channel_model, NUM_CLASSES, pixels=0, batch_size=4)
    yield seg
    seg.close()


def test_segmented_movie_is_h264_with_the_input_frames_and_rate(segmenter, tmp_path):
    # OpenCV's own MP4 writer: MPEG-4 part 2 ('mp4v'), what this project wrote before
    source = str(tmp_path / "drive.mp4")
    writer = cv2.VideoWriter(source, cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (80, 60))
    rng = np.random.RandomState(0)
    for _ in range(9):
        writer.write(rng.randint(0, 256, (60, 80, 3)).astype(np.uint8))
    writer.release()
    assert video_codec(source) == "mpeg4" and len(frame_sizes(source)) == 9
    out = str(tmp_path / "out" / "drive_segmented.mp4")
    stats = segment_movie(segmenter, source, out, progress=False)
    assert stats["frames"] == 9 and not stats["truncated"] and stats["size"] == stats["padded_size"] == (80, 60)
    assert video_codec(out) == "h264"
    assert frame_sizes(out) == [(80, 60)] * 9  # every frame decodes: the input's count
    info = video_info(out)
    assert info.frame_count == 9 and info.fps == pytest.approx(12.0)
    # an odd size (PNG frames in a .mov) comes back padded by one pixel, as yuv420p needs even sizes
    odd = _pattern_movie(tmp_path / "odd.mov", (81, 61), 7, rate=15, codec="png", pix_fmt="rgb24")
    stats = segment_movie(segmenter, odd, str(tmp_path / "odd_segmented.mp4"), progress=False)
    assert stats["frames"] == 7 and stats["size"] == (81, 61) and stats["padded_size"] == (82, 62)
    assert frame_sizes(stats["output"]) == [(82, 62)] * 7 and video_codec(stats["output"]) == "h264"
    assert video_info(stats["output"]).fps == pytest.approx(15.0)
    # write_video (the README's media) is H.264 too, and the frames come back close to what went in
    frames = [np.full((48, 64, 3), (40 * i, 100, 200), np.uint8) for i in range(5)]
    again = str(tmp_path / "flat.mp4")
    assert write_video(again, frames, fps=5) == 5 and video_codec(again) == "h264"
    decoded = list(read_frames(again))
    assert len(decoded) == 5 and np.abs(decoded[3].astype(int) - frames[3].astype(int)).mean() < 3


def _moviepath_command(tmp_path, movie):
    """test.py's --moviepath command on `movie` (the segmenter above stands in for a run's)."""
    return test_script.build_parser().parse_args(["--traindir", str(tmp_path), "--moviepath", movie])


def test_a_movie_whose_frames_change_size_stops_before_segmenting(segmenter, tmp_path):
    first = _pattern_movie(tmp_path / "a.ts", (64, 48), 3)
    second = _pattern_movie(tmp_path / "b.ts", (80, 64), 2)
    joined = tmp_path / "joined.ts"  # MPEG-TS streams concatenate: one movie, a new size from frame 4
    joined.write_bytes(open(first, "rb").read() + open(second, "rb").read())
    assert frame_sizes(str(joined)) == [(64, 48)] * 3 + [(80, 64)] * 2
    assert {frame.shape for frame in read_frames(str(joined))} == {(48, 64, 3)}  # OpenCV rescales silently
    out = tmp_path / "out"
    with pytest.raises(test_script.UsageError) as error:
        test_script.segment_command(_moviepath_command(tmp_path, str(joined)), segmenter, str(out))
    message = str(error.value)
    assert message.startswith("--moviepath %s: frame 4 is 80x64 but frame 1 is 64x48" % joined)
    assert "ffmpeg -i IN -vf scale=64:48" in message and "\n" not in message
    assert not (out / "joined_segmented.mp4").exists()


def test_a_truncated_movie_keeps_the_frames_that_decode_and_says_so(segmenter, tmp_path, capsys):
    whole = _pattern_movie(tmp_path / "whole.mp4", (96, 64), 40)
    data = open(whole, "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) * 6 // 10])
    decodable = len(frame_sizes(str(cut)))
    assert 0 < decodable < 40 and video_info(str(cut)).frame_count == 40  # the container still states 40
    out = tmp_path / "out"
    assert test_script.segment_command(_moviepath_command(tmp_path, str(cut)), segmenter, str(out)) == 1
    captured = capsys.readouterr()
    written = len(frame_sizes(str(out / "cut_segmented.mp4")))
    assert 0 < written <= decodable
    assert ("error: --moviepath %s ended after %d of the 40 frames its container states (a truncated file?)"
            % (cut, written)) in captured.err
    assert "segmented movie: %d frames" % written in captured.out


def test_files_without_video_frames_are_refused(segmenter, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a movie")
    audio = tmp_path / "tone.m4a"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=duration=0.5", str(audio)], check=True)
    for path in (text, audio):
        with pytest.raises((IOError, ValueError), match="not a video|cannot open"):
            segment_movie(segmenter, str(path), str(tmp_path / "out.mp4"), progress=False)
        assert frame_sizes(str(path)) == []
    assert not (tmp_path / "out.mp4").exists()

"""Tiled (sliding-window) inference: the window layout, exact blending on a per-pixel model, the trained run
against untiled inference, and memory bounded by the tile."""
import glob
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SAMPLE, run_script
from tests.test_inference import NUM_CLASSES, block_scene, red_channel_model
from utils.inference.geometry import axis_window, check_overlap, parse_tile, tile_grid
from utils.inference.segmenter import Segmenter


# --------------------------------------------------------------------------- layout
def test_tile_grid_covers_the_image_with_the_overlap_asked_for():
    grid = tile_grid((360, 480), (360, 480), (256, 256), 0.25)
    assert grid.size == (256, 256) and grid.rows == [0, 104] and grid.cols == [0, 112, 224]
    assert grid.ramps == (64, 64)  # 256 - round(256 * 0.75)
    assert tile_grid((360, 480), (360, 480), (256, 256), 0.125).cols == [0, 224]  # 2 x 2 at 1/8 overlap
    # net input at a quarter of the original: windows are 4x larger in original pixels
    grid = tile_grid((2000, 3000), (500, 750), (128, 128), 0.5)
    assert grid.size == (512, 512) and grid.rows[-1] == 2000 - 512 and grid.cols[-1] == 3000 - 512
    for starts in (grid.rows, grid.cols):
        assert all(0 < b - a <= 256 for a, b in zip(starts, starts[1:]))  # neighbours share >= half a window
    # smaller than a tile along one axis: one full-height window row; within one tile: not tiled at all
    assert tile_grid((100, 3000), (100, 3000), (256, 256), 0.25).rows == [0]
    assert tile_grid((100, 3000), (100, 3000), (256, 256), 0.25).size == (100, 256)
    assert tile_grid((256, 200), (256, 200), (256, 256), 0.25) is None


def test_neighbouring_windows_cross_fade_to_one():
    ramp = 16
    first, last = axis_window(64, ramp, False, True), axis_window(64, ramp, True, False)
    assert first[0] == 1.0 and last[-1] == 1.0 and np.all(first > 0) and np.all(last > 0)
    np.testing.assert_allclose(first[-ramp:] + last[:ramp], 1.0, atol=1e-6)  # overlap exactly the ramp
    assert np.all(np.diff(first[-ramp:]) < 0) and np.all(np.diff(last[:ramp]) > 0)  # smooth, no step
    np.testing.assert_array_equal(axis_window(10, 0, True, True), np.ones(10))


def test_tile_settings_parse_or_say_why():
    assert parse_tile("256x384") == (256, 384) and parse_tile("256") == (256, 256) and parse_tile(128) == (128, 128)
    assert parse_tile(None) is None and parse_tile("none") is None and parse_tile(0) is None
    for bad in ("256by256", "0x5", "-3"):
        with pytest.raises(ValueError, match="tile"):
            parse_tile(bad)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        check_overlap(1.0)


# --------------------------------------------------------------------------- blending, exactly
@pytest.mark.parametrize("pixels, tile", [(0, (40, 56)), (64, (24, 32))])
def test_tiles_of_a_per_pixel_model_blend_back_to_the_untiled_probabilities(pixels, tile):
    """The fake net decides each pixel alone, so any error in placing, weighting or normalising windows shows."""
    seg = Segmenter.from_logits_fn(red_channel_model, NUM_CLASSES, pixels=pixels, batch_size=3)
    try:
        image, classes = block_scene(96, 128, 8, 11)
        untiled, untiled_probabilities = seg.segment(image, probabilities=True)
        tiled, probabilities, confidence = seg.segment(image, probabilities=True, confidence=True, tile=tile)
        assert seg._grid(image.shape[:2], tile) is not None  # really tiled
        np.testing.assert_array_equal(tiled, untiled)
        if pixels == 0:  # native: no resize, so every window sees exactly what the whole image shows
            np.testing.assert_array_equal(tiled, classes)
            np.testing.assert_allclose(probabilities, untiled_probabilities, atol=1e-6)
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(confidence, probabilities.max(-1), atol=1e-7)
        # with scales and flips inside every window; block centres are far from any resize edge effect
        multi = seg.segment(image, scales=(1.0, 0.5), flip=True, tile=tile)
        np.testing.assert_array_equal(multi[4::8, 4::8], classes[4::8, 4::8])
    finally:
        seg.close()


# --------------------------------------------------------------------------- the trained run
def _sample_image(index=0):
    return np.asarray(Image.open(sorted(glob.glob(os.path.join(SAMPLE, "val", "*")))[index]).convert("RGB"))


def test_trained_run_tiled_equals_untiled_below_one_tile_and_each_window_is_its_crop(tiny_run):
    image = _sample_image()  # a CamVid frame, 480x360
    with Segmenter(tiny_run["folder"], pixels=0) as seg:
        untiled, probabilities = seg.segment(image, probabilities=True)
        # the whole image fits one 512x512 window: the same result
        same, same_probabilities = seg.segment(image, probabilities=True, tile=(512, 512))
        np.testing.assert_array_equal(same, untiled)
        np.testing.assert_allclose(same_probabilities, probabilities, atol=1e-5)
        # 2 x 2 windows of 256x256 (overlap 152 rows, 32 columns).  Where one window alone covers the image,
        # the tiled result is that crop segmented by itself: the windows are cut, run and placed back exactly.
        # (Against the untiled map no bound holds for every net: a window sees less context, and a net trained
        # on whole images, as these are, leans on it; the README gives the real run's numbers.)
        seg.tile_overlap = 0.125
        grid = seg._grid(image.shape[:2], (256, 256))
        assert (grid.rows, grid.cols) == ([0, 104], [0, 224])
        tiled, tiled_probabilities = seg.segment(image, probabilities=True, tile=(256, 256))
        assert tiled.shape == untiled.shape == (360, 480)
        np.testing.assert_allclose(tiled_probabilities.sum(-1), 1.0, atol=1e-5)
        for (top, left), alone in (((0, 0), (slice(0, 104), slice(0, 224))),
                                   ((104, 224), (slice(256, 360), slice(256, 480)))):
            crop, crop_probabilities = seg.segment(image[top:top + 256, left:left + 256], probabilities=True)
            inside = (slice(alone[0].start - top, alone[0].stop - top), slice(alone[1].start - left,
                                                                              alone[1].stop - left))
            np.testing.assert_array_equal(tiled[alone], crop[inside])
            np.testing.assert_allclose(tiled_probabilities[alone], crop_probabilities[inside], atol=1e-5)
    # at the trained scale (pixels 64: the net input is 64x48), tiles of 32x32 net-input pixels
    with Segmenter(tiny_run["folder"], tile="32x32", tile_overlap=0.5) as seg:
        assert "tiles 32x32 overlap 0.5" in seg.describe()
        assert seg._grid(image.shape[:2], seg.tile).size == (240, 240)  # 32 net-input pixels = 240 original
        maps, confidence = seg.segment([image, image[:100, :120]], confidence=True)
        assert maps[0].shape == (360, 480) and maps[1].shape == (100, 120) and confidence[0].shape == (360, 480)
        assert np.all((confidence[0] > 0) & (confidence[0] <= 1.0 + 1e-6))


MEMORY_PROBE = r"""
import json, sys
import numpy as np
from utils.inference.segmenter import Segmenter

def rss(field):  # kB of this process: VmRSS now, VmHWM the peak since the last reset
    return int([l for l in open("/proc/self/status") if l.startswith(field + ":")][0].split()[1])

image = np.random.RandomState(0).randint(0, 256, (2000, 3000, 3)).astype(np.uint8)
seg = Segmenter(sys.argv[1], pixels=0, batch_size=4)
seg.segment(image[:64, :64]); seg.segment(image[:512, :512], tile=(256, 256))  # warm: graphs built and frozen
growth = {}
for name, tile in (("tiled", (256, 256)), ("untiled", 0)):
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak
    before = rss("VmRSS")
    maps = seg.segment(image, tile=tile)
    growth[name] = (rss("VmHWM") - before) * 1024
    assert maps.shape == (2000, 3000)
print(json.dumps(growth))
"""


def test_a_2000x3000_image_segments_tiled_in_a_fraction_of_the_untiled_memory(tiny_run):
    """Peak resident memory of one process while it segments a 2000x3000 image, above what it held before."""
    proc = run_script("-c", MEMORY_PROBE, tiny_run["folder"])
    growth = json.loads(proc.stdout.strip().splitlines()[-1])
    probabilities_bytes = 2000 * 3000 * 11 * 4  # the whole image's probabilities as float32: 264 MB
    assert growth["untiled"] > probabilities_bytes  # the untiled net holds at least that, at full resolution
    assert growth["tiled"] < probabilities_bytes / 2
    assert growth["tiled"] < growth["untiled"] / 5

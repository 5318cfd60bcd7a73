"""Palettes, colourised labels, overlays, legends, panels."""
import numpy as np
import pytest
from PIL import Image

from utils import viz

PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_voc_colormap_matches_the_published_colours():
    cmap = viz.voc_colormap(256)
    assert cmap[:5] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128)]
    assert cmap[15] == (192, 128, 128) and cmap[255] == (224, 224, 192)
    assert len(set(cmap)) == 256


def test_colorize_maps_classes_and_hides_ignore_and_stray_values():
    label = np.array([[0, 1], [2, 255]])
    colours = viz.colorize(label, PALETTE, ignore_label=255)
    assert colours.dtype == np.uint8 and colours.shape == (2, 2, 3)
    np.testing.assert_array_equal(colours, [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [0, 0, 0]]])
    np.testing.assert_array_equal(viz.colorize(np.array([[7]]), PALETTE), [[[0, 0, 0]]])
    np.testing.assert_array_equal(viz.colorize(np.array([[1]]), PALETTE, 1, ignore_color=(9, 9, 9)), [[[9, 9, 9]]])


def test_overlay_blends_and_leaves_ignored_pixels_alone():
    image = np.full((2, 2, 3), 100, np.uint8)
    label = np.array([[0, 1], [2, 11]])
    np.testing.assert_array_equal(viz.overlay(image, label, PALETTE, alpha=0.0, ignore_label=11), image)
    full = viz.overlay(image, label, PALETTE, alpha=1.0, ignore_label=11)
    np.testing.assert_array_equal(full[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(full[1, 1], [100, 100, 100])  # ignore: the image shows through
    half = viz.overlay(image.astype(np.float32), label, PALETTE, alpha=0.5, ignore_label=11)
    np.testing.assert_array_equal(half[0, 1], [50, 178, 50])
    with pytest.raises(ValueError, match="differ in size"):
        viz.overlay(image, np.zeros((3, 2)), PALETTE)


def test_classes_present():
    label = np.array([[0, 2, 2], [11, 5, 0]])
    assert viz.classes_present(label, num_classes=3, ignore_label=11) == [0, 2]


def test_legend_draws_one_swatch_per_class():
    small = viz.legend(["sky", "road", "car"], PALETTE, classes=[0, 2])
    big = viz.legend(["sky", "road", "car"], PALETTE)
    assert isinstance(small, Image.Image) and big.height > small.height
    pixels = {tuple(p) for p in np.asarray(small).reshape(-1, 3)}
    assert (255, 0, 0) in pixels and (0, 0, 255) in pixels and (0, 255, 0) not in pixels
    wide = viz.legend(["c%d" % i for i in range(3)], PALETTE, columns=3)
    assert wide.width > big.width and wide.height < big.height


def test_side_by_side_and_stack_vertical_geometry_and_content():
    a = np.zeros((10, 20, 3), np.uint8)
    b = Image.new("RGB", (5, 30), (255, 255, 0))
    row = viz.side_by_side([a, b], gap=3)
    assert row.size == (28, 30)
    assert row.getpixel((25, 20)) == (255, 255, 0) and row.getpixel((0, 0)) == (0, 0, 0)
    assert row.getpixel((0, 20)) == (255, 255, 255)  # background below the shorter panel
    titled = viz.side_by_side([a, b], titles=["image", "label"])
    assert titled.height > 30
    column = viz.stack_vertical([row, a], gap=2)
    assert column.size == (28, 42)
    with pytest.raises(ValueError):
        viz.side_by_side([])


def test_overlay_with_legend_lists_only_present_classes():
    image = np.zeros((20, 30, 3), np.uint8)
    label = np.zeros((20, 30), np.int64)
    label[:, 15:] = 1
    picture = viz.overlay_with_legend(image, label, ["sky", "road", "car"], PALETTE, ignore_label=255, title="x")
    pixels = {tuple(p) for p in np.asarray(picture).reshape(-1, 3)}
    assert (255, 0, 0) in pixels and (0, 255, 0) in pixels and (0, 0, 255) not in pixels
    assert picture.width > 60

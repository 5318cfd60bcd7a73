"""Test-time geometry: the input pipeline's resize / pad run forwards, and undone, inside the graph.

The image's larger side is scaled to `pixels` (bilinear, half-pixel centres),
normalised, placed top-left on a PxP canvas padded with zeros; the logits are
cropped back to the valid `scaled_size(h, w, pixels)` region and resized
bilinearly to h x w, so class maps and probabilities always come back at the
original resolution.  `pixels=0` keeps the native size.  Shared by the
Segmenter (test.py, the notebook, movies) and the exported SavedModel.

Tiling (sliding windows) cuts that same net input into overlapping windows
of `tile` net-input pixels: the scale factor stays the whole image's (what
`pixels` and the test scale make of it, the scale the net was trained at
when `pixels` is as trained), only the context each net call sees shrinks.
`tile_grid` lays the windows out in original pixels, `axis_window` gives
each a raised-cosine cross-fade where it overlaps a neighbour, so adjacent
windows' weights sum to one there and no seam is hard.
"""
import collections
import math
import re

import numpy as np

from utils.compat import tf
from utils.data.pipeline import scaled_size


def scaled_canvas(height, width, pixels, scale=1.0):
    """(resized (h, w), canvas (h, w)) fed to the net for one image size and test scale.

    pixels > 0: larger side -> round(pixels * scale), canvas is square;
    pixels = 0: native size times `scale`, no canvas padding.
    """
    if pixels:
        side = max(1, int(round(pixels * scale)))
        return scaled_size(height, width, side), (side, side)
    resized = (max(1, int(round(height * scale))), max(1, int(round(width * scale))))
    return resized, resized


def to_original_resolution(logits, valid_size, original_size):
    """Crop canvas logits [N, P, P, C] to the valid region and resize them bilinearly to the original size.

    The exact inverse of the pipeline's geometry: the valid region is the
    top-left `valid_size` = scaled_size(h, w, P), everything beyond is padding.
    """
    cropped = logits[:, :valid_size[0], :valid_size[1], :]
    return tf.image.resize_bilinear(cropped, original_size, half_pixel_centers=True)


def net_probabilities(logits_fn, preprocess, images, resized_size, canvas):
    """Softmax probabilities at the size of `images` for one test scale: resize, normalise, pad, net, undo.

    canvas: static (h, w) of the padded net input, or None to feed the resized image as it is.
    """
    net_input = preprocess(tf.image.resize_bilinear(images, resized_size, half_pixel_centers=True))
    if canvas is not None:
        pad = [[0, 0], [0, canvas[0] - resized_size[0]], [0, canvas[1] - resized_size[1]], [0, 0]]
        net_input = tf.pad(net_input, pad)
        net_input.set_shape([None, canvas[0], canvas[1], 3])
    return tf.nn.softmax(to_original_resolution(logits_fn(net_input), resized_size, tf.shape(images)[1:3]))


def scaled_size_op(image_hw, pixels):
    """In-graph `utils.data.pipeline.scaled_size`: larger side -> pixels, rounded half up, at least 1."""
    height, width = image_hw[0], image_hw[1]
    larger = tf.maximum(height, width)
    return tf.stack([tf.maximum(1, (height * pixels + larger // 2) // larger),
                     tf.maximum(1, (width * pixels + larger // 2) // larger)])


def same_size_batches(sizes, batch_size):
    """Index lists of at most batch_size images sharing one (h, w), in first-appearance order."""
    groups = {}
    for index, size in enumerate(sizes):
        groups.setdefault(tuple(size), []).append(index)
    batches = []
    for indices in groups.values():
        batches.extend(indices[i:i + batch_size] for i in range(0, len(indices), batch_size))
    return batches


def parse_scales(scales):
    """'0.75,1,1.25' or a sequence of numbers -> tuple of positive floats."""
    if isinstance(scales, str):
        scales = [s for s in scales.replace(" ", "").split(",") if s]
    values = tuple(float(s) for s in (scales if scales is not None else (1.0,)))
    if not values or any(s <= 0 for s in values):
        raise ValueError("scales must be positive numbers, got %r" % (scales,))
    return values


# size (h, w) of every window in original pixels; rows / cols: window start offsets; ramps (h, w): cross-fade widths
TileGrid = collections.namedtuple("TileGrid", "size rows cols ramps")


def parse_tile(tile):
    """'256x384', '256', 256 or (256, 384) -> (height, width) net-input pixels; None, 0, '' or 'none' -> None."""
    if tile is None or tile is False or (isinstance(tile, str) and tile.strip().lower() in ("", "0", "none")):
        return None
    if isinstance(tile, str):
        match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", tile)
        if not match:
            raise ValueError("tile %r: expected HxW net-input pixels, e.g. 256x256 (or 256)" % tile)
        tile = (int(match.group(1)), int(match.group(2) or match.group(1)))
    elif np.ndim(tile) == 0:
        if int(tile) == 0:
            return None
        tile = (int(tile), int(tile))
    tile = tuple(int(t) for t in tile)
    if len(tile) != 2 or min(tile) < 1:
        raise ValueError("tile %r: expected two positive sizes HxW" % (tile,))
    return tile


def check_overlap(overlap):
    """The tile overlap as a float in [0, 1): the share of a window its neighbour also covers."""
    overlap = float(overlap)
    if not 0.0 <= overlap < 1.0:
        raise ValueError("tile overlap must be in [0, 1), got %g" % overlap)
    return overlap


def _axis_tiles(length, net_length, tile, overlap):
    """(window length, start offsets, cross-fade width) along one image axis of `length` original pixels."""
    window = min(length, max(1, int(round(tile * length / float(net_length)))))
    stride = max(1, int(round(window * (1.0 - overlap))))
    count = 1 if window >= length else int(math.ceil((length - window) / float(stride))) + 1
    starts = [int(round(i * (length - window) / float(count - 1))) for i in range(count)] if count > 1 else [0]
    return window, starts, window - stride


def tile_grid(image_size, net_size, tile, overlap):
    """The windows over one image, or None when its net input fits in one tile (then nothing is tiled).

    image_size: (h, w) original pixels; net_size: (h, w) of the net input at
    scale 1 (scaled_canvas(h, w, pixels)[0]); tile: (h, w) net-input pixels.
    Windows are `tile` net-input pixels (the image where it is smaller), spaced
    evenly with at least `overlap` of a window shared by neighbours, the last
    one flush with the image's far edge.
    """
    if net_size[0] <= tile[0] and net_size[1] <= tile[1]:
        return None
    height, rows, ramp_h = _axis_tiles(image_size[0], net_size[0], tile[0], overlap)
    width, cols, ramp_w = _axis_tiles(image_size[1], net_size[1], tile[1], overlap)
    return TileGrid((height, width), rows, cols, (ramp_h, ramp_w))


def axis_window(length, ramp, fade_in, fade_out):
    """1-D blending weights of a window: 1 inside, a raised-cosine ramp of `ramp` pixels at an end that a
    neighbour overlaps (fade_in: the start, fade_out: the end).  Where two neighbours' ramps meet they sum to 1;
    every weight is > 0."""
    weights = np.ones(length, np.float32)
    ramp = min(int(ramp), length)
    if ramp > 0:
        rising = (0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)).astype(np.float32)
        if fade_in:
            weights[:ramp] = np.minimum(weights[:ramp], rising)
        if fade_out:
            weights[length - ramp:] = np.minimum(weights[length - ramp:], rising[::-1])
    return weights

"""Test-time geometry: the input pipeline's resize / pad run forwards, and undone, inside the graph.

The image's larger side is scaled to `pixels` (bilinear, half-pixel centres),
normalised, placed top-left on a PxP canvas padded with zeros; the logits are
cropped back to the valid `scaled_size(h, w, pixels)` region and resized
bilinearly to h x w, so class maps and probabilities always come back at the
original resolution.  `pixels=0` keeps the native size.  Shared by the
Segmenter (test.py, the notebook, movies) and the exported SavedModel.
"""
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

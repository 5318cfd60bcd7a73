"""Pictures of segmentations: palettes, colourised label maps, overlays, legends, panels.

Numpy in, numpy or PIL out, no TensorFlow: the converter, the label checker,
test.py and the notebook all draw with the same few functions.

Conventions: images are HxWx3 uint8 RGB (floats in [0, 255] are accepted),
label maps are HxW integer class indices, a palette is a sequence of (r, g, b)
per class.  Pixels equal to `ignore_label` (or outside the palette) are drawn
in `ignore_color` and left untouched by overlays.
"""
import numpy as np
from PIL import Image, ImageDraw, ImageFont

IGNORE_COLOR = (0, 0, 0)


def voc_colormap(num_classes=256):
    """The PASCAL VOC bit-interleaved colormap: distinct colours for any class count."""
    colors = np.zeros((num_classes, 3), np.uint8)
    for index in range(num_classes):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        colors[index] = (r, g, b)
    return [tuple(int(c) for c in row) for row in colors]


def color_lut(palette, ignore_label=None, ignore_color=IGNORE_COLOR):
    """256-entry lookup table (uint8 [256, 3]): class index -> colour.

    Indices beyond the palette get `ignore_color`, so a stray value is visible
    as 'no class' instead of crashing the drawing.
    """
    lut = np.empty((256, 3), np.uint8)
    lut[:] = ignore_color
    colors = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
    lut[:len(colors)] = colors
    if ignore_label is not None and 0 <= ignore_label < 256:
        lut[ignore_label] = ignore_color
    return lut


def _as_label(label):
    label = np.asarray(label)
    if label.ndim == 3 and label.shape[-1] == 1:
        label = label[..., 0]
    if label.ndim != 2:
        raise ValueError("label map must be HxW, got shape %s" % (label.shape,))
    return label


def _as_rgb(image):
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError("image must be HxWx3, got shape %s" % (image.shape,))
    image = image[..., :3]
    if image.dtype != np.uint8:
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image


def colorize(label, palette, ignore_label=None, ignore_color=IGNORE_COLOR):
    """HxW class indices -> HxWx3 uint8 colour image."""
    label = _as_label(label).astype(np.int64)
    lut = color_lut(palette, ignore_label, ignore_color)
    return lut[np.clip(label, 0, 255)] if label.size else np.zeros(label.shape + (3,), np.uint8)


def overlay(image, label, palette, alpha=0.5, ignore_label=None):
    """Alpha-blend the colourised label over the image; ignore pixels stay as the image.

    alpha=0 returns the image, alpha=1 the pure colour map (outside ignore).
    """
    image = _as_rgb(image)
    label = _as_label(label)
    if image.shape[:2] != label.shape:
        raise ValueError("image %s and label %s differ in size" % (image.shape[:2], label.shape))
    colors = colorize(label, palette, ignore_label).astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colors
    keep = _ignored(label, len(palette), ignore_label)
    blended[keep] = image[keep]
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def _ignored(label, num_classes, ignore_label):
    mask = (label < 0) | (label >= num_classes)
    if ignore_label is not None:
        mask |= label == ignore_label
    return mask


def classes_present(label, num_classes, ignore_label=None):
    """Sorted class indices that occur in `label` (ignore and out-of-range left out)."""
    values = np.unique(_as_label(label))
    return [int(v) for v in values if 0 <= v < num_classes and v != ignore_label]


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def legend(class_names, palette, classes=None, swatch=14, columns=1, font_size=12,
           background=(255, 255, 255), text_color=(0, 0, 0)):
    """PIL image listing colour swatch + name for `classes` (default: all classes)."""
    classes = list(range(len(class_names))) if classes is None else list(classes)
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = ["%d %s" % (c, class_names[c]) for c in classes]
    text_w = max([int(probe.textlength(t, font=font)) for t in labels] + [1])
    row_h = max(swatch, font_size) + 4
    col_w = swatch + 6 + text_w + 10
    rows = max(1, -(-len(classes) // max(1, columns)))
    canvas = Image.new("RGB", (col_w * max(1, columns) + 4, row_h * rows + 4), background)
    draw = ImageDraw.Draw(canvas)
    for i, (c, text) in enumerate(zip(classes, labels)):
        x = 4 + (i // rows) * col_w
        y = 4 + (i % rows) * row_h
        draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=tuple(palette[c]), outline=(0, 0, 0))
        draw.text((x + swatch + 6, y + (swatch - font_size) // 2), text, fill=text_color, font=font)
    return canvas


def legend_strip(class_names, palette, width, font_size=None, background=(32, 32, 32), text_color=(255, 255, 255)):
    """uint8 [h, width, 3]: every class's swatch and name in rows that wrap at `width` (a movie's legend).

    All classes, not just the ones present, so every frame gets the same strip; the height is even (H.264's
    yuv420p needs even sizes).  The font grows with the width: 12 px at 480, 24 at 1920.
    """
    font_size = font_size or max(10, min(24, int(width) // 80 + 6))
    font, swatch, gap = _font(font_size), font_size, font_size
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    items = [(c, name, swatch + 4 + int(probe.textlength(name, font=font))) for c, name in enumerate(class_names)]
    rows, row, used = [], [], gap // 2
    for item in items:
        if row and used + item[2] > width - gap // 2:
            rows.append(row)
            row, used = [], gap // 2
        row.append(item)
        used += item[2] + gap
    rows.append(row)
    row_h = font_size + 6
    height = len(rows) * row_h + 4
    canvas = Image.new("RGB", (int(width), height + height % 2), background)
    draw = ImageDraw.Draw(canvas)
    for r, items_in_row in enumerate(rows):
        x, y = gap // 2, 2 + r * row_h + 3
        for c, name, item_w in items_in_row:
            draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=tuple(palette[c]), outline=text_color)
            draw.text((x + swatch + 4, y), name, fill=text_color, font=font)
            x += item_w + gap
    return np.asarray(canvas)


def to_pil(array_or_image):
    """numpy (HxW labels are NOT colourised here; colourise first) or PIL -> RGB PIL image."""
    if isinstance(array_or_image, Image.Image):
        return array_or_image.convert("RGB")
    return Image.fromarray(_as_rgb(array_or_image))


def side_by_side(panels, titles=None, gap=4, background=(255, 255, 255), font_size=14):
    """Concatenate images horizontally (top-aligned), optionally with a title above each."""
    images = [to_pil(p) for p in panels]
    if not images:
        raise ValueError("side_by_side needs at least one panel")
    title_h = font_size + 6 if titles else 0
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    height = max(im.height for im in images) + title_h
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    font = _font(font_size)
    x = 0
    for i, im in enumerate(images):
        canvas.paste(im, (x, title_h))
        if titles and i < len(titles) and titles[i]:
            draw.text((x + 2, 2), str(titles[i]), fill=(0, 0, 0), font=font)
        x += im.width + gap
    return canvas


def stack_vertical(panels, gap=4, background=(255, 255, 255)):
    """Concatenate images vertically (left-aligned), e.g. several side_by_side rows."""
    images = [to_pil(p) for p in panels]
    if not images:
        raise ValueError("stack_vertical needs at least one panel")
    width = max(im.width for im in images)
    height = sum(im.height for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), background)
    y = 0
    for im in images:
        canvas.paste(im, (0, y))
        y += im.height + gap
    return canvas


def overlay_with_legend(image, label, class_names, palette, alpha=0.5, ignore_label=None, title=None):
    """The label checker's picture: overlay | colour map, plus a legend of the classes present."""
    label = _as_label(label)
    present = classes_present(label, len(class_names), ignore_label)
    row = side_by_side([overlay(image, label, palette, alpha, ignore_label),
                        colorize(label, palette, ignore_label)],
                       titles=[title or "overlay", "label"])
    return side_by_side([row, legend(class_names, palette, present)])

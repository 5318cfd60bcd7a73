"""Which images the bootstrap resamples together: whole video sequences, blocks of consecutive frames, or images.

CamVid's images are consecutive frames of a few videos; neighbouring frames
are near-copies.  Resampling single images treats a hundred correlated frames
as a hundred independent draws, so the interval comes out too narrow for a
new scene.  `--bootstrap_by sequence` resamples whole sequences instead.  A
split of fewer than MIN_SEQUENCES sequences (CamVid's validation set is one,
0016E5; its test set two; Cityscapes' validation three cities) is too few to
resample: it falls back to blocks of consecutive frames within each
sequence, as long as the per-image scores stay correlated (the first lag
whose autocorrelation falls inside the 95 % band of white noise, 2/sqrt(n)),
or `block:N` frames.

Sequences by family: CamVid and Cityscapes file names start with the
sequence (CamVid: 0016E5_07959.png) or city (aachen_000000_000019_...), the
part before the first '_'; the other families have none, so `sequence` means
single images there.
"""
import numpy as np

MODES = ("auto", "sequence", "block", "image")
SEQUENCE_FAMILIES = ("camvid", "cityscapes")
MIN_SEQUENCES = 5  # fewer clusters than this make a degenerate bootstrap: blocks within sequences instead


def sequence_of(family, filename):
    """The sequence (video, city) an image of `family` belongs to, or None where the family has none."""
    if family not in SEQUENCE_FAMILIES:
        return None
    name = str(filename).rsplit("/", 1)[-1]
    return name.split("_", 1)[0] if "_" in name else None


def parse_mode(text):
    """'auto' | 'sequence' | 'image' | 'block' | 'block:N' -> (mode, N or None); ValueError names the flag."""
    text = str(text or "auto").strip().lower()
    if text.startswith("block:"):
        try:
            length = int(text.split(":", 1)[1])
        except ValueError:
            length = 0
        if length < 1:
            raise ValueError("--bootstrap_by %s: block:N needs a length N >= 1" % text)
        return "block", length
    if text not in MODES:
        raise ValueError("--bootstrap_by %s: expected one of %s or block:N" % (text, ", ".join(MODES)))
    return text, None


def block_length(scores):
    """Frames per block: the first lag at which the autocorrelation of the per-image scores (in file order)
    falls inside the white-noise band 2/sqrt(n); at least 1, at most n/4."""
    values = np.asarray([s for s in scores if s is not None], np.float64)
    n = len(values)
    if n < 8:
        return 1
    centred = values - values.mean()
    variance = float(np.dot(centred, centred))
    if variance == 0:
        return 1
    band = 2.0 / np.sqrt(n)
    for lag in range(1, max(2, n // 4)):
        if np.dot(centred[:-lag], centred[lag:]) / variance < band:
            return lag
    return max(1, n // 4)


def clusters_for(filenames, family, mode="auto", scores=None):
    """(cluster id per image, how they were formed) for the images of a split, in file order.

    scores: per-image mIoU in file order (for the automatic block length).
    """
    mode, length = parse_mode(mode)
    n = len(filenames)
    if mode == "auto":
        mode = "sequence" if family in SEQUENCE_FAMILIES else "image"
    if mode == "image":
        return list(range(n)), "image (%d clusters)" % n
    sequences = [sequence_of(family, name) for name in filenames]
    if any(s is None for s in sequences):
        sequences = [None] * n
    if mode == "sequence":
        if sequences[0] is None:
            return list(range(n)), "image (%s has no sequences; %d clusters)" % (family, n)
        distinct = sorted(set(sequences))
        if len(distinct) >= MIN_SEQUENCES:
            return sequences, "sequence (%d clusters)" % len(distinct)
        why = ("a single sequence, %s: " % distinct[0] if len(distinct) == 1 else
               "%d sequences (%s), fewer than %d: " % (len(distinct), ", ".join(distinct), MIN_SEQUENCES))
    else:
        why = ""
    if length is None:
        length = block_length(scores if scores is not None else [])
        why += "block of %d consecutive frames from the autocorrelation of per-image mIoU" % length
    else:
        why += "block of %d consecutive frames" % length
    ids, position, previous = [], 0, object()
    for sequence in sequences:  # blocks never straddle two sequences
        position = 0 if sequence != previous else position + 1
        previous = sequence
        ids.append(position // length if sequence is None else "%s:%d" % (sequence, position // length))
    return ids, "%s (%d clusters)" % (why, len(set(ids)))

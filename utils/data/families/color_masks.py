"""RGB masks painted in a dataset's colours -> class indices: for the folder family and CVAT's exports."""
import numpy as np

from utils.data.families.base import LabelValueError


def labels_from_colors(rgb, values, name, listed_in):
    """uint8 HxWx3 `rgb` -> uint8 HxW through `values` {(r, g, b): label value}; a colour not there is an error
    naming the file `name`, the first colours and `listed_in` (the file that lists the colours)."""
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    label = np.full(codes.shape, -1, np.int64)
    for (r, g, b), value in values.items():
        label[codes == ((r << 16) | (g << 8) | b)] = value
    if (label < 0).any():
        bad = np.unique(codes[label < 0])[:10]
        raise LabelValueError("%s: mask colours %s are not in %s"
                              % (name, [(int(c) >> 16 & 255, int(c) >> 8 & 255, int(c) & 255) for c in bad], listed_in))
    return label.astype(np.uint8)

"""Read a PyTorch state dict from a file, as numpy: .safetensors without torch, .pth through torch's safe loader.

    tensors = read_state_dict("resnet18.safetensors")   # {key: numpy array}, in the file's order

The format is told by the file's first bytes, not its name: a safetensors file
starts with its header's length and '{', torch.save writes a zip archive (a
pickle before torch 1.6).  torch is optional (CI has none): without it a .pth
file gets the one-line command that turns it into safetensors.  Every problem
is a `WeightsFileError` naming the file and, where there is one, the first
tensor concerned; a truncated safetensors file is checked against its own
header, which says where each tensor should lie.
"""
import importlib.util
import json
import os
import re
import struct

import numpy as np
from safetensors import SafetensorError, safe_open

FORMATS = "a .safetensors file (timm, Hugging Face) or a torch .pth / .pt state dict (torchvision)"
# torch.save containers that hold the state dict under one key (training scripts, timm's checkpoints).
WRAPPERS = ("state_dict", "model")
TO_SAFETENSORS = ("python -c \"import torch; from safetensors.torch import save_file; "
                  "save_file(torch.load('{src}', map_location='cpu', weights_only=True), '{dst}')\"")


class WeightsFileError(ValueError):
    """The file cannot be read as a state dict: `path`, and the first offending `tensor` where there is one."""

    def __init__(self, path, problem, tensor=None):
        self.path, self.problem, self.tensor = path, problem, tensor
        super().__init__("%s: %s" % (path, problem))


def file_format(path):
    """'safetensors' or 'torch', from the first bytes; anything else is an error naming what was found."""
    if not os.path.isfile(path):
        raise WeightsFileError(path, "no such file")
    with open(path, "rb") as handle:
        head = handle.read(9)
    if not head:
        raise WeightsFileError(path, "the file is empty; expected " + FORMATS)
    if head[8:9] == b"{":
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return "torch"
    raise WeightsFileError(path, "unknown format (it starts with %r); expected %s" % (head[:8], FORMATS))


def safetensors_header(path):
    """{key: {'dtype', 'shape', 'data_offsets'}} in the order the tensors lie in the file, each checked to fit in it."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if 8 + length > size:
            raise WeightsFileError(path, "truncated: its safetensors header alone needs %d bytes, the file has %d"
                                   % (8 + length, size))
        try:
            header = json.loads(handle.read(length))
            header.pop("__metadata__", None)
            entries = sorted(header.items(), key=lambda item: int(item[1]["data_offsets"][0]))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise WeightsFileError(path, "corrupt safetensors header (%s: %s)" % (type(error).__name__, error))
    for key, info in entries:
        end = 8 + length + int(info["data_offsets"][1])
        if end > size:
            raise WeightsFileError(path, "truncated: tensor %s should end at byte %d, the file has %d bytes "
                                         "(an interrupted download? fetch it again)" % (key, end, size), tensor=key)
    return dict(entries), 8 + length


def _bfloat16(path, info, data_start):
    """numpy has no bfloat16: read the raw 16 bits and widen them to float32 (exact)."""
    begin, end = (int(o) for o in info["data_offsets"])
    raw = np.fromfile(path, dtype="<u2", count=(end - begin) // 2, offset=data_start + begin)
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


def read_safetensors(path):
    header, data_start = safetensors_header(path)
    tensors, key = {}, None
    try:
        with safe_open(path, framework="np") as handle:
            for key, info in header.items():
                if info["dtype"] == "BF16":
                    tensors[key] = _bfloat16(path, info, data_start)
                else:
                    tensors[key] = handle.get_tensor(key)
    except (SafetensorError, TypeError, ValueError) as error:
        raise WeightsFileError(path, "unreadable safetensors file (%s)" % error, tensor=key)
    return tensors


def read_torch(path):
    """torch.load(weights_only=True): plain tensors and containers only, no code runs from the file."""
    if importlib.util.find_spec("torch") is None:
        stem = os.path.splitext(path)[0]
        raise WeightsFileError(path, "a PyTorch file, and torch is not installed here.  Convert it to safetensors "
                                     "where torch is installed:\n  %s\nthen convert %s.safetensors"
                               % (TO_SAFETENSORS.format(src=path, dst=stem + ".safetensors"), stem))
    # deferred: torch is optional (never in requirements) and slow to import; only .pth files need it.
    import torch
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a bad file
        said = re.sub(r"\x1b\[[0-9;]*m", "", (str(error).strip().splitlines() or [""])[0])  # no terminal colours
        said = said if len(said) <= 160 else said[:160] + "..."
        raise WeightsFileError(path, "torch cannot load it (%s: %s); a truncated download, or a whole pickled "
                                     "model instead of its state_dict()?" % (type(error).__name__, said))
    for wrapper in WRAPPERS:
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
            break
    if not isinstance(loaded, dict):
        raise WeightsFileError(path, "holds a %s, not a state dict" % type(loaded).__name__)
    tensors = {}
    for key, value in loaded.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsFileError(path, "%s is a %s, not a tensor: not a state dict" % (key, type(value).__name__),
                                   tensor=key)
        value = value.detach().cpu()
        tensors[key] = (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    return tensors


def read_state_dict(path):
    """{key: numpy array} from a .safetensors or torch file (see the module docstring); WeightsFileError otherwise."""
    path = os.fspath(path)
    return read_safetensors(path) if file_format(path) == "safetensors" else read_torch(path)


__all__ = ["FORMATS", "WeightsFileError", "file_format", "read_state_dict", "read_safetensors", "read_torch"]

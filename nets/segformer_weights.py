"""Hugging Face SegFormer / MiT weights -> our checkpoints, and the utils/convert_weights.py command for every family.

The Hub's files (`model.safetensors` of nvidia/mit-b0..b2, the ImageNet encoders, and of the SegFormer models
fine-tuned on ADE20K / Cityscapes) carry over name by name (nets/mit.py gives the rule):

    segformer.encoder.block.0.1.attention.self.sr.weight [C, C, r, r] -> mit_b0/block/0/1/attention/self/sr/weights [r, r, C, C]
    segformer.encoder.block.0.1.mlp.dense1.weight [4C, C]             -> mit_b0/block/0/1/mlp/dense1/weights [C, 4C]
    segformer.encoder.block.0.1.mlp.dwconv.dwconv.weight [4C, 1, 3, 3]-> .../mlp/dwconv/dwconv/weights [3, 3, 4C, 1]
    classifier.weight [1000, C4] (ImageNet)                           -> mit_b0/classifier/weights [C4, 1000]
    decode_head.linear_c.<i>.proj.weight [D, C_i]                     -> decoder/linear_c/<i>/proj/weights [1, 1, C_i, D]
    decode_head.linear_fuse.weight [D, 4D, 1, 1]                      -> decoder/linear_fuse/weights [1, 1, 4D, D]
    decode_head.batch_norm.weight / bias / running_mean / running_var -> decoder/batch_norm/gamma / beta / moving_*
    decode_head.classifier.weight [K, D, 1, 1], .bias                 -> decoder/classifier/weights [1, 1, D, K], biases

(`SegformerModel`'s own files have `encoder.` where the others have `segformer.encoder.`.)  The encoder's
variables to fill are the net's own, built in a throwaway graph; the head's follow from the file's widths and
the SegFormer decoder's names (decoders/segformer.py; tests/test_segformer.py builds it to check).  As for ResNet
(nets/torch_weights.py), a tensor that maps to nothing, a variable no tensor fills or a shape that differs stops
the conversion naming the first such tensor.

    python utils/convert_weights.py mit-b0/model.safetensors                 # -> /data/models/mit_b0.ckpt
    python utils/convert_weights.py segformer-b0-ade/model.safetensors       # -> /data/models/segformer_mit_b0.ckpt
"""
import os
import sys

import numpy as np

from nets import mit, registry, torch_weights
from utils.compat import tf

NAMES = tuple(mit.VARIANTS)
ENCODER_PREFIXES = ("segformer.encoder.", "encoder.")
HEAD_PREFIX = "decode_head."
DECODER_SCOPE = "decoder"  # decoders.base.DECODER_SCOPE (nets/ sits below decoders/)
BATCH_NORM = torch_weights.BATCH_NORM
HUB = {name: "nvidia/" + name.replace("_", "-") for name in NAMES}


def is_segformer(tensors):
    """True when the keys are a SegFormer / MiT state dict's (Hub names, or transformers 5's in-memory ones)."""
    keys = [k[len("module."):] if k.startswith("module.") else k for k in tensors]
    return any(k.startswith(ENCODER_PREFIXES + (HEAD_PREFIX,)) or ".patch_embeddings." in k for k in keys)


def _leaf(parts, norm):
    leaf = parts[-1]
    if norm:
        return BATCH_NORM.get(leaf) if leaf in BATCH_NORM else None
    return {"weight": "weights", "bias": "biases"}.get(leaf)


def variable_name(key, scope):
    """Our variable for a Hub SegFormer / MiT key (`module.` already dropped), or None."""
    if key.startswith(HEAD_PREFIX):
        parts = key[len(HEAD_PREFIX):].split(".")
        norm = parts[0] == "batch_norm"
        if not ((parts[0] == "linear_c" and len(parts) == 4 and parts[1].isdigit() and parts[2] == "proj")
                or (parts[0] in ("linear_fuse", "batch_norm", "classifier") and len(parts) == 2)):
            return None
        leaf = _leaf(parts, norm)
        return "/".join([DECODER_SCOPE] + parts[:-1] + [leaf]) if leaf else None
    if key in ("classifier.weight", "classifier.bias"):
        return scope + "/classifier/" + _leaf(key.split("."), False)
    prefix = next((p for p in ENCODER_PREFIXES if key.startswith(p)), None)
    if prefix is None:
        return None
    parts = key[len(prefix):].split(".")
    if len(parts) < 3:
        return None
    leaf = _leaf(parts, any("norm" in part for part in parts[:-1]))
    return "/".join([scope] + parts[:-1] + [leaf]) if leaf else None


def to_tf_layout(name, array):
    """torch layout -> ours: Linear [out, in] -> [in, out] (the head's 1x1 convs: [1, 1, in, out]); conv
    [out, in, kh, kw] -> [kh, kw, in, out]; depthwise [C, 1, kh, kw] -> [kh, kw, C, 1]."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        return array.T[None, None] if name.startswith(DECODER_SCOPE + "/") else array.T
    if array.ndim == 4:
        return array.transpose(2, 3, 0, 1) if "/dwconv/" in name else array.transpose(2, 3, 1, 0)
    return array


def torch_shape(name, shape):
    """Inverse of to_tf_layout's shape change, to name an expected shape in torch's terms."""
    shape = tuple(shape)
    if len(shape) == 2:
        return (shape[1], shape[0])
    if len(shape) == 4:
        if "/dwconv/" in name:
            return (shape[2], shape[3], shape[0], shape[1])
        if name.startswith(DECODER_SCOPE + "/linear_c/"):
            return (shape[3], shape[2])
        return (shape[3], shape[2], shape[0], shape[1])
    return shape


def head_shapes(hidden_sizes, channels, classes):
    """The SegFormer decoder's variables ({name: shape}) over encoder widths `hidden_sizes`."""
    shapes = {}
    for i, width in enumerate(hidden_sizes):
        shapes["%s/linear_c/%d/proj/weights" % (DECODER_SCOPE, i)] = (1, 1, width, channels)
        shapes["%s/linear_c/%d/proj/biases" % (DECODER_SCOPE, i)] = (channels,)
    shapes[DECODER_SCOPE + "/linear_fuse/weights"] = (1, 1, len(hidden_sizes) * channels, channels)
    for leaf in ("gamma", "beta", "moving_mean", "moving_variance"):
        shapes[DECODER_SCOPE + "/batch_norm/" + leaf] = (channels,)
    shapes[DECODER_SCOPE + "/classifier/weights"] = (1, 1, channels, classes)
    shapes[DECODER_SCOPE + "/classifier/biases"] = (classes,)
    return shapes


def head_widths(tensors):
    """(channels D, classes K) of the file's decode head, from the tensors that say them (0 when absent)."""
    def dim(key, axis=0):
        found = [np.shape(v) for k, v in tensors.items() if k.endswith(HEAD_PREFIX + key)]
        return int(found[0][axis]) if found and len(found[0]) > axis else 0
    return dim("linear_fuse.weight") or dim("linear_c.0.proj.weight"), dim("classifier.weight") or dim("classifier.bias")


class SegformerMismatchError(torch_weights.StateDictMismatchError):
    keys = "Hugging Face SegFormer / MiT keys"

    def weights_of(self, encoder):
        return "%s weights" % HUB[encoder]


def expected_shapes(entry, tensors):
    """{name: shape} the file must fill: the encoder, its ImageNet classifier if the file has one (a SegFormer
    model has none), the SegFormer head if the file has one; and the head's (channels, classes) or None."""
    shapes = torch_weights.expected_shapes(entry)
    keys = [k[len("module."):] if k.startswith("module.") else k for k in tensors]
    if not any(k.startswith("classifier.") for k in keys):
        shapes = {n: s for n, s in shapes.items() if not n.startswith(entry.head_scope + "/")}
    head = None
    if any(k.startswith(HEAD_PREFIX) for k in keys):
        head = head_widths(tensors)
        shapes.update(head_shapes(mit.VARIANTS[entry.name].hidden_sizes, *head))
    return shapes, head


def convert(tensors, encoder=None, source="state dict"):
    """{Hub key: array} -> (Match with every expected variable filled, head (channels, classes) or None), or
    SegformerMismatchError.  encoder None: the MiT the file fits (told against the closest one if none does)."""
    if encoder is not None and encoder not in NAMES:
        raise ValueError("--encoder %s: a SegFormer / MiT file fills %s" % (encoder, ", ".join(NAMES)))
    found = []
    for name in [encoder] if encoder else NAMES:
        entry = registry.get(name)
        shapes, head = expected_shapes(entry, tensors)
        found.append((torch_weights.match(tensors, entry, shapes, source, naming=variable_name,
                                          to_ours=to_tf_layout, shape_in_torch=torch_shape), head))
    best, head = min(found, key=lambda pair: pair[0].problems)
    if best.problems:
        hints = [] if encoder else ["(told against the closest net, %s; choose one with --encoder)" % best.encoder]
        if any(".stages." in "." + key for key, _ in best.unmapped):
            hints.append("(transformers 5 module names: write the file with model.save_pretrained(), which saves "
                         "the Hub's names)")
        raise SegformerMismatchError(best, "\n  ".join(hints))
    return best, head


def write_checkpoint(values, path):
    """Save `values` ({our name: array}) as checkpoint `path` (.index + .data), checked by name and shape."""
    def make_variables():
        return {name: tf.get_variable(name, value.shape, tf.float32, initializer=tf.zeros_initializer())
                for name, value in values.items()}

    def check(temp_prefix, variables):
        written = tf.train.load_checkpoint(temp_prefix).get_variable_to_shape_map()
        if {n: tuple(s) for n, s in written.items()} != {n: tuple(v.shape) for n, v in values.items()}:
            raise RuntimeError("the written checkpoint %s does not hold exactly the converted variables" % path)
    return torch_weights.save_values(make_variables, values, path, check)


def build_parser():
    return torch_weights.build_parser(
        description="Convert ImageNet / segmentation weights into seg-mentor checkpoints: torchvision / timm "
                    "ResNet-18 / 34 (-> %s), Hugging Face SegFormer / MiT-B0..B2 (nvidia/mit-b0 ..: -> mit_b0.ckpt "
                    "..; a SegFormer model's all-MLP head too, -> segformer_mit_b0.ckpt ..); %s."
                    % (", ".join(registry.get(n).checkpoint for n in torch_weights.TORCH_MODELS),
                       torch_weights.FORMATS), encoders=tuple(torch_weights.TORCH_MODELS) + NAMES)


def main(argv=None):
    """utils/convert_weights.py: SegFormer / MiT files here, the others to nets/torch_weights.py."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    tensors = torch_weights.read_weights(args)
    if isinstance(tensors, int):
        return tensors
    if not (args.encoder in NAMES or (args.encoder is None and is_segformer(tensors))):
        return torch_weights.convert_and_write(args, tensors)
    try:
        found, head = convert(tensors, args.encoder, source=args.weights)
    except (SegformerMismatchError, ValueError) as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    entry = registry.get(found.encoder)
    default = entry.checkpoint if head is None else "segformer_" + entry.checkpoint
    output = args.output or os.path.join(args.modelspath, default)
    if torch_weights.refuse_existing(output, args):
        return 2
    write_checkpoint(found.values, output)
    print("wrote %s: %d variables of %s%s (%d trainable parameters) from %s%s"
          % (output, len(found.values), found.encoder, "" if head is None else
             " and the SegFormer head (%d channels, %d classes)" % head, torch_weights.trainable_count(found.values),
             args.weights, "; ignored %d num_batches_tracked" % len(found.ignored) if found.ignored else ""))
    print("train with: python train.py --basenet %s --pretrained %s   (the encoder)" % (found.encoder, output))
    if head is not None:
        print("        or: python train.py --basenet %s --extended_arch SegFormer --segformer_channels %d "
              "--init_from %s   (encoder and head; a classifier of another class count stays new)"
              % (found.encoder, head[0], output))
    return 0


__all__ = ["NAMES", "SegformerMismatchError", "convert", "expected_shapes", "head_shapes", "is_segformer", "main",
           "to_tf_layout", "torch_shape", "variable_name", "write_checkpoint"]

"""torchvision / timm ResNet-18/34 weights -> seg-mentor checkpoints (`resnet_v1_18.ckpt`, `resnet_v1_34.ckpt`).

Our resnet_v1_18/34 compute torchvision's ResNet-18/34 (same layout, symmetric
padding, torchvision's max pool), so their weights carry over name by name:

    conv1.weight [out, in, kh, kw]        -> resnet_v1_18/conv1/weights [kh, kw, in, out]
    bn1.weight / bias / running_mean / running_var
                                          -> resnet_v1_18/conv1/BatchNorm/gamma / beta / moving_mean / moving_variance
    layer2.0.conv1.weight, layer2.0.bn1.* -> resnet_v1_18/block2/unit_1/res_block_v1/conv1/weights, .../BatchNorm/*
    layer2.0.downsample.0 / .1            -> resnet_v1_18/block2/unit_1/res_block_v1/shortcut/weights, .../BatchNorm/*
    fc.weight [out, in], fc.bias          -> resnet_v1_18/logits/weights [1, 1, in, out], .../biases

timm's resnet18/34 have torchvision's keys; a `module.` prefix (DataParallel)
is dropped and `num_batches_tracked` ignored.  The variables to fill are the
net's own, built in a throwaway graph, so a converted file restores with nothing
missing or unexpected: a tensor that maps to none of them, a variable no tensor
fills, or a shape that differs stops the conversion (`StateDictMismatchError`,
naming the first such tensor).  The command is utils/convert_weights.py:

    python utils/convert_weights.py resnet18-f37072fd.pth                # -> /data/models/resnet_v1_18.ckpt
    python utils/convert_weights.py model.safetensors --encoder resnet_v1_34 --output /tmp/r34.ckpt
"""
import argparse
import dataclasses
import os
import re
import shutil
import sys
import tempfile
from typing import List, Tuple

import numpy as np

from nets import checkpoints, registry
from nets.torch_files import FORMATS, WeightsFileError, read_state_dict
from utils.compat import slim, tf

# our encoder -> the torchvision / timm model whose state dict it takes
TORCH_MODELS = {"resnet_v1_18": "resnet18", "resnet_v1_34": "resnet34"}
BATCH_NORM = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
IGNORED = ("num_batches_tracked",)
PREFIXES = ("module.",)
_BOTTLENECK = re.compile(r"layer\d+\.\d+\.(conv3|bn3)\.")
_UNIT = re.compile(r"layer(\d+)\.(\d+)\.(conv\d|bn\d|downsample\.[01])\.(\w+)$")


def variable_name(key, scope):
    """Our variable name for a torchvision / timm ResNet key (prefix already dropped), or None."""
    if key in ("fc.weight", "fc.bias"):
        return "%s/logits/%s" % (scope, "weights" if key == "fc.weight" else "biases")
    if key == "conv1.weight":
        return scope + "/conv1/weights"
    if key.startswith("bn1.") and key[4:] in BATCH_NORM:
        return scope + "/conv1/BatchNorm/" + BATCH_NORM[key[4:]]
    found = _UNIT.match(key)
    if not found:
        return None
    block, index, layer, leaf = found.groups()
    unit = "%s/block%s/unit_%d/res_block_v1/" % (scope, block, int(index) + 1)
    if layer.startswith("downsample."):  # downsample.0 the 1x1 conv, downsample.1 its batch norm
        conv, batch_norm = "shortcut", layer.endswith("1")
    else:  # convN and its batch norm bnN
        conv, batch_norm = layer.replace("bn", "conv"), layer.startswith("bn")
    if batch_norm:
        return unit + conv + "/BatchNorm/" + BATCH_NORM[leaf] if leaf in BATCH_NORM else None
    return unit + conv + "/weights" if leaf == "weight" else None


def to_tf_layout(name, array):
    """torch layout -> ours: conv [out, in, kh, kw] -> [kh, kw, in, out], fc [out, in] -> 1x1 conv [1, 1, in, out]."""
    array = np.asarray(array, dtype=np.float32)
    if name.endswith("/logits/weights") and array.ndim == 2:
        return array.T[None, None]
    if name.endswith("/weights") and array.ndim == 4:
        return array.transpose(2, 3, 1, 0)
    return array


def torch_shape(name, shape):
    """Inverse of to_tf_layout's shape change, to name an expected shape in torch's terms."""
    shape = tuple(shape)
    if name.endswith("/logits/weights") and len(shape) == 4:
        return (shape[3], shape[2])
    if name.endswith("/weights") and len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    return shape


def build_net(entry):
    """The full ImageNet net, classifier included, in the current graph: {variable name: variable}."""
    images = tf.placeholder(tf.float32, [1, 64, 64, 3], name="images")
    with slim.arg_scope(entry.arg_scope_fn()):
        entry.net_fn(images, num_classes=entry.imagenet_classes, is_training=False)
    return {v.op.name: v for v in tf.model_variables() if v.op.name.startswith(entry.scope + "/")}


def expected_shapes(entry):
    with tf.Graph().as_default():
        return {name: tuple(var.shape.as_list()) for name, var in build_net(entry).items()}


def _shape(shape):
    return "[%s]" % ", ".join(str(d) for d in shape)


@dataclasses.dataclass
class Match:
    """A state dict laid against one net: the converted values, and everything that did not fit."""
    encoder: str
    source: str
    values: dict                                   # our name -> float32 array in our layout
    ignored: List[str]                             # num_batches_tracked
    unmapped: List[Tuple[str, tuple]]              # (key, shape): in the file, no variable of ours
    missing: List[Tuple[str, tuple]]               # (our name, torch shape): no tensor in the file
    wrong_shape: List[Tuple[str, tuple, tuple]]    # (key, file shape, expected torch shape)
    first: str = None                              # the first offending tensor (file order, then net order)

    @property
    def problems(self):
        return len(self.unmapped) + len(self.missing) + len(self.wrong_shape)


def match(tensors, entry, shapes, source="state dict", naming=None, to_ours=None, shape_in_torch=None):
    """Lay `tensors` ({torch key: array}, file order) over `shapes` (the net's variables) -> Match.

    naming(key, scope), to_ours(name, array), shape_in_torch(name, shape): another family's name and layout
    mapping (MiT's, nets/segformer_weights.py); default ResNet's."""
    naming, to_ours = naming or variable_name, to_ours or to_tf_layout
    shape_in_torch = shape_in_torch or torch_shape
    values, ignored, unmapped, wrong, offending, claimed = {}, [], [], [], [], set()
    for raw_key, array in tensors.items():
        key = next((raw_key[len(p):] for p in PREFIXES if raw_key.startswith(p)), raw_key)
        if key.rsplit(".", 1)[-1] in IGNORED:
            ignored.append(raw_key)
            continue
        name = naming(key, entry.scope)
        if name is None or name not in shapes or name in claimed:  # (in claimed: twice, with and without module.)
            unmapped.append((raw_key, tuple(np.shape(array))))
            offending.append(raw_key)
            continue
        claimed.add(name)
        converted = to_ours(name, array)
        if tuple(converted.shape) != shapes[name] or not np.issubdtype(np.asarray(array).dtype, np.floating):
            wrong.append((raw_key, tuple(np.shape(array)), shape_in_torch(name, shapes[name])))
            offending.append(raw_key)
            continue
        values[name] = converted
    missing = [(name, shape_in_torch(name, shape)) for name, shape in shapes.items() if name not in claimed]
    offending += [name for name, _ in missing]
    return Match(entry.name, source, values, ignored, unmapped, missing, wrong, offending[0] if offending else None)


class StateDictMismatchError(ValueError):
    """The state dict is not the net's: every unmapped, missing and mis-shaped tensor is in the message."""

    keys = "torchvision / timm keys"

    def weights_of(self, encoder):
        return "%s weights" % TORCH_MODELS[encoder]

    def __init__(self, found, hint=""):
        self.match = found
        self.first = found.first
        lines = ["%s does not hold %s for %s (%s): first offending tensor %s"
                 % (found.source, self.weights_of(found.encoder), found.encoder, self.keys, found.first)]
        for title, rows in (
                ("in the file, mapping to no variable of %s" % found.encoder,
                 ["%s %s" % (key, _shape(shape)) for key, shape in found.unmapped]),
                ("variables of %s no tensor in the file fills (torch shape)" % found.encoder,
                 ["%s %s" % (name, _shape(shape)) for name, shape in found.missing]),
                ("with a different shape or a non-float type (file vs expected torch shape)",
                 ["%s %s vs %s" % (key, _shape(got), _shape(want)) for key, got, want in found.wrong_shape])):
            if rows:
                lines.append("  %d %s:" % (len(rows), title))
                lines += ["    " + row for row in rows[:8]]
                if len(rows) > 8:
                    lines.append("    ... and %d more" % (len(rows) - 8))
        if hint:
            lines.append("  " + hint)
        super().__init__("\n".join(lines))


def convert(tensors, encoder=None, source="state dict"):
    """{torch key: array} -> Match with every variable of `encoder` filled, or StateDictMismatchError.

    encoder None: the one of TORCH_MODELS the state dict fits; if none fits, the
    error is told against the closest one.
    """
    if encoder is not None and encoder not in TORCH_MODELS:
        raise ValueError("--encoder %s: only %s take torchvision / timm weights (the others restore TF-Slim "
                         "model-zoo checkpoints as they are)" % (encoder, " and ".join(TORCH_MODELS)))
    candidates = [encoder] if encoder else list(TORCH_MODELS)
    found = [match(tensors, registry.get(name), expected_shapes(registry.get(name)), source) for name in candidates]
    best = min(found, key=lambda m: m.problems)
    if best.problems:
        hints = [] if encoder else ["(told against the closest net, %s; choose one with --encoder)" % best.encoder]
        if any(_BOTTLENECK.search(key) for key, _ in best.unmapped):
            hints.append("(bottleneck units: a ResNet-50/101? our resnet_v1_50/101 take the TF-Slim model-zoo "
                         "checkpoints, whose layout differs from torchvision's)")
        raise StateDictMismatchError(best, "\n  ".join(hints))
    return best


def write_checkpoint(entry, values, path):
    """Save `values` from the net's own graph as TF checkpoint `path` (.index + .data), checked by name on the way."""
    def check(temp_prefix, variables):
        _, report = checkpoints.check_encoder(temp_prefix, entry.scope)
        if report.unexpected or len(report.restored) != len(variables):
            raise RuntimeError("the written checkpoint does not restore exactly: " + report.summary())
    return save_values(lambda: build_net(entry), values, path, check)


def save_values(make_variables, values, path, check=None):
    """Assign `values` to the variables `make_variables()` makes in a new graph ({name: variable}) and save them as
    checkpoint `path`; `check(temp_prefix, variables)` may refuse the written file before it takes the name.

    Written under a temporary prefix next to `path` and renamed into place, so
    an interrupted conversion never leaves a half checkpoint under the real name.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".convert_weights-", dir=directory)
    try:
        with tf.Graph().as_default():
            variables = make_variables()
            feeds = {name: tf.placeholder(tf.float32, var.shape, name="value") for name, var in variables.items()}
            assign = tf.group(*[var.assign(feeds[name]) for name, var in variables.items()])
            with tf.Session() as sess:
                sess.run(assign, {feeds[name]: values[name] for name in variables})
                temp_prefix = os.path.join(scratch, "model")
                tf.train.Saver(var_list=variables, write_version=tf.train.SaverDef.V2).save(
                    sess, temp_prefix, write_meta_graph=False, write_state=False)
            if check is not None:
                check(temp_prefix, variables)
        for name in sorted(os.listdir(scratch), key=lambda n: n.endswith(".index")):  # the index last
            os.replace(os.path.join(scratch, name), path + name[len("model"):])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path


def trainable_count(values):
    return sum(v.size for name, v in values.items() if not name.endswith(("moving_mean", "moving_variance")))


def build_parser(description=None, encoders=tuple(TORCH_MODELS)):
    parser = argparse.ArgumentParser(description=description or (
        "Convert torchvision / timm ResNet-18 or ResNet-34 ImageNet weights (%s) into the "
        "checkpoint --pretrained restores (%s)." % (FORMATS, ", ".join(registry.get(n).checkpoint for n in TORCH_MODELS))))
    parser.add_argument("weights", help="the state dict: .safetensors (no torch needed) or .pth / .pt (needs torch)")
    parser.add_argument("--encoder", choices=sorted(encoders), default=None,
                        help="the net to fill (default: the one the state dict fits)")
    parser.add_argument("--output", default=None,
                        help="checkpoint prefix to write (default: <modelspath>/<the net's file>, e.g. "
                             "resnet_v1_18.ckpt -> .ckpt.index + .ckpt.data-00000-of-00001)")
    parser.add_argument("--modelspath", default=checkpoints.DEFAULT_MODELSPATH,
                        help="folder train.py looks in for ImageNet checkpoints (default %s)"
                             % checkpoints.DEFAULT_MODELSPATH)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --output")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's logs")
    return parser


def read_weights(args):
    """The tensors of --weights, or the exit code after one line saying why not (2: no file, 1: unreadable)."""
    if not os.path.isfile(args.weights):
        print("error: weights file not found: %s" % args.weights, file=sys.stderr)
        return 2
    try:
        return read_state_dict(args.weights)
    except WeightsFileError as error:
        print("error: %s" % error, file=sys.stderr)
        return 1


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    tensors = read_weights(args)
    return tensors if isinstance(tensors, int) else convert_and_write(args, tensors)


def refuse_existing(output, args):
    """True (after saying so) when `output` exists and --overwrite was not given."""
    if os.path.exists(output + ".index") and not args.overwrite:
        print("error: %s.index exists; pass --overwrite to replace it, or --output elsewhere" % output,
              file=sys.stderr)
        return True
    return False


def convert_and_write(args, tensors):
    """The command after reading the file: convert, refuse an existing output, write, say how to train."""
    try:
        found = convert(tensors, args.encoder, source=args.weights)
    except (StateDictMismatchError, ValueError) as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    entry = registry.get(found.encoder)
    output = args.output or os.path.join(args.modelspath, entry.checkpoint)
    if refuse_existing(output, args):
        return 2
    write_checkpoint(entry, found.values, output)
    print("wrote %s: %d variables of %s (%d trainable parameters, the classifier included) from %s%s"
          % (output, len(found.values), found.encoder, trainable_count(found.values), args.weights,
             "; ignored %d num_batches_tracked" % len(found.ignored) if found.ignored else ""))
    print("train with: python train.py --basenet %s --pretrained %s" % (found.encoder, output))
    return 0


__all__ = ["TORCH_MODELS", "StateDictMismatchError", "Match", "build_net", "convert", "convert_and_write", "main",
           "match", "save_values", "to_tf_layout", "torch_shape", "variable_name", "write_checkpoint"]

"""Model summary: parameters and multiply-accumulates (GMACs) of a built segmentation graph.

Counts come from the real graph (`arch.build_arch(...).build(...)`) at batch 1:
MACs of Conv2D, DepthwiseConv2dNative, Conv2DBackpropInput (transposed conv)
and MatMul from static shapes.  Batch norm, activations, pooling and resizing
are not counted (same convention as ../shared/tools/peer_bench and seg-mentor's
"GOPS", which are GMACs: ResNet-18 at 512x512 is 9.5).  Parameters are the
trainable variables (batch-norm moving statistics excluded).

    python arch.py --basenet resnet_v1_18 --extended_arch LinkNet --pixels 512 --num_classes 21
    python arch.py --table
"""
import argparse
import json

import numpy as np

from utils.flags import add_bool_flag

# seg-mentor's published table (README "VOC Results"): 512x512 input, 21 classes.
# (basenet, decoder flags, GOPS(=GMACs), params in millions); None = not published.
SEG_MENTOR_TABLE = [
    ("vgg_16", "FCN16", 92.0, 135.0),
    ("vgg_16", "FCN32", 92.0, 135.0),
    ("inception_v1", "FCN16", 8.5, 6.04),
    ("inception_v1", "FCN32", 8.4, 6.02),
    ("resnet_v1_18", "FCN16", 9.6, 10.91),
    ("resnet_v1_18", "FCN32", 9.5, 10.9),
    ("mobilenet_v1", "FCN16", 2.9, 3.12),
    ("mobilenet_v1", "FCN32", 2.8, 3.1),
    ("mobilenet_v2", "FCN16", None, None),
]


def ancestors(tensors):
    """Ops that computing `tensors` runs (what TensorFlow executes; unused branches are pruned)."""
    seen, stack = set(), [t.op for t in tensors]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return seen


def count_macs(graph, outputs=None):
    """Multiply-accumulates of the conv / matmul ops in `graph` that `outputs` need (static shapes required)."""
    total = 0
    needed = ancestors(outputs) if outputs is not None else None
    for op in graph.get_operations():
        if needed is not None and op not in needed:
            continue
        if op.type == "Conv2D":
            out = op.outputs[0].shape.as_list()
            kh, kw, cin, _ = op.inputs[1].shape.as_list()
            total += int(np.prod(out)) * kh * kw * cin
        elif op.type == "DepthwiseConv2dNative":
            out = op.outputs[0].shape.as_list()
            kh, kw, _, _ = op.inputs[1].shape.as_list()
            total += int(np.prod(out)) * kh * kw
        elif op.type == "Conv2DBackpropInput":  # transposed conv: every input pixel spreads a kernel
            kh, kw, cout, _ = op.inputs[1].shape.as_list()
            total += int(np.prod(op.inputs[2].shape.as_list())) * kh * kw * cout
        elif op.type == "MatMul":
            a, b = op.inputs[0].shape.as_list(), op.inputs[1].shape.as_list()
            m, k = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
            n = b[0] if op.get_attr("transpose_b") else b[1]
            total += m * k * n
    return total


def googlenet_5x5_delta(graph):
    """(params, MACs) that GoogLeNet's 5x5 convs add over TF-Slim's Inception V1.

    TF-Slim's inception_v1 (whose checkpoint we must load) uses a 3x3 conv in
    each Mixed block's Branch_2 where the GoogLeNet paper has 5x5.  seg-mentor's
    published Inception figures match the 5x5 network; this delta reconciles them.
    """
    import re
    pattern = re.compile(r"InceptionV1/Mixed_\w+/Branch_2/Conv2d_0[ab]_3x3/Conv2D$")
    params = macs = 0
    for op in graph.get_operations():
        if op.type == "Conv2D" and pattern.search(op.name):
            kh, kw, cin, cout = op.inputs[1].shape.as_list()
            _, h, w, _ = op.outputs[0].shape.as_list()
            extra = (25 - kh * kw) * cin * cout
            params += extra
            macs += extra * h * w
    return params, macs


def _params(variables):
    return int(sum(np.prod(v.shape.as_list()) for v in variables))


def summarize(basenet, extended_arch="FCN", height=512, width=512, num_classes=21, **flags):
    """Build the inference graph at batch 1 and return counts as a dict."""
    import arch
    from utils.tf1 import tf
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, [1, height, width, 3], name="images")
        model = arch.build_arch(basenet, extended_arch, num_classes, is_training=False, **flags)
        logits = model.build(images)
        trainable = tf.trainable_variables()
        fe_scope = model.fe.scope + "/"
        result = {
            "basenet": basenet, "decoder": model.name, "height": height, "width": width,
            "num_classes": num_classes, "flags": {k: v for k, v in sorted(flags.items())},
            "params": _params(trainable),
            "params_all": _params(tf.global_variables()),
            "fe_params": _params([v for v in trainable if v.op.name.startswith(fe_scope)]),
            "decoder_params": _params([v for v in trainable if not v.op.name.startswith(fe_scope)]),
            "gmacs": count_macs(graph, [logits]) / 1e9,
            "logits_shape": logits.shape.as_list(),
        }
        if model.fe.name == "inception_v1":
            params, macs = googlenet_5x5_delta(graph)
            result["googlenet_5x5_delta"] = {"params": params, "gmacs": macs / 1e9}
    return result


def _row_flags(variant):
    """'FCN16' -> (decoder, flags) for the comparison table."""
    return "FCN", {"fcn16": variant == "FCN16"}


def table_rows(pixels=512, num_classes=21):
    rows = []
    for basenet, variant, their_gmacs, their_mparams in SEG_MENTOR_TABLE:
        decoder, flags = _row_flags(variant)
        ours = summarize(basenet, decoder, pixels, pixels, num_classes, **flags)
        rows.append(dict(basenet=basenet, variant=variant, gmacs=ours["gmacs"], mparams=ours["params"] / 1e6,
                         their_gmacs=their_gmacs, their_mparams=their_mparams,
                         googlenet_5x5_delta=ours.get("googlenet_5x5_delta")))
    return rows


def format_table(rows):
    def rel(ours, theirs):
        return "n/a" if theirs is None else "%+.1f %%" % (100.0 * (ours - theirs) / theirs)

    def num(value, fmt):
        return "coming soon" if value is None else fmt % value

    lines = ["| Architecture | GMACs (ours) | GOPS (seg-mentor) | diff | Params M (ours) | Params M (seg-mentor) | diff |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s - %s | %.2f | %s | %s | %.2f | %s | %s |" % (
            r["basenet"], r["variant"], r["gmacs"], num(r["their_gmacs"], "%.1f"), rel(r["gmacs"], r["their_gmacs"]),
            r["mparams"], num(r["their_mparams"], "%.2f"), rel(r["mparams"], r["their_mparams"])))
    for r in rows:
        delta = r.get("googlenet_5x5_delta")
        if delta:
            gmacs, mparams = r["gmacs"] + delta["gmacs"], r["mparams"] + delta["params"] / 1e6
            lines.append("")
            lines.append("%s - %s: TF-Slim's Inception V1 has 3x3 convs where GoogLeNet has 5x5 (Branch_2); "
                         "with 5x5 it would be %.2f GMACs (%s) and %.2f M params (%s), matching seg-mentor's figures."
                         % (r["basenet"], r["variant"], gmacs, rel(gmacs, r["their_gmacs"]),
                            mparams, rel(mparams, r["their_mparams"])))
    return "\n".join(lines)


def build_parser():
    import arch
    import nets
    parser = argparse.ArgumentParser(description="Parameters and GMACs of a segmentation net (batch 1).")
    parser.add_argument("--basenet", default="resnet_v1_18", choices=nets.NAMES)
    parser.add_argument("--extended_arch", default="FCN", help="decoder: one of %s" % ", ".join(arch.decoder_names()))
    parser.add_argument("--pixels", type=int, default=512, help="square input side (ignored with --size)")
    parser.add_argument("--size", default=None, help="input HxW, e.g. 360x480")
    parser.add_argument("--num_classes", type=int, default=21)
    add_bool_flag(parser, "fcn16", True, "FCN: add the stride-16 skip")
    add_bool_flag(parser, "fcn8", False, "FCN: add the stride-8 skip")
    add_bool_flag(parser, "fcn4", False, "FCN: add the stride-4 skip")
    add_bool_flag(parser, "trainable_upsampling", False, "learnable x2 upsampling (bilinear init)")
    parser.add_argument("--output_stride", type=int, default=None, choices=[8, 16, 32])
    parser.add_argument("--encoder_stride", type=int, default=32, choices=[8, 16, 32],
                        help="use the encoder only up to this stride")
    parser.add_argument("--table", action="store_true", help="print the comparison with seg-mentor's published table")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.table:
        rows = table_rows(args.pixels, args.num_classes)
        print(json.dumps(rows, indent=1) if args.json else format_table(rows))
        return 0
    height, width = (int(v) for v in args.size.lower().split("x")) if args.size else (args.pixels, args.pixels)
    flags = dict(fcn16=args.fcn16, fcn8=args.fcn8, fcn4=args.fcn4,
                 trainable_upsampling=args.trainable_upsampling, output_stride=args.output_stride,
                 encoder_stride=args.encoder_stride)
    import arch
    try:
        arch.get_arch_class(args.extended_arch)
    except arch.UnknownDecoderError as error:
        parser.error(str(error))
    result = summarize(args.basenet, args.extended_arch, height, width, args.num_classes, **flags)
    if args.json:
        print(json.dumps(result))
    else:
        print("%s + %s at %dx%d, %d classes" % (result["basenet"], result["decoder"], height, width, args.num_classes))
        print("  parameters : %12s  (encoder %s, decoder %s; %s incl. BN statistics)" % (
            format(result["params"], ","), format(result["fe_params"], ","),
            format(result["decoder_params"], ","), format(result["params_all"], ",")))
        print("  GMACs      : %12.2f  (conv + matmul multiply-accumulates, batch 1)" % result["gmacs"])
        print("  logits     : %s" % (result["logits_shape"],))
    return 0

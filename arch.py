"""The architecture: one ModelSpec -> one model (encoder + decoder), and what it costs.

    import arch
    spec = arch.ModelSpec("resnet_v1_18", "FCN", num_classes=12, decoder_options={"fcn8": True})
    model = arch.build_model(spec, is_training=True)       # an arch.BaseFcnArch subclass
    logits = model.build(images)                           # [N, H, W, 12], any H, W

`ModelSpec` holds everything that defines a model: encoder, decoder,
num_classes, output_stride, encoder_stride, weight decay, batch-norm decay, the
encoder's stochastic depth (EfficientNet) and the decoder's own options (declared next to the decoder, `decoders/*.py`).
Training, the replicas, the monitor, inference, export, this summary and the
benchmarks all build through `build_model(spec, is_training)`, and a run
folder's runargs keeps the spec under "model".  The command-line flags of
every setting here are generated from the declarations (`add_model_flags`):
seg-mentor's `--basenet` / `--extended_arch`, also `--encoder` / `--decoder`.

`BaseFcnArch` (decoders/base.py) is the decoder skeleton every decoder
subclasses: read it to write your own decoder, as one new file in decoders/.

Model summary (parameters and GMACs of the real graph, batch 1):

    python arch.py --basenet resnet_v1_18 --extended_arch LinkNet --size 360x480 --num_classes 12
    python arch.py ... --layers     # also per layer: scope, output shape, params, MACs (--depth 0: every layer)
    python arch.py --traindir tmp/<run> --layers   # the net a run folder trained (its runargs)
    python arch.py --table          # the comparison with seg-mentor's published table
    python arch.py --decoders       # every registered decoder over a few encoders, and the
                                    # encoder-decoder nets (ENet, SegNet, FC-DenseNet) against their papers
"""
import argparse
import dataclasses
import json
import os
import re
import sys
from typing import Optional

import decoders
import nets
from decoders.base import (DECODER_SCOPE, BaseFcnArch, DecoderOptionError, IncompatibleEncoderError,  # noqa: F401
                           UnknownDecoderError, bilinear_kernel, register)
from nets.efficientnet import DROP_CONNECT_RATE, check_drop_connect_rate
from utils.compat import tf
from utils.flags import add_setting_flags, declared, flag_names, setting, settings_from_args
from utils.graphs import ancestors, count_macs, count_params, layer_rows

ENCODER_STRIDES = (4, 8, 16, 32)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build a model; `decoder_options` become the decoder's `Options` on construction."""
    encoder: str = setting("resnet_v1_18", "feature extractor (encoder)", flag="basenet", aliases=("encoder",),
                           choices=nets.NAMES, group="model")
    decoder: Optional[str] = setting(
        None, "decoder: %s (default: the encoder's own decoder where it has one, %s; else FCN)" % (
            ", ".join(decoders.NAMES), ", ".join("%s: %s" % (name, nets.get(name).decoder) for name in nets.NAMES
                                                 if nets.get(name).decoder)),
        flag="extended_arch", aliases=("decoder",), group="model")
    num_classes: Optional[int] = setting(None, "number of classes; train.py takes the dataset's when not given",
                                         group="model")
    output_stride: Optional[int] = setting(None, "dilate the encoder beyond this stride (atrous convolutions)",
                                           choices=(8, 16, 32), group="model")
    encoder_stride: int = setting(32, "use the encoder only up to this stride's tap (later blocks are not "
                                      "computed)", choices=(8, 16, 32), group="model")
    weight_decay: float = setting(1e-4, "L2 weight decay", group="model")
    batch_norm_decay: Optional[float] = setting(
        None, "moving-average decay of batch norm statistics (default: each net's slim value, ~0.997; use ~0.9 "
              "for runs of a few hundred steps)", group="model")
    drop_connect_rate: Optional[float] = setting(
        None, "EfficientNet's stochastic depth in training: block i of n drops its residual branch for a share "
              "rate*i/n of the examples (default: the TPU repository's %s; 0: off)" % DROP_CONNECT_RATE,
        group="model")
    decoder_options: object = None

    def __post_init__(self):
        decoder = decoders.get(self.decoder or default_decoder(self.encoder))  # unknown names list the valid ones
        if self.encoder_stride not in ENCODER_STRIDES:
            raise ValueError("encoder_stride must be one of %s, got %r" % (ENCODER_STRIDES, self.encoder_stride))
        if self.drop_connect_rate is not None:
            def takes(name):
                return nets.get(name).takes({"drop_connect_rate": None})
            if not takes(self.encoder):
                raise ValueError("--drop_connect_rate is EfficientNet's stochastic depth; --basenet %s does not "
                                 "take it (encoders that do: %s)" % (self.encoder, ", ".join(filter(takes, nets.NAMES))))
            check_drop_connect_rate(self.drop_connect_rate)
        options = self.decoder_options
        if not isinstance(options, decoder.Options):
            if options is not None and not isinstance(options, dict):
                options = dataclasses.asdict(options)  # another decoder's options: keep what this one declares
                options = {k: v for k, v in options.items() if k in _option_names(decoder)}
            options = decoder.make_options(options)
        object.__setattr__(self, "decoder", decoder.name)
        object.__setattr__(self, "decoder_options", options)
        decoder.check_spec(self)  # an encoder it cannot work over names the ones it can

    @property
    def decoder_class(self):
        return decoders.get(self.decoder)

    @property
    def encoder_net_args(self):
        """Keywords of the encoder's net function the spec sets (None values: the net's own default)."""
        return {} if self.drop_connect_rate is None else {"drop_connect_rate": self.drop_connect_rate}

    @property
    def run_name(self):
        """seg-mentor's NETNAME: encoder + decoder variant, e.g. resnet_v1_18_LinkNet, inception_v1_FCN16."""
        return "%s_%s" % (self.encoder, self.decoder_class.run_name(self.decoder_options))

    def replace(self, **changes):
        """A copy with `changes`; on a decoder change, options the new decoder also declares carry over."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """JSON-friendly form (runargs' "model" section)."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        values["decoder_options"] = dataclasses.asdict(self.decoder_options)
        return values

    @classmethod
    def from_dict(cls, values):
        """The inverse of to_dict; also reads seg-mentor's names (basenet, extended_arch)."""
        values = dict(values)
        for old, new in (("basenet", "encoder"), ("extended_arch", "decoder")):
            if old in values:
                values[new] = values.pop(old)
        unknown = set(values) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ValueError("unknown model settings: %s" % ", ".join(sorted(unknown)))
        return cls(**values)

    @classmethod
    def from_flat(cls, settings):
        """A spec from one flat dict where spec fields and decoder options sit side by side, as in runargs
        written before the model / train / data sections; keys that are neither are left out."""
        fields = {field.name for field in dataclasses.fields(cls)} - {"decoder_options"}
        values = {("encoder" if k == "basenet" else "decoder" if k == "extended_arch" else k): v
                  for k, v in settings.items()}
        decoder = decoders.get(values.get("decoder") or default_decoder(values.get("encoder", cls.encoder)))
        options = {k: v for k, v in values.items() if k in _option_names(decoder)}
        spec_values = {k: v for k, v in values.items() if k in fields}
        if spec_values.get("encoder_stride") is None:
            spec_values.pop("encoder_stride", None)
        return cls(decoder_options=options, **spec_values)


def default_decoder(encoder):
    """The decoder of a spec that names none: the encoder's own (ENet, FC-DenseNet), else seg-mentor's FCN."""
    return nets.get(encoder).decoder or "FCN"


def _option_names(decoder_class):
    return [field.name for field in dataclasses.fields(decoder_class.Options)]


def build_model(spec, is_training=False, decoder_scope=DECODER_SCOPE):
    """The model for `spec` (not yet built on images): call `.build(images)` inside the graph you want.

    decoder_scope: variable scope of the decoder ('decoder'); give a second decoder hung on the same
    encoder (`build(images, features=...)`) another one.
    """
    if not spec.num_classes:
        raise ValueError("the model spec has no num_classes (the dataset's is resolved by train.py)")
    return spec.decoder_class(spec, is_training=is_training, decoder_scope=decoder_scope)


# ----------------------------------------------------------------------------- command-line flags
def decoder_option_declarations():
    """[(field, Setting, type)] of every registered decoder's options, one entry per option name, and
    {name: help suffix naming the decoders that take it}; a name declared with two types is an error."""
    merged, users = {}, {}
    for name in decoders.NAMES:
        for field, meta, kind in declared(decoders.get(name).Options):
            if field.name in merged and merged[field.name][2] is not kind:
                raise TypeError("decoder option %s is a %s in %s but a %s elsewhere" % (
                    field.name, kind.__name__, name, merged[field.name][2].__name__))
            merged.setdefault(field.name, (field, meta, kind))
            users.setdefault(field.name, []).append("%s: %s" % (name, field.default))
    suffix = {option: " (%s)" % "; ".join(entries) for option, entries in users.items()}
    return list(merged.values()), suffix


def add_model_flags(parser, defaults=None, extra_aliases=None):
    """The ModelSpec's flags, and one flag per decoder option (default: the chosen decoder's)."""
    groups = add_setting_flags(parser, ModelSpec, defaults=defaults, extra_aliases=extra_aliases)
    options, suffix = decoder_option_declarations()
    groups["decoder options"] = parser.add_argument_group(
        "decoder options", "each applies to the decoders named with it; default: that decoder's")
    add_setting_flags(groups["decoder options"], options, unset=True, help_suffix=suffix)
    return groups


def model_spec_from_args(args, **overrides):
    """ModelSpec from parsed flags (add_model_flags); a decoder option given for a decoder that does not
    take it raises DecoderOptionError naming the decoder's options."""
    options, _ = decoder_option_declarations()
    values = settings_from_args(args, ModelSpec)
    values.update(overrides)
    given = settings_from_args(args, options, given_only=True)
    return ModelSpec(decoder_options=given, **values)


# ----------------------------------------------------------------------------- model summary
# seg-mentor's published table (README "VOC Results"): 512x512 input, 21 classes.
# (encoder, variant, GOPS(=GMACs), params in millions); None = not published.
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
ZOO_ENCODERS = ("resnet_v1_18", "resnet_v1_50", "mobilenet_v2")
DEFAULT_PIXELS = 512


def googlenet_5x5_delta(graph):
    """(params, MACs) that GoogLeNet's 5x5 convs add over TF-Slim's Inception V1.

    TF-Slim's inception_v1 (whose checkpoint we must load) uses a 3x3 conv in
    each Mixed block's Branch_2 where the GoogLeNet paper has 5x5.  seg-mentor's
    published Inception figures match the 5x5 network; this delta reconciles them.
    """
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


def summarize(spec, height=512, width=512, layer_depth=None):
    """Parameters and GMACs of `spec`'s inference graph at batch 1, as a dict; with `layer_depth` (0: every
    layer) also "layers", the per-layer table of scopes cut to that many parts (utils/graphs.py layer_rows)."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, [1, height, width, 3], name="images")
        model = build_model(spec, is_training=False)
        logits = model.build(images)
        trainable = tf.trainable_variables()
        encoder_scope = model.encoder.scope + "/"
        result = {
            "encoder": spec.encoder, "decoder": spec.decoder, "run_name": spec.run_name,
            "height": height, "width": width, "num_classes": spec.num_classes, "spec": spec.to_dict(),
            "params": count_params(trainable),
            "params_all": count_params(tf.global_variables()),
            "encoder_params": count_params([v for v in trainable if v.op.name.startswith(encoder_scope)]),
            "decoder_params": count_params([v for v in trainable if not v.op.name.startswith(encoder_scope)]),
            "macs": count_macs(graph, [logits]),
            "logits_shape": logits.shape.as_list(),
        }
        result["gmacs"] = result["macs"] / 1e9
        if layer_depth is not None:
            result["layer_depth"] = layer_depth
            result["layers"] = layer_rows(graph, trainable, [images], [logits], depth=layer_depth)
        if spec.encoder == "inception_v1":
            params, macs = googlenet_5x5_delta(graph)
            result["googlenet_5x5_delta"] = {"params": params, "gmacs": macs / 1e9}
        published = spec.decoder_class.published.get(spec.encoder)
        if published:
            result["published"] = {"mparams": published[0], "source": published[1]}
    return result


def table_rows(pixels=512, num_classes=21):
    rows = []
    for encoder, variant, their_gmacs, their_mparams in SEG_MENTOR_TABLE:
        spec = ModelSpec(encoder, "FCN", num_classes, decoder_options={"fcn16": variant == "FCN16"})
        ours = summarize(spec, pixels, pixels)
        rows.append(dict(encoder=encoder, variant=variant, gmacs=ours["gmacs"], mparams=ours["params"] / 1e6,
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
            r["encoder"], r["variant"], r["gmacs"], num(r["their_gmacs"], "%.1f"), rel(r["gmacs"], r["their_gmacs"]),
            r["mparams"], num(r["their_mparams"], "%.2f"), rel(r["mparams"], r["their_mparams"])))
    for r in rows:
        delta = r.get("googlenet_5x5_delta")
        if delta:
            gmacs, mparams = r["gmacs"] + delta["gmacs"], r["mparams"] + delta["params"] / 1e6
            lines.append("")
            lines.append("%s - %s: TF-Slim's Inception V1 has 3x3 convs where GoogLeNet has 5x5 (Branch_2); "
                         "with 5x5 it would be %.2f GMACs (%s) and %.2f M params (%s), matching seg-mentor's figures."
                         % (r["encoder"], r["variant"], gmacs, rel(gmacs, r["their_gmacs"]),
                            mparams, rel(mparams, r["their_mparams"])))
    return "\n".join(lines)


def decoder_zoo_rows(encoders=ZOO_ENCODERS, pixels=512, num_classes=21, decoder_names=None):
    """Params (M) and GMACs of every registered decoder (at its default options) over `encoders`;
    None where the decoder does not work over that encoder (the encoder-decoder nets, see published_rows)."""
    rows = []
    for decoder in decoder_names or decoders.NAMES:
        cells = {}
        for encoder in encoders:
            if encoder not in decoders.get(decoder).compatible_encoders():
                cells[encoder] = None
                continue
            counts = summarize(ModelSpec(encoder, decoder, num_classes), pixels, pixels)
            cells[encoder] = (counts["params"] / 1e6, counts["gmacs"])
        rows.append((decoder, cells))
    return rows


def format_decoder_zoo(rows, encoders=ZOO_ENCODERS, pixels=512, num_classes=21):
    lines = ["Params M / GMACs at %dx%d, %d classes (each decoder at its default options; - : the decoder "
             "works over its own encoders only)" % (pixels, pixels, num_classes),
             "", "| decoder | %s |" % " | ".join(encoders), "|---|" + "---:|" * len(encoders)]
    for decoder, cells in rows:
        lines.append("| %s | %s |" % (decoder, " | ".join("%.2f / %.2f" % cells[e] if cells[e] else "-"
                                                          for e in encoders)))
    return "\n".join(lines)


PUBLISHED_SIZES = ((360, 480), (512, 512))


def published_rows(num_classes=12, sizes=PUBLISHED_SIZES, pairs=None):
    """Every (encoder, decoder) pairing whose paper gives its size (or those of `pairs`): ours at `sizes`
    next to the paper's."""
    rows = []
    for decoder in decoders.NAMES:
        for encoder, (mparams, source) in decoders.get(decoder).published.items():
            if pairs is not None and (encoder, decoder) not in pairs:
                continue
            counts = [summarize(ModelSpec(encoder, decoder, num_classes), *size) for size in sizes]
            rows.append(dict(encoder=encoder, decoder=decoder, mparams=counts[0]["params"] / 1e6,
                             gmacs={"%dx%d" % size: c["gmacs"] for size, c in zip(sizes, counts)},
                             their_mparams=mparams, source=source))
    return rows


def format_published(rows, num_classes=12, sizes=PUBLISHED_SIZES):
    names = ["%dx%d" % size for size in sizes]
    lines = ["Encoder-decoder nets against their papers (%d classes)" % num_classes, "",
             "| net | params M (ours) | params M (paper) | diff | %s | source |" % " | ".join(
                 "GMACs %s" % name for name in names), "|---|---:|---:|---:|" + "---:|" * len(names) + "---|"]
    for r in rows:
        lines.append("| %s + %s | %.3f | %.2f | %+.1f %% | %s | %s |" % (
            r["encoder"], r["decoder"], r["mparams"], r["their_mparams"],
            100.0 * (r["mparams"] - r["their_mparams"]) / r["their_mparams"],
            " | ".join("%.2f" % r["gmacs"][name] for name in names), r["source"]))
    return "\n".join(lines)


def parse_size(text):
    """'360x480' -> (360, 480)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError("--size %s: expected HxW, e.g. 360x480" % text) from None
    return height, width


def format_layers(result):
    """The per-layer table of a summary made with layer_depth: scope, output shape, params, MACs, and totals."""
    rows = [(r["name"] or "(top level)", "-" if r["output_shape"] is None else str(r["output_shape"]),
             format(r["params"], ","), format(r["macs"], ",")) for r in result["layers"]]
    total = ("total", str(result["logits_shape"]), format(sum(r["params"] for r in result["layers"]), ","),
             format(sum(r["macs"] for r in result["layers"]), ","))
    header = ("layer (scope, depth %s)" % (result["layer_depth"] or "all"), "output shape", "params", "MACs")
    widths = [max(len(line[i]) for line in rows + [total, header]) for i in range(4)]

    def line(cells):
        return "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule] + [line(r) for r in rows] + [rule, line(total)])


class RunFolderError(ValueError):
    """--traindir names no readable run folder."""


def run_folder_net(folder):
    """(ModelSpec, input side) of the net a run folder trained, from its runargs: the "model" section (or the
    flat runargs of schema 1) and the data's `pixels`, as test.py rebuilds it; 0 = native image size."""
    path = os.path.join(folder, "runargs")  # utils/training/runfolder.py RUNARGS, a floor above this one
    if not os.path.isdir(folder):
        raise RunFolderError("--traindir %s does not exist" % folder)
    if not os.path.isfile(path):
        raise RunFolderError("--traindir %s is not a training run folder: it has no runargs file" % folder)
    try:
        with open(path) as handle:
            values = json.load(handle)
        spec = ModelSpec.from_dict(values["model"]) if "model" in values else ModelSpec.from_flat(values)
        pixels = int((values["data"] if "model" in values else values)["pixels"])
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise RunFolderError("%s: not a run configuration arch.py can read (%s)" % (path, error)) from None
    return spec, pixels


def build_parser():
    parser = argparse.ArgumentParser(description="Parameters and GMACs of a segmentation net (batch 1).")
    add_model_flags(parser, defaults={"num_classes": 21})
    parser.add_argument("--pixels", type=int, default=None,
                        help="square input side (default: %d, or the run's with --traindir; ignored with --size)"
                        % DEFAULT_PIXELS)
    parser.add_argument("--size", default=None, help="input HxW, e.g. 360x480")
    parser.add_argument("--traindir", default=None,
                        help="describe the net a run folder trained (its runargs: model, classes, input side) "
                             "instead of the model flags")
    parser.add_argument("--layers", action="store_true",
                        help="also print the per-layer table: scope, output shape, params, MACs")
    parser.add_argument("--depth", type=int, default=2,
                        help="--layers: scope parts per row, e.g. 2 = encoder / decoder blocks; 0 = every layer")
    parser.add_argument("--table", action="store_true", help="print the comparison with seg-mentor's published table")
    parser.add_argument("--decoders", action="store_true",
                        help="print params / GMACs of every registered decoder over %s" % ", ".join(ZOO_ENCODERS))
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log")
    return parser


def model_flags_given(parser, args):
    """The model flags given on the command line (those not at their default), as --names."""
    defaults = parser.parse_args([])
    options, _ = decoder_option_declarations()
    return ["--" + flag_names(field, meta)[0] for field, meta, _ in declared(ModelSpec) + options
            if meta.on_command_line and getattr(args, field.name) != getattr(defaults, field.name)]


def spec_and_size(parser, args):
    """(spec, height, width) to summarize: the run folder's net with --traindir, else the model flags'."""
    if args.traindir is None:
        pixels = DEFAULT_PIXELS if args.pixels is None else args.pixels
        height, width = parse_size(args.size) if args.size else (pixels, pixels)
        return model_spec_from_args(args), height, width
    given = model_flags_given(parser, args)
    if given:
        raise RunFolderError("--traindir describes the run's own net: drop %s" % ", ".join(given))
    spec, pixels = run_folder_net(args.traindir)
    pixels = pixels if args.pixels is None else args.pixels
    if args.size:
        return (spec,) + parse_size(args.size)
    if not pixels:
        raise RunFolderError("%s trained at native image size (--pixels 0): give --size HxW" % args.traindir)
    return spec, pixels, pixels


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    pixels = DEFAULT_PIXELS if args.pixels is None else args.pixels  # --traindir: the run's (spec_and_size)
    if args.table:
        rows = table_rows(pixels, args.num_classes)
        print(json.dumps(rows, indent=1) if args.json else format_table(rows))
        return 0
    if args.decoders:
        rows = decoder_zoo_rows(pixels=pixels, num_classes=args.num_classes)
        published = published_rows()
        if args.json:
            print(json.dumps({"zoo": rows, "published": published}, indent=1))
        else:
            print(format_decoder_zoo(rows, pixels=pixels, num_classes=args.num_classes))
            print()
            print(format_published(published))
        return 0
    try:
        if args.depth < 0:
            raise ValueError("--depth %d: give 0 (every layer) or more scope parts" % args.depth)
        spec, height, width = spec_and_size(parser, args)
    except (UnknownDecoderError, DecoderOptionError, ValueError) as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    result = summarize(spec, height, width, layer_depth=args.depth if args.layers else None)
    if args.json:
        print(json.dumps(result))
    else:
        print("%s (%s + %s) at %dx%d, %d classes" % (result["run_name"], result["encoder"], result["decoder"],
                                                   height, width, spec.num_classes))
        print("  parameters : %12s  (encoder %s, decoder %s; %s incl. BN statistics)" % (
            format(result["params"], ","), format(result["encoder_params"], ","),
            format(result["decoder_params"], ","), format(result["params_all"], ",")))
        print("  GMACs      : %12.2f  (conv + matmul multiply-accumulates, batch 1)" % result["gmacs"])
        print("  logits     : %s" % (result["logits_shape"],))
        if "published" in result:
            paper = result["published"]
            print("  paper      : %12.2f M parameters (%s); ours %+.1f %%" % (
                paper["mparams"], paper["source"], 100.0 * (result["params"] / 1e6 - paper["mparams"]) / paper["mparams"]))
        if args.layers:
            print()
            print(format_layers(result))
    return 0


__all__ = ["ModelSpec", "build_model", "BaseFcnArch", "register", "bilinear_kernel", "add_model_flags",
           "model_spec_from_args", "summarize", "ancestors", "UnknownDecoderError", "DecoderOptionError",
           "IncompatibleEncoderError"]

if __name__ == "__main__":
    sys.exit(main())

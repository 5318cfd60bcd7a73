"""TFLite (fp32 / fp16 / int8 / int16x8) and ONNX files of a run: the frozen, batch-norm-folded net test.py runs.

    info = export_tflite("tmp/<run>", "deploy/int8", "int8", ExportSettings(calibration_images=100))  # 0: auto
    info = export_onnx("tmp/<run>", "deploy/onnx", ExportSettings(shape="360x480"))
    # DIR/model.tflite or DIR/model.onnx, and DIR/export.json saying what was exported

What is exported is the net alone, at one static input shape (deployment
runtimes want one): input `images` float32 [1, H, W, 3], RGB in [0, 255]
(the net's normalisation is inside), output `logits` [1, H, W, C] at the
input size or `classes` [1, H, W] (--export_output).  The test-time geometry
stays outside, in the caller: a square export (--pixels P) takes any image
resized so its larger side is P and padded bottom / right with `pad_value`
(the RGB colour the normalisation maps to 0, which is what test.py pads
with); an HxW export (--export_shape) takes images of exactly that size.
utils/inference/runtimes.py does exactly that, so test.py --model scores an
export with the checkpoint's evaluation.

int8 is full-integer post-training quantization: every op int8, calibrated
on --calibration_images images drawn (seeded) from the run's training
records and placed on the canvas the way test.py places them (by default
what the split has, up to 100: a small dataset quantizes without a flag, and
export.json says how many were used); the model's
input and output stay float32 unless --int8_io (then int8 with the scale and
zero point recorded in export.json).  int16x8 is calibrated the same way
with int16 activations and int8 weights (TFLite's 16x8 mode): LayerNorm,
softmax and GELU keep 256x finer steps, at the cost of TFLite's reference
kernels (XNNPACK runs no 16x8 op).  ONNX goes through tf2onnx from the
same frozen GraphDef.
"""
import dataclasses
import datetime
import os

import numpy as np

import nets
from nets import preprocessing
from utils.compat import lazy_import, quiet, tf
from utils.data import records
from utils.data.dataset_info import dataset_files
from utils.data.pipeline import scaled_size
from utils.flags import setting
from utils.inference.evaluation import write_json
from utils.inference.export import restored_graph_def
from utils.inference.folding import count_ops, fold_and_strip, strip_dead_constants
from utils.training.config import RunConfig

tf2onnx = lazy_import("tf2onnx")  # it imports TensorFlow
tensor_util = lazy_import("tensorflow.python.framework.tensor_util")

PRECISIONS = ("fp32", "fp16", "int8", "int16x8")
CALIBRATED = ("int8", "int16x8")  # the precisions whose activations are quantized on calibration images
OUTPUT_KINDS = ("logits", "classes")
INPUT = "images"
ONNX_OPSET = 17          # accepted by onnxruntime >= 1.12 and every current ONNX runtime
MODEL_FILES = {"tflite": "model.tflite", "onnx": "model.onnx"}
RECORD = "export.json"
CALIBRATION_CAP = 100    # --calibration_images 0 (the default) takes what the training split has, up to this


@dataclasses.dataclass
class ExportSettings:
    """How test.py --export_tflite / --export_onnx shape the exported net."""
    export_shape: str = setting("", "static input shape HxW of the exported model (default: --pixels x --pixels, "
                                    "the square canvas test.py feeds; an HxW export takes images of that size)",
                                group="deployment export")
    export_output: str = setting("logits", "what the exported model returns: logits [1, H, W, C] at the input size "
                                           "(scored exactly as the checkpoint) or the class map [1, H, W]",
                                 choices=OUTPUT_KINDS, group="deployment export")
    calibration_images: int = setting(0, "int8: training images (drawn seeded) that calibrate the quantization "
                                         "(default 0: what the training split has, up to %d)" % CALIBRATION_CAP,
                                      group="deployment export")
    calibration_seed: int = setting(0, "int8: seed of the calibration draw", group="deployment export")
    int8_io: bool = setting(False, "int8: the model's input and output are int8 too (scale / zero point in "
                                   "export.json); default float32 I/O around an all-int8 net",
                            group="deployment export")


class ExportError(ValueError):
    """A setting that cannot be exported; the message names the flag."""


def canvas_shape(shape, pixels):
    """--export_shape 'HxW' (or '' = the square --pixels canvas) -> (H, W)."""
    if not shape:
        if not pixels:
            raise ExportError("--pixels: the run trained at native size; give --pixels N or --export_shape HxW")
        return (int(pixels), int(pixels))
    try:
        height, width = (int(v) for v in str(shape).lower().split("x"))
    except ValueError:
        raise ExportError("--export_shape %r: expected HxW, e.g. 360x480" % shape) from None
    if height < 1 or width < 1:
        raise ExportError("--export_shape %r: both sides must be positive" % shape)
    return height, width


def pad_value(encoder):
    """The RGB colour the encoder's normalisation maps to 0: test.py pads the canvas with it."""
    return preprocessing.undo(nets.get(encoder).preprocessing, np.zeros(3, np.float32)).astype(np.float32)


def net_graph_def(traindir, step, shape, output="logits"):
    """(frozen, folded GraphDef: `images` [1, H, W, 3] RGB 0-255 -> `logits` or `classes`, RunConfig, checkpoint)."""
    if output not in OUTPUT_KINDS:
        raise ExportError("--export_output %r: choose %s" % (output, " or ".join(OUTPUT_KINDS)))

    def build(model, config):
        images = tf.placeholder(tf.float32, [1, shape[0], shape[1], 3], name=INPUT)
        logits = tf.identity(model.build(nets.get(config.model.encoder).preprocess(images)), name="logits")
        tf.argmax(logits, axis=-1, output_type=tf.int32, name="classes")
        return [output]

    frozen, config, checkpoint = restored_graph_def(traindir, step, build)
    return finite_pool_padding(fold_and_strip(frozen, [INPUT], [output])), config, checkpoint


def finite_pool_padding(graph_def):
    """Pad with 0 instead of the float minimum before a max pool whose input is a ReLU's (ResNet's pool1).

    Exact there (the window's real values are >= 0, so 0 never wins the max
    either), and necessary: an int8 quantizer calibrating a tensor that holds
    -3.4e38 gets a useless scale, and XNNPACK refuses the model.
    """
    nodes = {node.name: node for node in graph_def.node}
    out = tf.GraphDef()
    out.CopyFrom(graph_def)
    for node in out.node:
        if node.op != "PadV2":
            continue
        source = nodes.get(node.input[0].split(":")[0])
        value = nodes.get(node.input[2].split(":")[0])
        if source is None or source.op not in ("Relu", "Relu6") or value is None or value.op != "Const":
            continue
        if tensor_util.MakeNdarray(value.attr["value"].tensor) > -1e30:
            continue
        zero = out.node.add()
        zero.name, zero.op = node.name + "/zero", "Const"
        zero.attr["dtype"].type = tf.float32.as_datatype_enum
        zero.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(np.float32(0)))
        node.input[2] = zero.name
    return strip_dead_constants(out)


def _scalar(node, value):
    """Whether `node` is a Const holding one float equal to `value` (to 1e-4: the zoo writes 0.16667)."""
    if node is None or node.op != "Const":
        return False
    array = tensor_util.MakeNdarray(node.attr["value"].tensor)
    return array.size == 1 and abs(float(array.reshape(-1)[0]) - value) < 1e-4


def unfused_hard_swish(graph_def):
    """`x * relu6(x + 3) * (1/6)` rewritten as `relu6(x + 3) * (x * (1/6))`: the same values up to float rounding.

    For int8 only.  TFLite's converter fuses the first form into one HARD_SWISH op, and XNNPACK does
    not run HARD_SWISH in int8, so each one falls back to TFLite's own kernel and splits the XNNPACK
    graph there; MobileNetV3 has 20 of them, and its int8 model ran slower than its fp32 one.  The
    second form does not match the fusion.  It stays an ADD with a fused relu6 and two MULs, which
    XNNPACK runs in int8, so the whole net becomes one XNNPACK partition.  One condition remains: XNNPACK's
    int8 ADD needs x's scale to be at least 1/1024 of the output's.  A trained net's pre-activations
    meet it.  A net whose activations shrink to about 0.01 (random weights without batch-norm statistics)
    keeps those ADDs outside XNNPACK.
    """
    nodes = {node.name: node for node in graph_def.node}
    consumers = {}
    for node in graph_def.node:
        for name in node.input:
            consumers.setdefault(name.split(":")[0].lstrip("^"), []).append(node.name)

    def source(name):
        return nodes.get(name.split(":")[0].lstrip("^"))

    out = tf.GraphDef()
    out.CopyFrom(graph_def)
    dead = set()
    for node in out.node:
        if node.op != "Mul" or len(node.input) != 2:
            continue
        sixth = next((i for i in node.input if _scalar(source(i), 1 / 6)), None)
        product = source(next((i for i in node.input if i != sixth), "")) if sixth else None
        if product is None or product.op != "Mul" or consumers.get(product.name) != [node.name]:
            continue
        relu6 = next((source(i) for i in product.input if source(i) is not None and source(i).op == "Relu6"), None)
        add = source(relu6.input[0]) if relu6 is not None else None
        if add is None or add.op not in ("Add", "AddV2"):
            continue
        x = next((i for i in add.input if not _scalar(source(i), 3.0)), None)
        if x is None or not any(_scalar(source(i), 3.0) for i in add.input) or x not in product.input:
            continue
        scaled = out.node.add()
        scaled.name, scaled.op = node.name + "/x_over_6", "Mul"
        scaled.input.extend([x, sixth])
        scaled.attr["T"].CopyFrom(node.attr["T"])
        node.input[:] = [relu6.name, scaled.name]
        dead.add(product.name)
    if not dead:
        return graph_def
    kept = tf.GraphDef()
    kept.versions.CopyFrom(out.versions)
    kept.library.CopyFrom(out.library)
    kept.node.extend(node for node in out.node if node.name not in dead)
    return kept


def squared_difference_as_product(graph_def):
    """Every `SquaredDifference(a, b)` rewritten as `d * d` with `d = a - b`: the same values.

    For int16x8 only.  LiteRT has no int16 SQUARED_DIFFERENCE kernel, and tf.nn.moments (LayerNorm's
    variance) is made of it, so a 16x8 transformer converts and loads, and fails when it runs.
    SUB and MUL have int16 kernels.
    """
    if not any(node.op == "SquaredDifference" for node in graph_def.node):
        return graph_def
    out = tf.GraphDef()
    out.CopyFrom(graph_def)
    for node in list(out.node):
        if node.op != "SquaredDifference":
            continue
        difference = out.node.add()
        difference.name, difference.op = node.name + "/difference", "Sub"
        difference.input.extend(node.input[:2])
        difference.attr["T"].CopyFrom(node.attr["T"])
        node.op = "Mul"
        node.input[:] = [difference.name, difference.name] + [i for i in node.input[2:] if i.startswith("^")]
    return out


def fit_to_canvas(images, canvas, pad):
    """float32 [N, H, W, 3] model inputs: each RGB image resized as test.py does (square canvas: larger side to
    the side; HxW canvas: to HxW) and padded bottom / right with `pad` (bilinear, half-pixel centres)."""
    graph = tf.Graph()
    with graph.as_default():
        image = tf.placeholder(tf.float32, [1, None, None, 3])
        size = tf.placeholder(tf.int32, [2])
        resized = tf.image.resize_bilinear(image, size, half_pixel_centers=True) - pad
        padded = tf.pad(resized, [[0, 0], [0, canvas[0] - size[0]], [0, canvas[1] - size[1]], [0, 0]]) + pad
        out = []
        with tf.Session() as sess:
            for item in images:
                height, width = np.shape(item)[:2]
                fitted = scaled_size(height, width, canvas[0]) if canvas[0] == canvas[1] else canvas
                out.append(sess.run(padded, {image: np.asarray(item, np.float32)[None], size: fitted})[0])
    return np.stack(out)


def calibration_count(asked, available):
    """How many training images calibrate: `asked`, or with 0 (the default) what the split has up to
    CALIBRATION_CAP.  An explicit count beyond what there is stays an error naming the range."""
    if asked == 0 and available > 0:
        return min(available, CALIBRATION_CAP)
    if asked < 1 or asked > available:
        raise ExportError("--calibration_images %d: choose 1..%d (the run's training split)" % (asked, available))
    return asked


def calibration_set(config, count, seed, canvas):
    """(float32 [n, H, W, 3] canvases, file names): n = calibration_count(count, the split's size) training
    images drawn with `seed`."""
    paths = dataset_files(config.data.datapath, config.data.dataset_family, "training")
    total = records.count_records(paths)
    count = calibration_count(count, total)
    chosen = set(np.random.RandomState(seed).choice(total, count, replace=False).tolist())
    examples = [records.decode_example(serialized) for index, serialized in enumerate(records.iterate_serialized(paths))
                if index in chosen]
    return (fit_to_canvas([example["image"] for example in examples], canvas, pad_value(config.model.encoder)),
            [example["filename"] for example in examples])


def tflite_converter(graph_def, precision, output, calibration=None, int8_io=False):
    """(TFLiteConverter set up for `precision` over a frozen GraphDef, the session it reads): the one place the
    export's converter settings live (convert_tflite; bench/int8_layers.py hands it to TFLite's debugger).
    The caller closes the session."""
    if precision not in PRECISIONS:
        raise ExportError("--export_tflite %r: unknown precision; choose %s" % (precision, ", ".join(PRECISIONS)))
    if precision == "int8":
        graph_def = unfused_hard_swish(graph_def)
    if precision == "int16x8":
        graph_def = squared_difference_as_product(graph_def)
        if int8_io:
            raise ExportError("--int8_io is for --export_tflite int8: int16x8 keeps float32 input and output")
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    session = tf.Session(graph=graph)
    converter = tf.lite.TFLiteConverter.from_session(
        session, [graph.get_tensor_by_name(INPUT + ":0")], [graph.get_tensor_by_name(output + ":0")])
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision in CALIBRATED:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([canvas[None]] for canvas in calibration)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if precision == "int8"
            else tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            if output == "logits":
                converter.inference_output_type = tf.int8
    return converter, session


def convert_tflite(graph_def, precision, output, calibration=None, int8_io=False):
    """TFLite flatbuffer bytes of a frozen GraphDef (`images` -> `output`) at `precision`."""
    converter, session = tflite_converter(graph_def, precision, output, calibration, int8_io)
    with session.graph.as_default(), session:
        with quiet.stderr_hidden():  # the converter's C++ prints its settings ("fully_quantize: 0, ...")
            return converter.convert()


def convert_onnx(graph_def, output):
    """ONNX ModelProto bytes of a frozen GraphDef (`images` -> `output`), opset ONNX_OPSET.  The graph's input
    and output are named as export.json says (`images`, `logits` / `classes`), not with TensorFlow's ":0"."""
    model, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=[INPUT + ":0"], output_names=[output + ":0"],
                                              opset=ONNX_OPSET)
    for name in (INPUT, output):
        rename_onnx_tensor(model.graph, name + ":0", name)
    return model.SerializeToString()


def rename_onnx_tensor(graph, old, new):
    """Rename one tensor of an ONNX GraphProto everywhere it appears (graph inputs / outputs, value infos and
    the nodes that produce or read it)."""
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name == old:
            value.name = new
    for node in graph.node:
        for names in (node.input, node.output):
            for index, name in enumerate(names):
                if name == old:
                    names[index] = new


def _record(traindir, config, checkpoint, graph_def, shape, settings, fmt, precision, model_path, extra):
    """export.json: what was exported, from which run and checkpoint, how, and with which converter."""
    return dict({
        "format": fmt, "precision": precision, "model": os.path.basename(model_path),
        "file_bytes": os.path.getsize(model_path),
        "run": os.path.abspath(traindir),
        "net": config.net_name, "checkpoint": checkpoint,
        "input": {"name": INPUT, "shape": [1, shape[0], shape[1], 3], "range": "RGB 0-255, float32",
                  "pad_value": [float(v) for v in pad_value(config.model.encoder)],
                  "fit": "larger side to %d, pad bottom/right" % shape[0] if shape[0] == shape[1]
                  else "images of exactly %dx%d" % shape},
        "output": {"kind": settings.export_output,
                   "shape": [1, shape[0], shape[1]] + ([config.model.num_classes]
                                                        if settings.export_output == "logits" else [])},
        "batch_norms_folded": count_ops(graph_def, "FusedBatchNormV3") == 0,
        "settings": dataclasses.asdict(settings), "runargs": config.to_runargs(),
        "converter": {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__},
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }, **extra)


def export_tflite(traindir, export_dir, precision, settings, step=None, pixels=None):
    """Write DIR/model.tflite and DIR/export.json; returns the record.  Nothing is written when a setting fails."""
    if precision not in PRECISIONS:
        raise ExportError("--export_tflite %r: unknown precision; choose %s" % (precision, ", ".join(PRECISIONS)))
    config, shape = _config_and_shape(traindir, settings, pixels, export_dir, "--export_tflite")
    graph_def, config, checkpoint = net_graph_def(traindir, step, shape, settings.export_output)
    calibration, extra = None, {"converter_api": "tf.compat.v1.lite.TFLiteConverter.from_session"}
    if precision in CALIBRATED:
        calibration, files = calibration_set(config, settings.calibration_images, settings.calibration_seed, shape)
        extra["calibration"] = {"split": "training", "datapath": config.data.datapath, "images": len(files),
                                "asked": settings.calibration_images or "auto (up to %d)" % CALIBRATION_CAP,
                                "available": records.count_records(dataset_files(
                                    config.data.datapath, config.data.dataset_family, "training")),
                                "seed": settings.calibration_seed, "files": files}
    model = convert_tflite(graph_def, precision, settings.export_output, calibration, settings.int8_io)
    path = _write_model(export_dir, MODEL_FILES["tflite"], model)
    return _write_record(export_dir, _record(traindir, config, checkpoint, graph_def, shape, settings, "tflite",
                                             precision, path, extra))


def export_onnx(traindir, export_dir, settings, step=None, pixels=None):
    """Write DIR/model.onnx and DIR/export.json (fp32, opset ONNX_OPSET); returns the record."""
    config, shape = _config_and_shape(traindir, settings, pixels, export_dir, "--export_onnx")
    graph_def, config, checkpoint = net_graph_def(traindir, step, shape, settings.export_output)
    path = _write_model(export_dir, MODEL_FILES["onnx"], convert_onnx(graph_def, settings.export_output))
    extra = {"opset": ONNX_OPSET, "converter_api": "tf2onnx.convert.from_graph_def"}
    return _write_record(export_dir, _record(traindir, config, checkpoint, graph_def, shape, settings, "onnx", "fp32",
                                             path, extra))


def _config_and_shape(traindir, settings, pixels, export_dir, flag):
    """The run's config and the export's (H, W), checked before any work; the folder must be new or empty."""
    if os.path.exists(export_dir) and os.listdir(export_dir):
        raise FileExistsError("%s %s exists and is not empty; choose a new folder" % (flag, export_dir))
    config = RunConfig.load(traindir)
    return config, canvas_shape(settings.export_shape, config.data.pixels if pixels is None else pixels)


def _write_model(export_dir, name, content):
    os.makedirs(export_dir, exist_ok=True)
    path = os.path.join(export_dir, name)
    with open(path, "wb") as handle:
        handle.write(content)
    return path


def _write_record(export_dir, record):
    write_json(os.path.join(export_dir, RECORD), record)
    return record

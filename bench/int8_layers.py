"""Where int8 loses accuracy, op by op: TFLite's QuantizationDebugger on a run's frozen net.

    python bench/int8_layers.py --traindir tmp/<run> --images 8 --csv layers.csv

A full-integer model is calibrated as `test.py --export_tflite int8` calibrates it (the same frozen,
folded graph, the same seeded training images, the converter of deploy.tflite_converter).  Then every
quantized op runs next to its float twin on --images validation images.  Each op output gets its
RMSE / scale: the error of the int8 tensor, in units of its quantization step.  Rounding alone gives
about 0.29.  A value well above 1 means the op's range cannot be held in 8 bits.  The table groups
the ops by what they compute, so a transformer's LayerNorm, softmax and GELU can be told apart from
its convolutions.  The last line is the logits' error.

--keep_float FAMILY[,FAMILY] also writes the int8 model with those families' ops left in float
(`--write DIR/model.tflite`); `test.py --traindir RUN --model DIR/model.tflite` then scores it, which
measures how much of the int8 cost those ops carry.
"""
import argparse
import collections
import csv
import io
import os
import statistics

import numpy as np

from utils.compat import backend, machine, tf
from utils.data import records
from utils.data.dataset_info import dataset_files
from utils.inference import deploy
from utils.training.config import RunConfig

# (family, test): the first family whose test matches an op (its TFLite op name, its output tensor's TF
# name) names it.  LayerNorm has no TFLite op: TensorFlow's layer norm becomes MEAN, SQUARED_DIFFERENCE,
# RSQRT, MUL, SUB, ADD inside a scope named LayerNorm / layer_norm.
FAMILIES = (
    ("layer_norm", lambda op, name: "layernorm" in name.replace("_", "").lower()),
    ("softmax", lambda op, name: op == "SOFTMAX"),
    ("gelu", lambda op, name: op == "GELU" or "gelu" in name.lower()),
    ("attention_matmul", lambda op, name: op == "BATCH_MATMUL"),
    ("hard_swish", lambda op, name: op == "HARD_SWISH" or "hard_swish" in name.lower()),
    ("squeeze_excite", lambda op, name: "squeeze_excite" in name.lower() or "/se/" in name.lower()),
    ("conv", lambda op, name: op in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED")),
    ("resize", lambda op, name: op.startswith("RESIZE")),
    ("pool", lambda op, name: op in ("MEAN", "AVERAGE_POOL_2D", "MAX_POOL_2D")),
    ("elementwise", lambda op, name: op in ("ADD", "SUB", "MUL", "LOGISTIC", "RELU", "RELU6", "SQUARED_DIFFERENCE",
                                            "RSQRT", "TANH", "MAXIMUM", "MINIMUM")),
)
OTHER = "other"
ROUNDING = 1 / 12 ** 0.5  # RMSE / scale of a uniform rounding error


def family_of(op, name):
    """What an op computes, by its TFLite op name and its output tensor's name."""
    return next((family for family, test in FAMILIES if test(op, name)), OTHER)


def validation_inputs(config, count, shape):
    """float32 [n, H, W, 3] canvases of the first `count` validation images, placed as test.py places them."""
    paths = dataset_files(config.data.datapath, config.data.dataset_family, config.data.val_split or "validation")
    images = []
    for serialized in records.iterate_serialized(paths):
        images.append(records.decode_example(serialized)["image"])
        if len(images) == count:
            break
    return deploy.fit_to_canvas(images, shape, deploy.pad_value(config.model.encoder))


def layer_rows(debugger):
    """[{op, family, tensor, rmse_per_scale, ...}] of every quantized op, from the debugger's csv dump."""
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    rows = []
    for row in csv.DictReader(dump):
        scale = float(row["scale"])
        rmse = float(row["mean_squared_error"]) ** 0.5
        rows.append({"op": row["op_name"], "tensor": row["tensor_name"], "family": family_of(row["op_name"],
                                                                                            row["tensor_name"]),
                     "rmse_per_scale": rmse / scale if scale else float("nan"),
                     "max_abs_per_scale": float(row["max_abs_error"]) / scale if scale else float("nan"),
                     "mean_error_per_scale": float(row["mean_error"]) / scale if scale else float("nan"),
                     "scale": scale})
    return rows


def family_table(rows):
    """Markdown lines: per family, ops, median and worst RMSE / scale, and the worst op's tensor."""
    by_family = collections.defaultdict(list)
    for row in rows:
        by_family[row["family"]].append(row)
    lines = ["| ops | count | median RMSE / scale | worst RMSE / scale | worst op (tensor) |", "|---|---:|---:|---:|---|"]
    for family, members in sorted(by_family.items(), key=lambda item: -max(r["rmse_per_scale"] for r in item[1])):
        worst = max(members, key=lambda r: r["rmse_per_scale"])
        lines.append("| %s | %d | %.2f | %.2f | %s (%s) |" % (
            family, len(members), statistics.median(r["rmse_per_scale"] for r in members), worst["rmse_per_scale"],
            worst["op"], worst["tensor"][-70:]))
    return lines


def logits_error(debugger, inputs):
    """(RMSE of the int8 model's logits / the float model's spread, share of pixels whose class agrees), over
    `inputs`."""
    interpreters = [tf.lite.Interpreter(model_content=model) for model in
                    (debugger.get_nondebug_quantized_model(), debugger.float_model)]
    for interpreter in interpreters:
        interpreter.allocate_tensors()
    errors, agreements = [], []
    for image in inputs:
        quantized, floats = (invoke(interpreter, image) for interpreter in interpreters)
        errors.append(np.sqrt(np.mean((quantized - floats) ** 2)) / (np.std(floats) + 1e-12))
        agreements.append(np.mean(np.argmax(quantized, -1) == np.argmax(floats, -1)))
    return float(np.mean(errors)), float(np.mean(agreements))


def invoke(interpreter, image):
    """The model's output for one [H, W, 3] canvas."""
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traindir", required=True)
    parser.add_argument("--images", type=int, default=8, help="validation images the ops are compared on")
    parser.add_argument("--calibration_images", type=int, default=0, help="as test.py (0: up to 100)")
    parser.add_argument("--calibration_seed", type=int, default=0)
    parser.add_argument("--pixels", type=int, default=None, help="square canvas (default: the run's --pixels)")
    parser.add_argument("--csv", default="", help="also write every op's row here")
    parser.add_argument("--keep_float", default="", help="families kept in float in the --write model, e.g. "
                                                         "layer_norm,softmax,gelu (names: %s)" %
                                                         ", ".join(f for f, _ in FAMILIES))
    parser.add_argument("--write", default="", help="path of the partly-float int8 model (with --keep_float)")
    args = parser.parse_args(argv)
    keep = [f for f in args.keep_float.split(",") if f]
    unknown = sorted(set(keep) - {f for f, _ in FAMILIES} - {OTHER})
    if unknown or (keep and not args.write):
        parser.error("--keep_float %s: unknown family (choose from %s)" % (",".join(unknown), ", ".join(
            f for f, _ in FAMILIES)) if unknown else "--keep_float needs --write PATH")

    print(machine.describe())
    print("backend: %s" % backend.record()["summary"])
    config = RunConfig.load(args.traindir)
    shape = deploy.canvas_shape("", args.pixels or config.data.pixels)
    graph_def, config, checkpoint = deploy.net_graph_def(args.traindir, None, shape)
    calibration, files = deploy.calibration_set(config, args.calibration_images, args.calibration_seed, shape)
    inputs = validation_inputs(config, args.images, shape)
    print("run %s, checkpoint %s, %s at %dx%d; calibrated on %d training images, compared on %d validation images"
          % (args.traindir, os.path.basename(checkpoint), config.net_name, shape[0], shape[1], len(files), len(inputs)))
    options = tf.lite.experimental.QuantizationDebugOptions(
        model_debug_metrics={"unused": lambda floats, quants: 0.0})  # makes the debugger keep the float model
    converter, session = deploy.tflite_converter(graph_def, "int8", "logits", calibration)  # as the export
    with session:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([x[None]] for x in inputs), debug_options=options)
        debugger.run()
    rows = layer_rows(debugger)
    print("\n".join(family_table(rows)))
    error, agree = logits_error(debugger, inputs)
    print("logits: RMSE / std of the float logits %.3f; pixels whose class agrees with float %.2f %% "
          "(rounding alone: RMSE / scale %.2f)" % (error, 100 * agree, ROUNDING))
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if keep:
        nodes = sorted({r["tensor"] for r in rows if r["family"] in keep})
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
        os.makedirs(os.path.dirname(os.path.abspath(args.write)), exist_ok=True)
        with open(args.write, "wb") as handle:
            handle.write(debugger.get_nondebug_quantized_model())
        print("wrote %s: %d ops of %s left in float" % (args.write, len(nodes), ",".join(keep)))


if __name__ == "__main__":
    main()

"""Freezing a graph and folding its batch norms into the convolutions: what test.py runs and --export writes.

Freezing turns the restored variables into constants; training-only and
identity nodes go, and each batch norm is folded into the preceding
convolution's weights and a bias (`fold_batch_norms`: TensorFlow's own
folding scales weights one element at a time in Python and knows no
transposed convs).
"""
import numpy as np

from utils.compat import lazy_import, tf

tensor_util = lazy_import("tensorflow.python.framework.tensor_util")
optimize = lazy_import("tensorflow.python.tools.optimize_for_inference_lib")


def fold_and_strip(graph_def, inputs, outputs, input_types=None):
    """Drop training-only / identity nodes and fold batch norms into convolutions.

    The stripping is TensorFlow's (optimize_for_inference_lib); the folding is
    `fold_batch_norms`: TensorFlow's own scales weights one element at a time in
    Python (18 s for ResNet-18) and knows no transposed convs.
    input_types: one DType per input (default float32 for all).
    """
    types = [dtype.as_datatype_enum for dtype in (input_types or [tf.float32] * len(inputs))]
    stripped = optimize.strip_unused_lib.strip_unused(graph_def, list(inputs), list(outputs), types)
    stripped = optimize.graph_util.remove_training_nodes(stripped, list(outputs))
    stripped = optimize.fuse_decomposed_batch_norm(stripped)
    folded = fold_batch_norms(stripped)
    optimize.ensure_graph_is_valid(folded)
    return folded


def freeze_and_fold(session, inputs, outputs):
    """GraphDef computing tensors `outputs` from placeholders `inputs` with `session`'s current weights
    as constants, batch norm folded into the convolutions; tensor names are kept."""
    names = [tensor.op.name for tensor in outputs]
    frozen = tf.graph_util.convert_variables_to_constants(session, session.graph.as_graph_def(), names)
    return fold_and_strip(frozen, [tensor.op.name for tensor in inputs], names, [t.dtype for t in inputs])


def _scale_filter(op, kernel, scale):
    """Multiply a filter by a per-output-channel scale, for each filter layout."""
    if op == "Conv2D":                      # [kh, kw, in, out]
        return kernel * scale
    if op == "Conv2DBackpropInput":         # transposed conv: [kh, kw, out, in]
        return kernel * scale[:, None]
    multiplier = kernel.shape[3]            # DepthwiseConv2dNative: [kh, kw, in, multiplier], out = in * m + j
    return kernel * scale.reshape(-1, multiplier)


def fold_batch_norms(graph_def):
    """FusedBatchNorm(conv(x, w)) -> BiasAdd(conv(x, w * s), beta - mean * s), s = gamma / sqrt(var + eps).

    For Conv2D, depthwise and transposed convs whose output feeds only the batch
    norm.  Each folded conv gets its own scaled filter constant (copies of a net
    in a multi-scale graph share one); the bias node keeps the batch norm's
    name, so its consumers need no rewiring.
    """
    nodes = {node.name: node for node in graph_def.node}
    consumers = {}
    for node in graph_def.node:
        for name in node.input:
            key = name.split(":")[0].lstrip("^")
            consumers[key] = consumers.get(key, 0) + 1

    def const(name):
        node = nodes.get(name.split(":")[0].lstrip("^"))
        return tensor_util.MakeNdarray(node.attr["value"].tensor) if node is not None and node.op == "Const" else None

    out = tf.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    new_filters = {}   # conv name -> scaled filter constant's name
    for node in graph_def.node:
        conv = None
        if node.op in ("FusedBatchNorm", "FusedBatchNormV3") and not node.attr["is_training"].b \
                and node.attr["data_format"].s in (b"", b"NHWC"):
            conv = nodes.get(node.input[0].split(":")[0])
        foldable = conv is not None and conv.op in ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput") \
            and consumers.get(conv.name) == 1
        params = [const(name) for name in [conv.input[1]] + list(node.input[1:5])] if foldable else [None]
        if any(p is None for p in params):
            out.node.add().CopyFrom(node)
            continue
        kernel, gamma, beta, mean, variance = params
        scale = gamma / np.sqrt(variance + node.attr["epsilon"].f)
        scaled = out.node.add()
        scaled.name, scaled.op = conv.name + "/folded_filter", "Const"
        scaled.attr["dtype"].type = tf.float32.as_datatype_enum
        scaled.attr["value"].tensor.CopyFrom(
            tensor_util.make_tensor_proto(_scale_filter(conv.op, kernel, scale).astype(np.float32)))
        new_filters[conv.name] = scaled.name
        bias = out.node.add()
        bias.name, bias.op = node.name + "/folded_offset", "Const"
        bias.attr["dtype"].type = tf.float32.as_datatype_enum
        bias.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto((beta - mean * scale).astype(np.float32)))
        add = out.node.add()
        add.name, add.op = node.name, "BiasAdd"
        add.input.extend([node.input[0], bias.name])
        add.attr["T"].type = tf.float32.as_datatype_enum
        add.attr["data_format"].s = b"NHWC"
    for node in out.node:
        if node.name in new_filters:
            node.input[1] = new_filters[node.name]
    return strip_dead_constants(out)


def strip_dead_constants(graph_def):
    """Drop constants nothing reads any more (the unscaled filters and batch norm parameters)."""
    used = {name.split(":")[0].lstrip("^") for node in graph_def.node for name in node.input}
    out = tf.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    out.node.extend(node for node in graph_def.node if node.op != "Const" or node.name in used)
    return out


def count_ops(graph_def, op_type):
    return sum(1 for node in graph_def.node if node.op == op_type)

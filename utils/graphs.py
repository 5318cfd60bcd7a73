"""Walking a TF graph: what an output needs, and what that costs in multiply-accumulates, in all or layer by layer.

Shared by the model summary and its per-layer table (arch.py), the training step (which variables
and batch-norm updates a loss actually reaches) and the benchmarks.
"""
import numpy as np

from utils.compat import tf


def _ops(items):
    """The ops of tensors, ops, or lists of them."""
    return [element if isinstance(element, tf.Operation) else element.op
            for item in items for element in (item if isinstance(item, (list, tuple, set)) else [item])]


def ancestors(*outputs):
    """Every op that computing `outputs` runs (tensors, ops, or lists of them; data and control inputs),
    the outputs' own ops included: what TensorFlow executes, unused branches pruned."""
    stack = _ops(outputs)
    seen = set()
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return seen


def op_macs(op):
    """Multiply-accumulates of one op: Conv2D, DepthwiseConv2dNative, Conv2DBackpropInput (transposed conv),
    MatMul and BatchMatMul (attention's products; static shapes required); 0 for every other op."""
    if op.type == "Conv2D":
        kh, kw, cin, _ = op.inputs[1].shape.as_list()
        return int(np.prod(op.outputs[0].shape.as_list())) * kh * kw * cin
    if op.type == "DepthwiseConv2dNative":
        kh, kw, _, _ = op.inputs[1].shape.as_list()
        return int(np.prod(op.outputs[0].shape.as_list())) * kh * kw
    if op.type == "Conv2DBackpropInput":  # transposed conv: every input pixel spreads a kernel
        kh, kw, cout, _ = op.inputs[1].shape.as_list()
        return int(np.prod(op.inputs[2].shape.as_list())) * kh * kw * cout
    if op.type == "MatMul":
        a, b = op.inputs[0].shape.as_list(), op.inputs[1].shape.as_list()
        m, k = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return m * k * n
    if op.type in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
        a = op.inputs[0].shape.as_list()
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return int(np.prod(op.outputs[0].shape.as_list())) * k
    return 0


def count_macs(graph, outputs=None):
    """Multiply-accumulates of the conv / matmul ops in `graph` that `outputs` need (op_macs).

    Batch norm, activations, pooling and resizing are not counted (the
    convention of ../shared/tools/peer_bench and of seg-mentor's "GOPS").
    """
    needed = ancestors(outputs) if outputs is not None else None
    return sum(op_macs(op) for op in graph.get_operations() if needed is None or op in needed)


def count_params(variables):
    """Number of scalars in `variables`."""
    return int(sum(np.prod(v.shape.as_list()) for v in variables))


def descendants(*inputs):
    """Every op that consumes `inputs` (tensors, ops, or lists of them), directly or through others, and the
    inputs' own ops: the activations."""
    stack = _ops(inputs)
    seen = set()
    while stack:
        op = stack.pop()
        if op not in seen:
            seen.add(op)
            stack.extend(consumer for tensor in op.outputs for consumer in tensor.consumers())
    return seen


def scope_at_depth(name, depth):
    """The variable scope holding op or variable `name`, cut to its first `depth` parts (0: the whole scope)."""
    parts = name.split("/")[:-1]
    return "/".join(parts[:depth] if depth else parts)


def layer_rows(graph, variables, inputs, outputs, depth=0):
    """A per-layer table: [{name, output_shape, params, macs}], one row per scope at `depth`, in graph order.

    Every variable of `variables` and every multiply-accumulating op that
    `outputs` need falls in the row of its scope, so the columns add up to
    count_params(variables) and count_macs(graph, outputs) exactly.  A row's
    output shape is that of the last activation (an op between `inputs` and
    `outputs`) in its scope; None where the scope holds none.
    """
    order = {op: index for index, op in enumerate(graph.get_operations())}
    rows = {}

    def row(name, op):
        found = rows.setdefault(name, {"name": name, "output_shape": None, "params": 0, "macs": 0,
                                       "_first": order[op]})
        found["_first"] = min(found["_first"], order[op])
        return found

    for variable in variables:
        row(scope_at_depth(variable.op.name, depth), variable.op)["params"] += count_params([variable])
    needed = ancestors(outputs)
    activations = needed & descendants(inputs)
    for op in sorted(needed, key=order.get):
        macs = op_macs(op)
        if macs:
            row(scope_at_depth(op.name, depth), op)["macs"] += macs
    for op in sorted(activations, key=order.get):
        name = scope_at_depth(op.name, depth)
        if name in rows and op.outputs:
            shape = op.outputs[0].shape
            rows[name]["output_shape"] = shape.as_list() if shape.rank is not None else None
    return [{k: v for k, v in r.items() if k != "_first"} for r in sorted(rows.values(), key=lambda r: r["_first"])]

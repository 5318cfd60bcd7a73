"""Walking a TF graph: what an output needs, and what that costs in multiply-accumulates.

Shared by the model summary (arch.py), the training step (which variables
and batch-norm updates a loss actually reaches) and the benchmarks.
"""
import numpy as np

from utils.compat import tf


def ancestors(*outputs):
    """Every op that computing `outputs` runs (tensors, ops, or lists of them; data and control inputs),
    the outputs' own ops included: what TensorFlow executes, unused branches pruned."""
    stack = []
    for item in outputs:
        for element in (item if isinstance(item, (list, tuple, set)) else [item]):
            stack.append(element if isinstance(element, tf.Operation) else element.op)
    seen = set()
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return seen


def count_macs(graph, outputs=None):
    """Multiply-accumulates of the conv / matmul ops in `graph` that `outputs` need (static shapes required).

    Conv2D, DepthwiseConv2dNative, Conv2DBackpropInput (transposed conv) and
    MatMul; batch norm, activations, pooling and resizing are not counted (the
    convention of ../shared/tools/peer_bench and of seg-mentor's "GOPS").
    """
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


def count_params(variables):
    """Number of scalars in `variables`."""
    return int(sum(np.prod(v.shape.as_list()) for v in variables))

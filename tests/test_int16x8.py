"""TFLite int16x8 (int16 activations, int8 weights) of a transformer: it loads, it is int16, and it is closer
to the float net than int8 is.

int8 costs SegFormer-B0 about 3 points of CamVid mIoU, most of it in LayerNorm, softmax and GELU, where one
int8 step is coarse.  LiteRT has no int16 SQUARED_DIFFERENCE kernel, which tf.nn.moments (LayerNorm's
variance) is made of, and says so only when the model runs: deploy.squared_difference_as_product rewrites it as (a - b) * (a - b) for int16x8.
"""
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tests.test_int8_hard_swish import frozen_seeded_net, run_graph
from utils.inference import deploy, runtimes

SIZE = 64
CLASSES = 5


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    """(MiT-B0 + SegFormer frozen at 64x64, 8 images, their TF logits), seeded random weights."""
    canvases = np.random.RandomState(0).uniform(0, 255, (8, SIZE, SIZE, 3)).astype(np.float32)
    graph_def, expected = frozen_seeded_net("mit_b0", "SegFormer", CLASSES, canvases,
                                            tmp_path_factory.mktemp("mit_int16x8"), 5)
    return graph_def, canvases, expected


def ops(graph_def, kind):
    return sum(node.op == kind for node in graph_def.node)


def test_squared_difference_as_product_keeps_the_values(frozen):
    graph_def, canvases, expected = frozen
    rewritten = deploy.squared_difference_as_product(graph_def)
    assert ops(graph_def, "SquaredDifference") >= 8 * 2  # two LayerNorms a block, 8 blocks in MiT-B0
    assert ops(rewritten, "SquaredDifference") == 0
    assert ops(rewritten, "Sub") == ops(graph_def, "Sub") + ops(graph_def, "SquaredDifference")
    np.testing.assert_allclose(run_graph(rewritten, canvases), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def _tflite(model, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(model)
    return runtimes.TFLiteRunner(str(path), threads=1)


def test_int16x8_runs_with_int16_activations_closer_to_float_than_int8(frozen, tmp_path, monkeypatch):
    graph_def, canvases, expected = frozen
    calibration = canvases[:6]
    errors = {}
    for precision in ("int8", "int16x8"):
        runner = _tflite(deploy.convert_tflite(graph_def, precision, "logits", calibration), tmp_path, precision)
        assert runner.precision == precision
        errors[precision] = float(np.sqrt(np.mean((runner(canvases) - expected) ** 2)))
    tensors = Interpreter(model_path=str(tmp_path / "int16x8")).get_tensor_details()
    assert sum(t["dtype"] == np.int16 for t in tensors) > 100  # the activations, not just an input quantizer
    assert "XNNPACK runs no 16x8 op" in _tflite((tmp_path / "int16x8").read_bytes(), tmp_path, "again").runtime
    spread = float(expected.std())
    assert errors["int16x8"] < 0.5 * errors["int8"], (errors, spread)

    # without the rewrite the model converts and loads, but LiteRT cannot run its int16 SQUARED_DIFFERENCE
    monkeypatch.setattr(deploy, "squared_difference_as_product", lambda graph: graph)
    unrewritten = deploy.convert_tflite(graph_def, "int16x8", "logits", calibration)
    interpreter = Interpreter(model_content=unrewritten, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], canvases[:1])
    with pytest.raises(RuntimeError, match="SQUARED_DIFFERENCE"):
        interpreter.invoke()


def test_int8_io_is_refused_for_int16x8(frozen):
    with pytest.raises(deploy.ExportError, match="--int8_io is for --export_tflite int8"):
        deploy.tflite_converter(frozen[0], "int16x8", "logits", frozen[1], int8_io=True)

"""MobileNetV3's int8 export: hard-swish rewritten so XNNPACK runs the whole int8 net, with the same values.

TFLite fuses x * relu6(x + 3) / 6 into HARD_SWISH, which XNNPACK does not run in int8: every one of them
fell back to TFLite's own kernel and split the XNNPACK graph (MobileNetV3's int8 model was slower than its
fp32 one).  deploy.unfused_hard_swish writes it as relu6(x + 3) * (x / 6) for int8 only.
"""
import collections
import os

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

import nets
from tests.conftest import build
from tests.test_nets import session
from utils.compat import tf
from utils.inference import deploy
from utils.inference.folding import freeze_and_fold

SIZE = 64


def frozen_seeded_net(encoder, decoder, classes, canvases, folder, seed, **settings):
    """(the net frozen and folded at the canvases' size for batch 1, its TF logits on each canvas): seeded random
    weights, batch-norm statistics taken from the canvases (one training-mode pass at decay 0), so that activations
    have a trained net's scale rather than shrinking through unnormalised layers."""
    checkpoint = os.path.join(str(folder), "model.ckpt")
    size = list(canvases.shape[1:3])
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        images = tf.placeholder(tf.float32, [len(canvases)] + size + [3])
        model = build(encoder, decoder, classes, is_training=True, batch_norm_decay=0.0, **settings)
        model.build(nets.get(encoder).preprocess(images))
        with session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(tf.get_collection(tf.GraphKeys.UPDATE_OPS), {images: canvases})
            tf.train.Saver().save(sess, checkpoint)
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1] + size + [3], name="images")
        model = build(encoder, decoder, classes, **settings)
        logits = tf.identity(model.build(nets.get(encoder).preprocess(images)), name="logits")
        with session() as sess:
            tf.train.Saver().restore(sess, checkpoint)
            expected = np.concatenate([sess.run(logits, {images: c[None]}) for c in canvases])
            return freeze_and_fold(sess, [images], [logits]), expected


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    """(MobileNetV3-Small + LR-ASPP frozen at 64x64, 8 images, their TF logits)."""
    canvases = np.random.RandomState(0).uniform(0, 255, (8, SIZE, SIZE, 3)).astype(np.float32)
    graph_def, expected = frozen_seeded_net("mobilenet_v3_small", "LRASPP", 5, canvases,
                                            tmp_path_factory.mktemp("mnv3_int8"), 3, lraspp_channels=16)
    return graph_def, canvases, expected


def run_graph(graph_def, canvases):
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        with tf.Session(graph=graph) as sess:
            return np.concatenate([sess.run("logits:0", {"images:0": c[None]}) for c in canvases])


def ops_and_partitions(model):
    """(op counts of the model, XNNPACK partitions) as LiteRT loads it with its default delegate."""
    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    details = interpreter._get_ops_details()
    plain = Interpreter(model_content=model,
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    plain.allocate_tensors()
    return (collections.Counter(op["op_name"] for op in plain._get_ops_details()),
            sum(op["op_name"] == "DELEGATE" for op in details), interpreter)


def invoke(interpreter, canvases):
    out = []
    for canvas in canvases:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], canvas[None])
        interpreter.invoke()
        out.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    return np.concatenate(out)


def test_rewrite_keeps_the_values_and_touches_every_hard_swish(frozen):
    graph_def, canvases, expected = frozen
    rewritten = deploy.unfused_hard_swish(graph_def)
    added = [node for node in rewritten.node if node.name.endswith("/x_over_6")]
    # MobileNetV3-Small: the stem, 8 of its 11 blocks (expansion and depthwise: 16) and Conv_1 use hard-swish
    assert len(added) == 18
    got = run_graph(rewritten, canvases)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    # a graph without the pattern comes back as it was (ResNet's ReLUs; the squeeze-excite gate has no x *)
    assert deploy.unfused_hard_swish(rewritten) is rewritten


def test_int8_has_no_hard_swish_and_fewer_xnnpack_partitions(frozen, monkeypatch):
    graph_def, canvases, expected = frozen
    calibration = list(canvases)
    ops, partitions, interpreter = ops_and_partitions(deploy.convert_tflite(graph_def, "int8", "logits", calibration))
    assert ops["HARD_SWISH"] == 0 and partitions == 1  # the whole int8 net in one XNNPACK graph
    int8 = invoke(interpreter, canvases)
    # negative control: without the rewrite the converter fuses 18 HARD_SWISH, each a cut in the XNNPACK graph
    monkeypatch.setattr(deploy, "unfused_hard_swish", lambda g: g)
    fused_ops, fused_partitions, fused_interpreter = ops_and_partitions(
        deploy.convert_tflite(graph_def, "int8", "logits", calibration))
    assert fused_ops["HARD_SWISH"] == 18 and fused_partitions >= 10
    fused = invoke(fused_interpreter, canvases)
    # scored like the float model, and like the fused int8 model: class maps agree
    agree = np.mean(np.argmax(int8, -1) == np.argmax(expected, -1))
    fused_agree = np.mean(np.argmax(fused, -1) == np.argmax(expected, -1))
    assert agree >= 0.9 and agree >= fused_agree - 0.03, (agree, fused_agree)


def test_fp32_keeps_the_fused_hard_swish(frozen):
    """fp32 TFLite runs HARD_SWISH inside XNNPACK: one op is faster than three, so it is not rewritten."""
    graph_def, _, _ = frozen
    ops, partitions, _ = ops_and_partitions(deploy.convert_tflite(graph_def, "fp32", "logits"))
    assert ops["HARD_SWISH"] == 18 and partitions == 1

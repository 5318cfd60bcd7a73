"""Export a run folder as a self-contained SavedModel: batch norm folded, training-only ops gone.

    python test.py --traindir tmp/<run> --export exported/
    # anywhere, no seg-mentor code needed:
    model = tf.saved_model.load("exported/")
    out = model.signatures["serving_default"](images=tf.constant(rgb[None], tf.float32))
    out["classes"], out["probabilities"]

The graph is the test-time one (utils/inference.py's geometry) with the resize
to `pixels` computed inside it, so it takes RGB images [N, H, W, 3] of any size
in [0, 255] and returns class maps and softmax probabilities at that size.
Freezing turns the restored variables into constants, TensorFlow's
optimize_for_inference then drops training-only nodes and folds each batch
norm into the preceding convolution's weights and a bias.
"""
import os

from utils.tf1 import tf

SIGNATURE = "serving_default"
INPUT = "images"
OUTPUTS = ("classes", "probabilities")


def scaled_size_op(image_hw, pixels):
    """In-graph `input_pipeline.scaled_size`: larger side -> pixels, rounded half up."""
    height, width = image_hw[0], image_hw[1]
    larger = tf.maximum(height, width)
    return tf.stack([(height * pixels + larger // 2) // larger, (width * pixels + larger // 2) // larger])


def inference_graph_def(traindir, step=None, pixels=None):
    """(frozen GraphDef, runargs, checkpoint path) of the run's test-time graph, outputs named as OUTPUTS."""
    import arch
    import nets
    from utils import runfolder
    from utils.inference import net_probabilities
    args = runfolder.read_runargs(traindir)
    pixels = args.get("pixels") if pixels is None else pixels
    if not pixels:
        raise ValueError("export needs a fixed input side: the run trained at native size, pass --pixels N")
    checkpoint = runfolder.checkpoint_path(traindir, step)
    graph = tf.Graph()
    with graph.as_default():
        flags = {k: v for k, v in args.items() if k not in ("basenet", "extended_arch", "num_classes", "is_training")}
        model = arch.build_arch(args["basenet"], args["extended_arch"], args["num_classes"], is_training=False,
                                **flags)
        images = tf.placeholder(tf.float32, [None, None, None, 3], name=INPUT)
        resized = scaled_size_op(tf.shape(images)[1:3], pixels)
        probabilities = net_probabilities(model.build, nets.get(args["basenet"]).preprocess, images, resized,
                                          (pixels, pixels))
        tf.identity(probabilities, name=OUTPUTS[1])
        tf.argmax(probabilities, axis=-1, output_type=tf.int32, name=OUTPUTS[0])
        with tf.Session() as sess:
            tf.train.Saver().restore(sess, checkpoint)
            frozen = tf.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), list(OUTPUTS))
    return frozen, args, checkpoint


def fold_and_strip(graph_def):
    """Drop training-only / identity nodes and fold batch norms into convolutions.

    TensorFlow's optimize_for_inference folds batch norms that follow Conv2D and
    depthwise convs; the ones after transposed convs (LinkNet, U-Net decoders)
    are folded by `fold_transposed_conv_batch_norms`.
    """
    from tensorflow.python.tools import optimize_for_inference_lib
    stripped = optimize_for_inference_lib.optimize_for_inference(
        graph_def, [INPUT], list(OUTPUTS), tf.float32.as_datatype_enum)
    return fold_transposed_conv_batch_norms(stripped)


def fold_transposed_conv_batch_norms(graph_def):
    """FusedBatchNormV3(Conv2DBackpropInput(w)) -> BiasAdd(Conv2DBackpropInput(w * s), beta - mean * s).

    s = gamma / sqrt(var + eps) per output channel; a transposed conv's filter is
    [kh, kw, out_channels, in_channels], so s scales axis 2.  The bias node keeps
    the batch norm's name, so its consumers need no rewiring.
    """
    import numpy as np
    from tensorflow.python.framework import tensor_util
    nodes = {node.name: node for node in graph_def.node}

    def const(name):
        node = nodes.get(name.split(":")[0].lstrip("^"))
        return tensor_util.MakeNdarray(node.attr["value"].tensor) if node is not None and node.op == "Const" else None

    out = tf.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    replaced_filters = {}
    for node in graph_def.node:
        conv = nodes.get(node.input[0].split(":")[0]) if node.op == "FusedBatchNormV3" else None
        params = [const(name) for name in node.input[1:5]] if conv is not None else None
        if conv is None or conv.op != "Conv2DBackpropInput" or any(p is None for p in params) \
                or const(conv.input[1]) is None or node.attr["is_training"].b:
            out.node.add().CopyFrom(node)
            continue
        gamma, beta, mean, variance = params
        scale = gamma / np.sqrt(variance + node.attr["epsilon"].f)
        replaced_filters[conv.input[1].split(":")[0]] = const(conv.input[1]) * scale[None, None, :, None]
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
        if node.name in replaced_filters:
            node.attr["value"].tensor.CopyFrom(
                tensor_util.make_tensor_proto(replaced_filters[node.name].astype(np.float32)))
    return out


def count_ops(graph_def, op_type):
    return sum(1 for node in graph_def.node if node.op == op_type)


def export_saved_model(traindir, export_dir, step=None, pixels=None):
    """Write the SavedModel; returns a dict describing what was exported."""
    if os.path.exists(export_dir) and os.listdir(export_dir):
        raise FileExistsError("%s exists and is not empty; choose a new --export folder" % export_dir)
    frozen, args, checkpoint = inference_graph_def(traindir, step, pixels)
    folded = fold_and_strip(frozen)
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(folded, name="")
        inputs = {INPUT: graph.get_tensor_by_name(INPUT + ":0")}
        outputs = {name: graph.get_tensor_by_name(name + ":0") for name in OUTPUTS}
        with tf.Session() as sess:
            builder = tf.saved_model.builder.SavedModelBuilder(export_dir)
            signature = tf.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)
            builder.add_meta_graph_and_variables(sess, [tf.saved_model.tag_constants.SERVING],
                                                 signature_def_map={SIGNATURE: signature}, strip_default_attrs=True)
            builder.save()
    return {"export_dir": export_dir, "checkpoint": checkpoint, "net": args.get("net_name"),
            "pixels": pixels or args.get("pixels"),
            "batch_norms_before": count_ops(frozen, "FusedBatchNormV3"),
            "batch_norms_after": count_ops(folded, "FusedBatchNormV3"),
            "nodes_before": len(frozen.node), "nodes_after": len(folded.node)}

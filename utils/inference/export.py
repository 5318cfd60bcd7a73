"""Export a run folder as a self-contained SavedModel: batch norm folded, training-only ops gone.

    python test.py --traindir tmp/<run> --export exported/
    # anywhere, no seg-mentor code needed:
    model = tf.saved_model.load("exported/")
    out = model.signatures["serving_default"](images=tf.constant(rgb[None], tf.float32))
    out["classes"], out["probabilities"]

The graph is the test-time one (utils/inference/geometry.py) with the resize
to `pixels` computed inside it, so it takes RGB images [N, H, W, 3] of any size
in [0, 255] and returns class maps and softmax probabilities at that size.
Freezing turns the restored variables into constants; training-only and
identity nodes go, and each batch norm is folded into the preceding
convolution's weights and a bias (utils/inference/folding.py).  The
Segmenter that test.py runs uses the same folded graph by default.
"""
import os

import arch
import nets
from utils.compat import tf
from utils.inference.folding import count_ops, fold_and_strip
from utils.inference.geometry import net_probabilities, scaled_size_op
from utils.training import runfolder
from utils.training.config import RunConfig

SIGNATURE = "serving_default"
INPUT = "images"
OUTPUTS = ("classes", "probabilities")


def restored_graph_def(traindir, step, build):
    """(frozen GraphDef, RunConfig, checkpoint path): `build(model, config)` makes the test-time graph of the run's
    model (is_training=False) and returns the names of its outputs; the checkpoint's weights become constants."""
    config = RunConfig.load(traindir)
    checkpoint = runfolder.checkpoint_path(traindir, step)
    graph = tf.Graph()
    with graph.as_default():
        outputs = build(arch.build_model(config.model, is_training=False), config)
        with tf.Session() as sess:
            tf.train.Saver().restore(sess, checkpoint)
            frozen = tf.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), list(outputs))
    return frozen, config, checkpoint


def inference_graph_def(traindir, step=None, pixels=None):
    """(frozen GraphDef, RunConfig, checkpoint path) of the run's test-time graph, outputs named as OUTPUTS."""
    def build(model, config):
        side = config.data.pixels if pixels is None else pixels
        if not side:
            raise ValueError("export needs a fixed input side: the run trained at native size, pass --pixels N")
        images = tf.placeholder(tf.float32, [None, None, None, 3], name=INPUT)
        resized = scaled_size_op(tf.shape(images)[1:3], side)
        probabilities = net_probabilities(model.build, nets.get(config.model.encoder).preprocess, images, resized,
                                          (side, side))
        tf.identity(probabilities, name=OUTPUTS[1])
        tf.argmax(probabilities, axis=-1, output_type=tf.int32, name=OUTPUTS[0])
        return OUTPUTS

    return restored_graph_def(traindir, step, build)


def export_saved_model(traindir, export_dir, step=None, pixels=None):
    """Write the SavedModel; returns a dict describing what was exported."""
    if os.path.exists(export_dir) and os.listdir(export_dir):
        raise FileExistsError("%s exists and is not empty; choose a new --export folder" % export_dir)
    frozen, config, checkpoint = inference_graph_def(traindir, step, pixels)
    folded = fold_and_strip(frozen, [INPUT], OUTPUTS)
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
    return {"export_dir": export_dir, "checkpoint": checkpoint, "net": config.net_name,
            "pixels": pixels or config.data.pixels,
            "batch_norms_before": count_ops(frozen, "FusedBatchNormV3"),
            "batch_norms_after": count_ops(folded, "FusedBatchNormV3"),
            "nodes_before": len(frozen.node), "nodes_after": len(folded.node)}

"""Feature extractors: checkpoint-compatible variables, strides, dilation, numerics, BN modes, registry."""
import math
import os

import numpy as np
import pytest
from tensorflow.core.protobuf import rewriter_config_pb2

from tests.conftest import SLIM_VARS
from utils.compat import tf, slim
import nets.registry as registry
from nets import inception_v1, resnet_v1, vgg

REFERENCE_NETS = ("vgg_16", "inception_v1", "resnet_v1_50", "resnet_v1_101", "mobilenet_v1", "mobilenet_v2")
ALL_NETS = registry.NAMES
RESNET18_TRAINABLE_WITHOUT_HEAD = 11176512  # torchvision resnet18 (11,689,512) minus fc (513,000)
RESNET34_TRAINABLE_WITHOUT_HEAD = 21284672  # torchvision resnet34 (21,797,672) minus fc (513,000)


def load_reference(name):
    """<net>.txt -> {variable name: shape tuple}."""
    shapes = {}
    with open(os.path.join(SLIM_VARS, name + ".txt")) as f:
        for line in f:
            var, shape = line.split()
            shapes[var] = tuple(int(d) for d in shape.split(","))
    return shapes


def session():
    """A session without Grappler: these graphs run once or twice, optimizing them costs more than it saves."""
    rewrite = rewriter_config_pb2.RewriterConfig(disable_meta_optimizer=True)
    return tf.Session(config=tf.ConfigProto(graph_options=tf.GraphOptions(rewrite_options=rewrite)))


def variable_shapes():
    return {v.op.name: tuple(v.shape.as_list()) for v in tf.global_variables()}


def build(name, size=(224, 224), base_only=True, output_stride=None, is_training=True,
          num_classes=None, weight_decay=0.0, **kwargs):
    """Build a registry net under its arg_scope the way decoders do; returns (net, end_points, images)."""
    entry = registry.get(name)
    images = tf.placeholder(tf.float32, [1, size[0], size[1], 3], name="images")
    with slim.arg_scope(entry.arg_scope_fn(weight_decay=weight_decay)):
        net, end_points = entry.net_fn(images, num_classes=num_classes or entry.imagenet_classes,
                                       is_training=is_training, base_only=base_only,
                                       output_stride=output_stride, **kwargs)
    return net, end_points, images


def assert_same_variables(got, expected):
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted((k, got[k], expected[k]) for k in set(got) & set(expected) if got[k] != expected[k])
    assert not (missing or extra or wrong), "missing %s\nextra %s\nwrong shape %s" % (
        missing[:10], extra[:10], wrong[:10])


def without_head(reference, entry):
    return {k: v for k, v in reference.items() if not k.startswith(entry.head_scope + "/")}


# ---------------------------------------------------------------- variables vs the slim checkpoints

@pytest.mark.parametrize("name", REFERENCE_NETS)
def test_full_net_variables_equal_reference(name):
    """ImageNet settings (224x224, is_training=True, classifier): exactly the checkpoint's variables."""
    entry = registry.get(name)
    logits, end_points, _ = build(name, base_only=False)
    assert logits.shape.as_list() == [1, entry.imagenet_classes]
    assert_same_variables(variable_shapes(), load_reference(name))


@pytest.mark.parametrize("name", ALL_NETS)
def test_base_only_224_variables_taps_and_fused_bn(name):
    """base_only: reference minus the head, taps at strides 4/8/16/32, every BN fused, L2 losses."""
    entry = registry.get(name)
    images = tf.placeholder(tf.float32, [1, 224, 224, 3])
    features = entry.build(images, is_training=True, weight_decay=1e-4)
    got = variable_shapes()
    assert not [k for k in got if k.startswith(entry.head_scope + "/")], "base_only created head variables"
    if name in REFERENCE_NETS:
        assert_same_variables(got, without_head(load_reference(name), entry))
    for stride, tensor in features.taps.items():
        true_stride = min(stride, entry.top_stride)  # ENet: dilated beyond stride 8 by design
        assert tensor.shape.as_list()[1:3] == [224 // true_stride] * 2, (stride, tensor)
        assert features.true_stride(stride) == true_stride
    assert features.taps[32] is features.top

    # One FusedBatchNorm op per BN layer (is_training=True builds only the training branch).
    fused = [op for op in tf.get_default_graph().get_operations() if op.type.startswith("FusedBatchNorm")]
    moving_means = [k for k in got if k.endswith("moving_mean")]
    assert len(fused) == len(moving_means) and (name == "vgg_16" or name.startswith("mit_")) == (not fused)  # MiT: LayerNorms
    if name == "inception_v1":
        assert not [k for k in got if k.endswith("gamma")]
    assert tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES), "weight_decay added no L2 loss"


@pytest.mark.parametrize("name", ALL_NETS)
def test_base_only_360x480_tap_shapes(name):
    """CamVid size: tap s has ceil(H/s) x ceil(W/s) pixels ('SAME' everywhere, VGG's fc7 re-aligned)."""
    images = tf.placeholder(tf.float32, [1, 360, 480, 3])
    features = registry.get(name).build(images, is_training=False)
    for stride, tensor in features.taps.items():
        stride = min(stride, registry.get(name).top_stride)
        assert tensor.shape.as_list()[1:3] == [math.ceil(360 / stride), math.ceil(480 / stride)], (stride, tensor)


def test_resnet_v1_18_torchvision_layout():
    _, end_points, _ = build("resnet_v1_18", base_only=False)
    got = variable_shapes()
    head = {k: v for k, v in got.items() if k.startswith("resnet_v1_18/logits/")}
    assert head == {"resnet_v1_18/logits/weights": (1, 1, 512, 1000), "resnet_v1_18/logits/biases": (1000,)}
    trainable = sum(int(np.prod(v.shape.as_list())) for v in tf.trainable_variables()
                    if not v.op.name.startswith("resnet_v1_18/logits/"))
    assert trainable == RESNET18_TRAINABLE_WITHOUT_HEAD
    assert got["resnet_v1_18/conv1/weights"] == (7, 7, 3, 64)
    unit = "resnet_v1_18/block2/unit_1/res_block_v1/"
    assert got[unit + "shortcut/weights"] == (1, 1, 64, 128)
    assert got[unit + "conv1/weights"] == (3, 3, 64, 128)
    assert got[unit + "conv2/weights"] == (3, 3, 128, 128)
    for bn in ("gamma", "beta", "moving_mean", "moving_variance"):
        assert got[unit + "shortcut/BatchNorm/" + bn] == (128,)
    assert not [k for k in got if k.endswith("biases") and "/logits/" not in k]
    assert "resnet_v1_18/block1/unit_1/res_block_v1/shortcut/weights" not in got  # identity shortcut
    assert len([k for k in got if k.endswith("/weights")]) == 1 + 16 + 3 + 1
    # Stride 2 in the first unit of blocks 2-4: unit_1 of block2 already at stride 8.
    assert end_points["resnet_v1_18/block2/unit_1/res_block_v1"].shape.as_list()[1] == 28
    assert end_points["resnet_v1_18/block1"].shape.as_list()[1] == 56


def test_resnet_v1_34_torchvision_layout():
    """torchvision's ResNet-34 in resnet_v1_18's conventions: [3, 4, 6, 3] basic blocks, stride in each first unit."""
    _, end_points, _ = build("resnet_v1_34", base_only=False)
    got = variable_shapes()
    assert got["resnet_v1_34/logits/weights"] == (1, 1, 512, 1000)
    trainable = sum(int(np.prod(v.shape.as_list())) for v in tf.trainable_variables()
                    if not v.op.name.startswith("resnet_v1_34/logits/"))
    assert trainable == RESNET34_TRAINABLE_WITHOUT_HEAD
    for block, units in (("block1", 3), ("block2", 4), ("block3", 6), ("block4", 3)):
        found = {k.split("/")[2] for k in got if k.startswith("resnet_v1_34/%s/" % block)}
        assert found == {"unit_%d" % i for i in range(1, units + 1)}, block
    assert got["resnet_v1_34/block3/unit_1/res_block_v1/shortcut/weights"] == (1, 1, 128, 256)
    assert "resnet_v1_34/block3/unit_2/res_block_v1/shortcut/weights" not in got
    assert len([k for k in got if k.endswith("/weights")]) == 1 + 32 + 3 + 1
    assert end_points["resnet_v1_34/block3/unit_1/res_block_v1"].shape.as_list()[1] == 14


# ---------------------------------------------------------------- output_stride (dilation)

@pytest.mark.parametrize("name", ("vgg_16", "inception_v1", "resnet_v1_18", "resnet_v1_50", "mobilenet_v1", "mobilenet_v2"))
@pytest.mark.parametrize("output_stride", (8, 16))
def test_output_stride_keeps_variables(name, output_stride):
    entry = registry.get(name)
    top, end_points, _ = build(name, output_stride=output_stride)
    assert top.shape.as_list()[1:3] == [224 // output_stride] * 2
    for stride, key in entry.taps.items():
        tap = registry.lookup_end_point(end_points, key)
        assert tap.shape.as_list()[1] == 224 // min(stride, output_stride)
    got = variable_shapes()
    if name in REFERENCE_NETS:
        assert_same_variables(got, without_head(load_reference(name), entry))
    else:
        trainable = sum(int(np.prod(v.shape.as_list())) for v in tf.trainable_variables())
        assert trainable == RESNET18_TRAINABLE_WITHOUT_HEAD and len(got) == 100


@pytest.mark.parametrize("name", ALL_NETS)
@pytest.mark.parametrize("output_stride", (4, 12, 64))
def test_unsupported_output_stride_raises(name, output_stride):
    with pytest.raises(ValueError, match="output_stride"):
        build(name, size=(64, 64), output_stride=output_stride)


def _run_dense_vs_strided(name, output_stride, size, fill_bn_stats=True):
    """Same weights (reuse), inference mode: the dense net sampled every 32/os pixels vs the stride-32 net."""
    entry = registry.get(name)
    images = tf.placeholder(tf.float32, [1, size, size, 3])
    with slim.arg_scope(entry.arg_scope_fn(weight_decay=0.0)):
        strided, _ = entry.net_fn(images, num_classes=None, is_training=False, base_only=True)
        dense, _ = entry.net_fn(images, num_classes=None, is_training=False, base_only=True,
                                output_stride=output_stride, reuse=True)
    randomize = randomize_variables_op(entry.scope)
    with session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(randomize)
        x = np.random.RandomState(0).uniform(-1, 1, [1, size, size, 3])
        strided_v, dense_v = sess.run([strided, dense], {images: x})
    step = 32 // output_stride
    return strided_v, dense_v[:, ::step, ::step]


@pytest.mark.parametrize("name,output_stride", [("resnet_v1_18", 8), ("inception_v1", 8)])
def test_dense_output_equals_strided_output(name, output_stride):
    """Dilation as a parameter: at os, the net computes the stride-32 result at every pixel.

    (Exact for the nets whose strided layers pad symmetrically; MobileNets and
    VGG's replicated border follow the slim/FCN conventions instead.)"""
    strided, dense = _run_dense_vs_strided(name, output_stride, 128)
    assert strided.shape == dense.shape
    scale = np.abs(strided).max()
    assert scale > 1e-3
    np.testing.assert_allclose(dense, strided, atol=1e-4 * scale, rtol=0)


# ---------------------------------------------------------------- numerics vs tf_slim.nets

def randomize_variables_op(scope):
    """Random weights and BN statistics (so BN in inference mode is not the identity)."""
    ops = []
    for var in tf.global_variables(scope + "/"):
        shape, name = var.shape.as_list(), var.op.name
        if name.endswith(("moving_variance", "gamma")):
            value = tf.random_uniform(shape, 0.5, 2.0)
        elif name.endswith(("moving_mean", "beta", "biases")):
            value = tf.random_normal(shape, 0.0, 0.1)
        else:
            value = tf.random_normal(shape, 0.0, float(np.sqrt(2.0 / np.prod(shape[:-1]))))
        ops.append(var.assign(value))
    return tf.group(*ops)


def copy_variables_op(src_scope, dst_scope):
    src = {v.op.name[len(src_scope):]: v for v in tf.global_variables(src_scope + "/")}
    dst = {v.op.name[len(dst_scope):]: v for v in tf.global_variables(dst_scope + "/")}
    assert dst and set(dst) <= set(src), sorted(set(dst) - set(src))[:5]
    return tf.group(*[dst[k].assign(src[k].read_value()) for k in dst])


def run_against_reference(pairs, images, ref_scope, our_scope, transform=None):
    """Random weights in `ref_scope`, copied to `our_scope`; each (ref, ours) pair must agree to 1e-4.

    transform(i, ref_value) maps the i-th reference value onto ours' layout (default: reshape).
    """
    with session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(randomize_variables_op(ref_scope))
        sess.run(copy_variables_op(ref_scope, our_scope))
        x = np.random.RandomState(1).uniform(-1, 1, images.shape.as_list())
        results = sess.run(pairs, {images: x})
    for i, (ref, ours) in enumerate(results):
        ref = transform(i, ref) if transform else ref.reshape(ours.shape)
        assert ref.shape == ours.shape, (i, ref.shape, ours.shape)
        scale = max(1.0, np.abs(ref).max())
        assert np.abs(ref - ours).max() <= 1e-4 * scale, (i, np.abs(ref - ours).max(), scale)


def test_resnet_v1_50_matches_tf_slim_and_dilates_exactly():
    from tf_slim.nets import resnet_v1 as slim_resnet_v1
    images = tf.placeholder(tf.float32, [1, 64, 64, 3])
    with slim.arg_scope(slim_resnet_v1.resnet_arg_scope()):
        ref, ref_points = slim_resnet_v1.resnet_v1_50(images, 10, is_training=False, scope="ref")
    with slim.arg_scope(resnet_v1.resnet_arg_scope()):
        ours, points = resnet_v1.resnet_v1_50(images, 10, is_training=False, scope="ours")
        dense, _ = resnet_v1.resnet_v1_50(images, is_training=False, base_only=True, output_stride=16,
                                          reuse=True, scope="ours")
    strided = points["ours/block4"]
    run_against_reference([(ref, ours), (ref_points["ref/block3"], points["ours/block3"]),
                           (ref_points["ref/block4"], strided), (strided, dense[:, ::2, ::2])],
                          images, "ref", "ours")


def test_inception_v1_matches_tf_slim():
    from tf_slim.nets import inception_v1 as slim_inception_v1
    images = tf.placeholder(tf.float32, [1, 224, 224, 3])
    with slim.arg_scope(slim_inception_v1.inception_v1_arg_scope()):
        ref, ref_points = slim_inception_v1.inception_v1(images, 10, is_training=False, scope="ref")
    with slim.arg_scope(inception_v1.inception_v1_arg_scope()):
        ours, points = inception_v1.inception_v1(images, 10, is_training=False, scope="ours")
    run_against_reference([(ref, ours), (ref_points["Mixed_4f"], points["Mixed_4f"]),
                           (ref_points["Mixed_5c"], points["Mixed_5c"])], images, "ref", "ours")


def test_vgg_16_matches_tf_slim_and_realigns_fc7():
    """Same convs and fc6/fc7 as slim; base_only's fc7 is slim's 'VALID' fc7 edge-padded by 3 (256 input: 2x2 -> 8x8)."""
    from tf_slim.nets import vgg as slim_vgg
    images = tf.placeholder(tf.float32, [1, 256, 256, 3])
    with slim.arg_scope(slim_vgg.vgg_arg_scope()):
        _, ref_points = slim_vgg.vgg_16(images, 10, is_training=False, spatial_squeeze=False, scope="ref")
    with slim.arg_scope(vgg.vgg_arg_scope()):
        ours, points = vgg.vgg_16(images, is_training=False, base_only=True, scope="ours")
    assert ours.shape.as_list() == [1, 8, 8, 4096]
    assert ref_points["ref/fc7"].shape.as_list() == [1, 2, 2, 4096]

    def edge_pad_fc7(i, ref):
        return np.pad(ref, [(0, 0), (3, 3), (3, 3), (0, 0)], mode="edge") if i == 1 else ref

    run_against_reference([(ref_points["ref/pool5"], points["ours/pool5"]), (ref_points["ref/fc7"], ours)],
                          images, "ref", "ours", transform=edge_pad_fc7)


# ---------------------------------------------------------------- VGG alignment details

def test_replicate_border_works_on_one_pixel_maps():
    x = tf.constant(np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3))
    padded = vgg.replicate_border(vgg.replicate_border(x, 1, 3, 3), 2, 3, 3)
    assert padded.shape.as_list() == [1, 7, 8, 3]
    with session() as sess:
        value = sess.run(padded)
    np.testing.assert_array_equal(value[0, :, :4], np.broadcast_to(np.arange(3.0), (7, 4, 3)))
    np.testing.assert_array_equal(value[0, :, 4:], np.broadcast_to(np.arange(3.0, 6.0), (7, 4, 3)))


@pytest.mark.parametrize("size,expected", [((64, 96), (2, 3)), ((512, 512), (16, 16))])
def test_vgg_base_output_has_pool5_size(size, expected):
    """Tiny inputs (pool5 smaller than fc6's 7x7) build too; 512x512 keeps the cheap VALID fc6 (10x10)."""
    top, end_points, _ = build("vgg_16", size=size)
    assert top.shape.as_list()[1:3] == list(expected)
    assert end_points["vgg_16/pool5"].shape.as_list()[1:3] == list(expected)
    fc7 = end_points["vgg_16/fc7"].shape.as_list()[1:3]
    assert fc7 == ([1, 1] if size[0] < 224 else [10, 10])


# ---------------------------------------------------------------- is_training as a tensor

@pytest.mark.parametrize("name", ("resnet_v1_18", "inception_v1"))
def test_is_training_placeholder(name):
    """BN (and dropout) switch with a bool placeholder; UPDATE_OPS move the moving averages."""
    is_training = tf.placeholder_with_default(False, [], name="is_training")
    out, _, images = build(name, size=(64, 64), base_only=(name != "inception_v1"),
                           is_training=is_training, num_classes=5)
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    moving_means = [v for v in tf.global_variables() if v.op.name.endswith("moving_mean")]
    assert update_ops and len(update_ops) == 2 * len(moving_means)
    with session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(randomize_variables_op(registry.get(name).scope))
        x = np.random.RandomState(2).uniform(-1, 1, [1, 64, 64, 3])
        infer_1, infer_2 = sess.run(out, {images: x}), sess.run(out, {images: x})
        train = sess.run(out, {images: x, is_training: True})
        before = sess.run(moving_means[0])
        sess.run(update_ops, {images: x, is_training: True})
        after = sess.run(moving_means[0])
    np.testing.assert_array_equal(infer_1, infer_2)
    assert np.abs(train - infer_1).max() > 1e-3 * max(1.0, np.abs(infer_1).max())
    assert np.abs(after - before).max() > 0


# ---------------------------------------------------------------- registry

def test_registry_unknown_name_lists_valid_names():
    with pytest.raises(registry.UnknownNetError) as info:
        registry.get("nope")
    for name in ALL_NETS:
        assert name in str(info.value)


@pytest.mark.parametrize("name", ALL_NETS)
def test_registry_entry_resolves(name):
    entry = registry.get(name)
    assert callable(entry.net_fn) and callable(entry.arg_scope_fn)
    assert entry.net_fn.__name__ == entry.function
    scope = entry.arg_scope_fn(weight_decay=1e-3)
    assert isinstance(scope, dict) and scope
    assert {4, 8, 16} <= set(entry.taps) and 32 not in entry.taps  # finer taps (1, 2) are optional
    assert entry.checkpoint or entry.decoder, "a net without an ImageNet checkpoint names its own decoder"

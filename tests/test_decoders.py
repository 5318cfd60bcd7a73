"""The decoder zoo beyond FCN/LinkNet: U-Net, DeepLab v3 / v3+, PSPNet, over every encoder."""
import numpy as np
import pytest

import arch
import decoders
import nets
from decoders.pspnet import adaptive_average_pool
from tests.conftest import CROSS_ENCODERS, build
from utils.compat import native_atrous, tf
from utils.data.dataset_info import dataset_files
from utils.data.pipeline import make_dataset
from utils.graphs import ancestors
from utils.training.losses import segmentation_loss
from utils.training.config import RunConfig
from utils.training.step import TrainStep

NEW_DECODERS = ("UNet", "DeepLabV3", "DeepLabV3Plus", "PSPNet", "PSPNetLite")
BEYOND_SEG_MENTOR = tuple(name for name in decoders.NAMES if name not in ("FCN", "LinkNet"))  # every other one


def test_help_lists_every_decoder_and_unknown_lists_valid_names():
    names = decoders.NAMES
    assert names[:2] == ("FCN", "LinkNet") and set(NEW_DECODERS) <= set(names)
    with pytest.raises(arch.UnknownDecoderError, match="valid names: FCN, LinkNet, "):
        decoders.get("DeepLabV4")


# ResNet-34 and -101 are ResNet-18's and -50's code with other block counts (their taps: test_nets, test_arch),
# MobileNet v3 Small is Large's code with other blocks
BUILD_ENCODERS = tuple(name for name in CROSS_ENCODERS
                       if name not in ("resnet_v1_34", "resnet_v1_101", "mobilenet_v3_small"))


@pytest.mark.parametrize("encoder", BUILD_ENCODERS)
def test_every_encoder_with_every_new_decoder_builds(encoder):
    """Decoders share encoders (building those dominates): one at stride 32, one dilated for DeepLab, one
    per other request (SegNet's pooling indices); each decoder over the encoders it declares."""
    size = (96, 128)
    images = tf.placeholder(tf.float32, [2, size[0], size[1], 3])
    is_training = True  # a Python bool: batch norm without tf.cond's two branches (half the ops to build)
    shared = {}
    top_stride = nets.get(encoder).top_stride
    dilates = 16 in nets.get(encoder).output_strides  # MiT does not: DeepLab keeps it at 32
    for decoder in BEYOND_SEG_MENTOR:
        cls = decoders.get(decoder)
        if encoder not in cls.compatible_encoders():
            with pytest.raises(arch.IncompatibleEncoderError, match="its encoders: "):
                build(encoder, decoder, 5)
            continue
        stride = min((cls.default_output_stride if dilates else None) or 32, top_stride)  # DeepLab: 16
        key = (stride, tuple(sorted(cls.encoder_args.items())))
        model = build(encoder, decoder, 5, is_training=is_training, aux_loss_weight=0.4,
                      decoder_scope="decoder_" + decoder)
        with tf.variable_scope("encoder%d" % (list(shared).index(key) if key in shared else len(shared))):
            logits = model.build(images, features=shared.get(key))
        shared.setdefault(key, model.features)
        assert logits.shape.as_list() == [2, size[0], size[1], 5], (encoder, decoder)
        for aux in model.aux_logits:
            assert aux.shape.as_list() == [2, size[0], size[1], 5]
        assert bool(model.aux_logits) == decoder.startswith("PSPNet")
    for (stride, _), features in shared.items():
        assert features.true_stride(32) == stride
    assert {stride for stride, _ in shared} == ({min(16, top_stride), top_stride} if dilates else {top_stride})


@pytest.mark.parametrize("output_stride,rates", [(8, (12, 24, 36)), (16, (6, 12, 18)), (32, (3, 6, 9))])
def test_aspp_rates_follow_the_true_output_stride(output_stride, rates):
    model = build("resnet_v1_18", "DeepLabV3", 4, output_stride=output_stride)
    model.build(tf.placeholder(tf.float32, [1, 128, 128, 3]))
    assert model.features.true_stride(32) == output_stride
    assert model.atrous_rates() == rates
    conv_names = {v.op.name for v in model.decoder_variables()}
    assert all("decoder/aspp/conv_3x3_rate%d/weights" % r in conv_names for r in rates)


def test_deeplab_defaults_to_output_stride_16_and_v3plus_uses_stride4_tap():
    plus = build("mobilenet_v2", "DeepLabV3Plus", 4)
    plus.build(tf.placeholder(tf.float32, [1, 128, 128, 3]))
    assert plus.features.true_stride(32) == 16
    assert plus.skip_strides() == (4,)
    low = [v for v in plus.decoder_variables() if "low_level/weights" in v.op.name][0]
    assert low.shape.as_list() == [1, 1, int(plus.features.taps[4].shape[-1]), 48]


def test_pspnet_aux_head_only_for_training_graphs():
    infer = build("resnet_v1_18", "PSPNet", 4, is_training=False, aux_loss_weight=0.4)
    infer.build(tf.placeholder(tf.float32, [1, 96, 96, 3]))
    assert infer.aux_logits == []
    with tf.Graph().as_default():
        trainable = build("resnet_v1_18", "PSPNet", 4, is_training=True, aux_loss_weight=0.4)
        trainable.build(tf.placeholder(tf.float32, [1, 96, 96, 3]))
        assert len(trainable.aux_logits) == 1
        assert any("decoder/aux/conv/weights" == v.op.name for v in trainable.decoder_variables())
        bins = sorted(v.op.name for v in trainable.decoder_variables() if "/bin" in v.op.name and "weights" in v.op.name)
        assert [b.split("/")[2] for b in bins] == ["bin1", "bin2", "bin3", "bin6"]


def _adaptive_pool_reference(x, bins):
    """PyTorch's AdaptiveAvgPool2d, written out cell by cell."""
    n, h, w, c = x.shape
    out = np.zeros((n, bins, bins, c), np.float64)
    for i in range(bins):
        for j in range(bins):
            top, bottom = (i * h) // bins, -(-((i + 1) * h) // bins)
            left, right = (j * w) // bins, -(-((j + 1) * w) // bins)
            out[:, i, j] = x[:, top:bottom, left:right].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("dynamic", (False, True))
def test_adaptive_average_pool_matches_pytorch_semantics_and_has_a_gradient(dynamic):
    x = np.random.RandomState(0).rand(2, 7, 11, 3).astype(np.float32)  # sizes that make cells overlap
    inputs = tf.placeholder(tf.float32, [2, None, None, 3] if dynamic else x.shape)
    pooled = {bins: adaptive_average_pool(inputs, bins) for bins in (1, 2, 3, 6)}
    grad = tf.gradients(tf.add_n([tf.reduce_sum(p) for p in pooled.values()]), inputs)[0]
    with tf.Session() as sess:
        values, grad_value = sess.run([pooled, grad], {inputs: x})
    for bins, value in values.items():
        assert pooled[bins].shape.as_list() == [2, bins, bins, 3]
        np.testing.assert_allclose(value, _adaptive_pool_reference(x, bins), rtol=1e-5, atol=1e-6)
    assert grad_value.shape == x.shape and np.all(grad_value > 0)


def test_stages_beyond_the_encoder_stride_are_not_run_or_trained():
    """PSPNet at --encoder_stride 8: ResNet blocks 3-4 exist (checkpoint names) but cost nothing per step."""
    images, labels = tf.zeros([2, 64, 64, 3]), tf.zeros([2, 64, 64], tf.int32)
    settings = dict(basenet="resnet_v1_18", extended_arch="PSPNetLite", num_classes=5, ignore_label=5, fcn16=True,
                    fcn8=False, fcn4=False, trainable_upsampling=False, zero_init_skips=False, output_stride=None,
                    weight_decay=1e-4, aux_loss_weight=0.0, encoder_stride=8, learnrate=1e-3, momentum=0.9,
                    difflr=1.0, decaylr=False, total_steps=10)
    step = TrainStep(images, labels, tf.placeholder_with_default(True, []), RunConfig.from_flat_runargs(settings))
    unused = {v.op.name.split("/")[1] for v in step.unused_variables}
    assert unused == {"block3", "block4"}
    runs = ancestors(step.train_op)
    assert not any("block4" in op.name and op.type == "Conv2D" for op in runs)
    assert any("block2" in op.name and op.type == "Conv2D" for op in runs)
    updates = [u if isinstance(u, tf.Operation) else u.op for u in tf.get_collection(tf.GraphKeys.UPDATE_OPS)]
    updated = {op.name.split("/")[1] for op in updates if op in runs and op.name.startswith("resnet_v1_18/")}
    assert updated == {"conv1", "block1", "block2"}


def _fixed_sample_batch(datapath, preprocessing):
    data = make_dataset(dataset_files(datapath, "camvid", "training"), preprocessing, pixels=96, batch_size=2,
                        ignore_label=11, training=False, augment=False)
    batch = tf.data.make_one_shot_iterator(data).get_next()
    with tf.Session() as sess:
        return sess.run([batch["image"], batch["label"]])


def encoder_for(decoder):
    """ResNet-18, or the first encoder a decoder works with when it has its own (SegNet: vgg_16)."""
    valid = decoders.get(decoder).compatible_encoders()
    return "resnet_v1_18" if "resnet_v1_18" in valid else valid[0]


# The decoders whose default graphs hold dilated convolutions: their training steps depend on the backend's
# kernels (tests/test_native_atrous.py), so .ci/run also runs them with oneDNN off.
DILATED = ("DeepLabV3", "DeepLabV3Plus", "ENet", "LRASPP")


@pytest.mark.parametrize("decoder", [pytest.param(name, marks=pytest.mark.backend) if name in DILATED else name
                                     for name in decoders.NAMES])
def test_decoder_learns_a_fixed_camvid_batch(decoder, sample_datapath):
    """A few Adam steps on one fixed batch of the CamVid sample lower the loss."""
    encoder = encoder_for(decoder)
    with tf.Graph().as_default():
        images_np, labels_np = _fixed_sample_batch(sample_datapath, nets.get(encoder).preprocessing)
    images, labels = tf.constant(images_np), tf.constant(labels_np)
    model = build(encoder, decoder, 11, is_training=True, aux_loss_weight=0.4)
    logits = model.build(images)
    loss = segmentation_loss(logits, labels, 11, 11)
    total = loss + sum(0.4 * segmentation_loss(a, labels, 11, 11) for a in model.aux_logits)
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        step = tf.train.AdamOptimizer(1e-3).minimize(total)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        # the from-scratch nets with their own encoders (ENet: spatial dropout, 0.36 M parameters) move slower
        steps = 6 if nets.get(encoder).checkpoint else 12
        losses = [sess.run([step, loss])[1] for _ in range(steps)]
        losses.append(sess.run(loss))
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize("decoder", decoders.NAMES)
def test_the_dilated_list_is_the_decoders_with_dilated_convolutions(decoder):
    """DILATED above is exactly the decoders whose training graph has a dilated convolution (on either route)."""
    with native_atrous.forced(native_atrous.SPACE_TO_BATCH):
        build(encoder_for(decoder), decoder, 11, is_training=True).build(tf.placeholder(tf.float32, [1, 256, 256, 3]))
    ops = tf.get_default_graph().get_operations()
    dilated = any(op.type == "SpaceToBatchND" or op.type.startswith(("Conv2D", "DepthwiseConv2dNative"))
                  and op.get_attr("dilations") != [1, 1, 1, 1] for op in ops)
    assert dilated == (decoder in DILATED)


def test_encoder_stride_truncates_the_encoder_like_smp_encoder_depth():
    model = build("resnet_v1_18", "PSPNet", 4, encoder_stride=8)
    logits = model.build(tf.placeholder(tf.float32, [1, 128, 128, 3]))
    needed = {op.name for op in ancestors([logits])}
    assert any(name.startswith("resnet_v1_18/block2/") for name in needed)
    assert not any(name.startswith("resnet_v1_18/block3/") for name in needed)  # never computed
    assert model.active_skip_strides() == ()
    linknet = build("resnet_v1_18", "LinkNet", 4, encoder_stride=16)
    assert linknet.active_skip_strides() == (8, 4)

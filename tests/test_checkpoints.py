"""restore_encoder: exact round trip, clear errors by name, head reported as unused."""
import numpy as np
import pytest

from utils.compat import tf, slim
import nets.registry as registry
from nets import checkpoints
from nets.checkpoints import CheckpointMismatchError, restore_encoder

NET = "mobilenet_v1"  # small and quick to build; the helper only sees names and shapes
ENTRY = registry.get(NET)
HEAD = ENTRY.head_scope


def build(base_only, outer_scope=None):
    images = tf.placeholder(tf.float32, [1, 32, 32, 3])
    with slim.arg_scope(ENTRY.arg_scope_fn(weight_decay=0.0)):
        if outer_scope:
            with tf.variable_scope(outer_scope):
                return ENTRY.net_fn(images, num_classes=1001, is_training=False, base_only=base_only)
        return ENTRY.net_fn(images, num_classes=1001, is_training=False, base_only=base_only)


def model_values(sess):
    return {v.op.name: value for v, value in zip(tf.model_variables(), sess.run(tf.model_variables()))}


def randomize(sess):
    """Distinct random values everywhere (initializers leave BN stats at 0/1, which would hide mix-ups)."""
    sess.run([v.assign(tf.random_normal(v.shape)) for v in tf.model_variables()])


@pytest.fixture(scope="module")
def full_checkpoint(tmp_path_factory):
    """A checkpoint of the full ImageNet net (with head) and its values, written from a throwaway graph."""
    path = str(tmp_path_factory.mktemp("ckpt") / "full.ckpt")
    with tf.Graph().as_default():
        build(base_only=False)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            randomize(sess)
            values = model_values(sess)
            tf.train.Saver(tf.model_variables()).save(sess, path)
    return path, values


def test_round_trip_into_base_only_graph_reports_head_unused(full_checkpoint):
    path, saved = full_checkpoint
    build(base_only=True)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        report = restore_encoder(sess, path, ENTRY.scope, exclude=(HEAD,))
        restored = model_values(sess)
    assert sorted(report.restored) == sorted(restored) and len(restored) == 135
    assert report.unused_head == [HEAD + "/Conv2d_1c_1x1/biases", HEAD + "/Conv2d_1c_1x1/weights"]
    assert report.unexpected == [] and report.skipped == []
    for name, value in restored.items():
        np.testing.assert_array_equal(value, saved[name], err_msg=name)
    assert "classifier head not used" in report.summary() and path in report.summary()


def test_without_exclude_the_head_is_reported_unexpected_not_an_error(full_checkpoint):
    path, _ = full_checkpoint
    build(base_only=True)
    with tf.Session() as sess:
        report = restore_encoder(sess, path, ENTRY.scope)
    assert len(report.unexpected) == 2 and report.unused_head == []
    assert "WARNING 2 checkpoint variables unused" in report.summary()


def test_excluded_graph_variables_are_skipped(full_checkpoint):
    """Fine-tuning a full net with a new head: the head stays initialized, the rest restores."""
    path, saved = full_checkpoint
    build(base_only=False)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        report = restore_encoder(sess, path, ENTRY.scope, exclude=(HEAD,))
        values = model_values(sess)
    assert report.skipped == [HEAD + "/Conv2d_1c_1x1/biases", HEAD + "/Conv2d_1c_1x1/weights"]
    assert not np.array_equal(values[HEAD + "/Conv2d_1c_1x1/weights"], saved[HEAD + "/Conv2d_1c_1x1/weights"])
    np.testing.assert_array_equal(values["MobilenetV1/Conv2d_0/weights"], saved["MobilenetV1/Conv2d_0/weights"])


def test_net_under_an_outer_scope(full_checkpoint):
    path, saved = full_checkpoint
    build(base_only=True, outer_scope="encoder")
    with tf.Session() as sess:
        report = checkpoints.restore_registry_entry(sess, path, ENTRY, graph_scope="encoder/" + ENTRY.scope)
        value = sess.run(tf.model_variables("encoder/MobilenetV1/Conv2d_13_pointwise/weights")[0])
    assert len(report.restored) == 135
    np.testing.assert_array_equal(value, saved["MobilenetV1/Conv2d_13_pointwise/weights"])


def test_missing_and_mis_shaped_variables_raise_one_clear_error(tmp_path):
    """One variable left out of the file, one saved with the wrong shape: both named, with shapes and file."""
    path = str(tmp_path / "broken.ckpt")
    missing = "MobilenetV1/Conv2d_13_pointwise/weights"
    wrong = "MobilenetV1/Conv2d_0/weights"
    with tf.Graph().as_default():
        build(base_only=True)
        var_list = {v.op.name: v for v in tf.model_variables() if v.op.name not in (missing, wrong)}
        var_list[wrong] = tf.Variable(tf.zeros([3, 3, 3, 16]), name="wrong_shape")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver(var_list).save(sess, path)

    build(base_only=True)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        before = sess.run(tf.model_variables("MobilenetV1/Conv2d_1_pointwise/weights")[0])
        with pytest.raises(CheckpointMismatchError) as info:
            restore_encoder(sess, path, ENTRY.scope, exclude=(HEAD,))
        after = sess.run(tf.model_variables("MobilenetV1/Conv2d_1_pointwise/weights")[0])
    message = str(info.value)
    assert path in message
    assert missing in message and "[1, 1, 1024, 1024]" in message
    assert wrong in message and "[3, 3, 3, 32]" in message and "[3, 3, 3, 16]" in message
    assert set(info.value.missing) == {missing} and set(info.value.mismatched) == {wrong}
    np.testing.assert_array_equal(before, after)  # nothing restored on error
    assert isinstance(info.value, ValueError)


def test_empty_scope_is_an_error(full_checkpoint):
    path, _ = full_checkpoint
    build(base_only=True)
    with tf.Session() as sess:
        with pytest.raises(ValueError, match="no model variables under 'resnet_v1_50'"):
            restore_encoder(sess, path, "resnet_v1_50")

"""The training recipe's parts against hand-computed values: losses, class weights, schedules, optimizers."""
import json
import math
import types

import numpy as np
import pytest

from utils.compat import slim, tf
from utils.compat.replicas import all_sum
from decoders.linknet import LinkNet
from utils.training import class_weights, losses, loop, schedule
from utils.training.config import TrainSettings
from utils.training.losses import LossSettings
from utils.training.optimizer import train_op
from utils.training.placement import Placement

IGNORE = 255
# Two valid pixels and one ignored one; softmax probabilities chosen by hand:
# pixel 1 label 0 with p = (0.8, 0.2), pixel 2 label 1 with p = (0.4, 0.6).
PROBABILITIES = np.array([[[[0.8, 0.2], [0.4, 0.6], [0.5, 0.5]]]], np.float32)
LABELS = np.array([[[0, 1, IGNORE]]], np.int32)


def _loss(settings, probabilities=PROBABILITIES, labels=LABELS, num_classes=2):
    logits = tf.constant(np.log(probabilities))
    terms = losses.loss_terms(logits, tf.constant(labels), num_classes, IGNORE, settings)
    with tf.Session() as sess:
        return float(sess.run(losses.finish(terms)))


def test_losses_against_hand_computed_values():
    ce = (-math.log(0.8) - math.log(0.6)) / 2                                  # 0.366985
    assert _loss(LossSettings("ce")) == pytest.approx(ce, rel=1e-5)
    focal = (0.2 ** 2 * -math.log(0.8) + 0.4 ** 2 * -math.log(0.6)) / 2       # (1 - p_t)^2 * -log p_t
    assert _loss(LossSettings("focal", focal_gamma=2.0)) == pytest.approx(focal, rel=1e-5)
    weighted = (1.0 * -math.log(0.8) + 3.0 * -math.log(0.6)) / 2               # per-pixel weight / valid count
    assert _loss(LossSettings("ce", class_weight_values=(1.0, 3.0))) == pytest.approx(weighted, rel=1e-5)
    assert _loss(LossSettings("ce", ohem_top_k=0.5)) == pytest.approx(-math.log(0.6), rel=1e-5)  # hardest 1 of 2
    # soft Dice per class: class 0 I = 0.8, P = 1.2, Y = 1; class 1 I = 0.6, P = 0.8, Y = 1 (epsilon 1)
    dice = 1 - ((2 * 0.8 + 1) / (1.2 + 1 + 1) + (2 * 0.6 + 1) / (0.8 + 1 + 1)) / 2
    assert _loss(LossSettings("dice")) == pytest.approx(dice, rel=1e-5)
    assert _loss(LossSettings("ce+dice")) == pytest.approx(ce + dice, rel=1e-5)


def test_cross_entropy_equals_tensorflows_fused_op_in_value_and_gradient():
    """losses.softmax_cross_entropy (classes on the outer axis) against tf.nn.sparse_softmax_cross_entropy_with_logits,
    on logits far from 0 (the max is subtracted) and a non-uniform upstream gradient (weights, OHEM, focal)."""
    rng = np.random.RandomState(0)
    logits = tf.constant(rng.randn(2, 5, 7, 12).astype(np.float32) * 30.0 + 50.0)
    labels = tf.constant(rng.randint(0, 12, (2, 5, 7)).astype(np.int32))
    upstream = tf.constant(rng.rand(2, 5, 7).astype(np.float32))
    ours = losses.softmax_cross_entropy(logits, labels)
    fused = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    gradients = [tf.gradients(tf.reduce_sum(loss * upstream), logits)[0] for loss in (ours, fused)]
    with tf.Session() as sess:
        ours, fused, (ours_grad, fused_grad) = sess.run([ours, fused, gradients])
    assert ours.shape == fused.shape == (2, 5, 7) and ours_grad.shape == (2, 5, 7, 12)
    np.testing.assert_allclose(ours, fused, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ours_grad, fused_grad, rtol=1e-5, atol=1e-6)
    assert fused.max() > 10.0  # confident mistakes are in the sample, not only near-uniform pixels


def test_lovasz_softmax_by_hand_and_against_the_reference():
    """Two pixels of class 0, probabilities 0.8 and 0.4: errors 0.6, 0.2 sorted; Jaccard 0.5, 1 -> gradient
    0.5, 0.5; loss 0.6 * 0.5 + 0.2 * 0.5 = 0.4 (class 1 absent, not averaged).  The ignored pixel changes
    nothing."""
    labels = np.array([[[0, 0, IGNORE]]], np.int32)
    assert _loss(LossSettings("lovasz"), labels=labels) == pytest.approx(0.4, rel=1e-5)
    rng = np.random.RandomState(0)
    logits = rng.randn(3, 5, 7, 4).astype(np.float32) * 2
    labels = rng.randint(0, 4, (3, 5, 7)).astype(np.int32)
    labels[0, :2] = IGNORE
    labels[2] = np.where(labels[2] == 3, 1, labels[2])  # a class absent from one image
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert _loss(LossSettings("lovasz"), probabilities, labels, 4) == pytest.approx(
        _lovasz_reference(probabilities, labels, 4), rel=1e-5)


def _lovasz_reference(probabilities, labels, num_classes):
    """Berman et al.'s lovasz_softmax(per_image=True, classes='present', ignore) in numpy."""
    per_image = []
    for probs, label in zip(probabilities, labels):
        valid = label != IGNORE
        probs, label = probs[valid], label[valid]
        class_losses = []
        for c in range(num_classes):
            foreground = (label == c).astype(np.float64)
            if foreground.sum() == 0:
                continue
            errors = np.abs(foreground - probs[:, c])
            order = np.argsort(-errors, kind="stable")
            sorted_fg = foreground[order]
            intersection = sorted_fg.sum() - np.cumsum(sorted_fg)
            union = sorted_fg.sum() + np.cumsum(1 - sorted_fg)
            jaccard = 1 - intersection / union
            jaccard[1:] = jaccard[1:] - jaccard[:-1]
            class_losses.append(np.dot(errors[order], jaccard))
        per_image.append(np.mean(class_losses))
    return float(np.mean(per_image))


@pytest.mark.parametrize("loss", ["ce", "focal", "dice", "lovasz", "ce+dice"])
def test_every_loss_is_the_global_batch_loss_on_replicas(loss):
    """Two replicas, each with half the batch, all-summing the statistics: their losses add up to the loss of
    the whole batch on one device, and so do the gradients."""
    rng = np.random.RandomState(1)
    logits_value = rng.randn(4, 6, 5, 3).astype(np.float32)
    labels_value = rng.randint(0, 3, (4, 6, 5)).astype(np.int32)
    labels_value[1, :3] = IGNORE
    settings = LossSettings(loss, class_weight_values=(0.5, 1.0, 2.0) if loss in ("ce", "focal") else None)
    with tf.Graph().as_default():
        logits = tf.Variable(logits_value)
        single = losses.finish(losses.loss_terms(logits, tf.constant(labels_value), 3, IGNORE, settings))
        grad = tf.gradients(single, logits)[0]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            expected, expected_grad = sess.run([single, grad])
    with tf.Graph().as_default():
        placement = Placement(["/device:CPU:0", "/device:CPU:1"], cpu_replicas=2)
        strategy = placement.strategy
        with strategy.scope():
            logits = tf.Variable(logits_value)

            def replica():
                r = tf.distribute.get_replica_context().replica_id_in_sync_group
                part = logits[r * 2:(r + 1) * 2]
                terms = losses.loss_terms(part, tf.constant(labels_value)[r * 2:(r + 1) * 2], 3, IGNORE, settings)
                share = losses.finish(terms, lambda stats: all_sum(list(stats))) / 2.0
                return share, tf.gradients(share, logits)[0]

            shares, grads = strategy.extended.call_for_each_replica(
                tf.autograph.experimental.do_not_convert(replica))
        with tf.Session(config=placement.session_config(tf.ConfigProto())) as sess:
            sess.run(tf.global_variables_initializer())
            parts = sess.run([strategy.experimental_local_results(shares), strategy.experimental_local_results(grads)])
    assert sum(parts[0]) == pytest.approx(float(expected), rel=1e-5)
    np.testing.assert_allclose(sum(parts[1]), expected_grad, rtol=1e-4, atol=1e-6)


def test_class_weight_formulas_by_hand(tmp_path):
    pixels, image_pixels = [80, 15, 5], [100, 100, 50]
    enet = [1 / math.log(1.02 + p) for p in (0.8, 0.15, 0.05)]
    np.testing.assert_allclose(class_weights.enet_weights(pixels), np.array(enet) / np.mean(enet))
    # median frequency: f = 0.8, 0.15, 0.1; median 0.15
    np.testing.assert_allclose(class_weights.median_frequency_weights(pixels, image_pixels), [0.1875, 1.0, 1.5])
    assert class_weights.median_frequency_weights([10, 0], [20, 0]).tolist() == [1.0, 0.0]  # never seen: 0
    named = tmp_path / "w.json"
    named.write_text(json.dumps({"b": 2.0, "a": 1.0, "c": 0.5}))
    assert class_weights.resolve(str(named), ["a", "b", "c"]) == (str(named), [1.0, 2.0, 0.5])
    assert class_weights.resolve("none", ["a"]) == ("none", None)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([1.0, 2.0]))
    with pytest.raises(ValueError, match="--class_weights .* holds 2 weights; the model has 3 classes"):
        class_weights.resolve(str(wrong), ["a", "b", "c"])
    with pytest.raises(ValueError, match="--class_weights"):
        class_weights.resolve("inverse", ["a"])
    assert class_weights.default_choice("camvid") == "enet" and class_weights.default_choice("pascal_seg") == "none"


def test_schedules_and_warmup_at_given_steps():
    at = schedule.learning_rate_at
    assert at(6, 1.0, 10, "poly") == pytest.approx(0.5 ** 0.9)
    assert at(1, 1.0, 10, "poly") == 1.0 and at(11, 1.0, 10, "poly") == 0.0
    assert at(6, 1.0, 10, "cosine") == pytest.approx(0.5) and at(1, 1.0, 10, "cosine") == 1.0
    assert at(2, 1.0, 10, "constant", warmup_steps=4) == 0.5 and at(5, 1.0, 10, "constant", 4) == 1.0
    assert at(2, 1.0, 10, "cosine", warmup_steps=4) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.1)))
    assert [at(s, 1.0, 45, "step") for s in (15, 16, 30, 31)] == [1.0, 0.1, 0.1, 0.01]
    step = tf.placeholder(tf.int64, [])
    graphs = {(name, warmup): schedule.learning_rate(step, 2.0, 10, name, warmup)
              for name in schedule.SCHEDULES for warmup in (0, 3)}
    with tf.Session() as sess:
        for (name, warmup), rate in graphs.items():
            for done in range(12):  # the graph reads the steps done; the mirror numbers the step taken
                assert sess.run(rate, {step: done}) == pytest.approx(at(done + 1, 2.0, 10, name, warmup),
                                                                     rel=1e-5, abs=1e-6)


def test_seg_mentor_decaylr_is_the_step_schedule_and_bad_values_name_their_flag():
    assert TrainSettings(decaylr=True).lr_schedule == "step"
    assert TrainSettings(lr_schedule="step").decaylr is True
    for bad, flag in ((dict(loss="foo"), "--loss"), (dict(loss="ce+ce"), "--loss"), (dict(ohem_top_k=0), "--ohem_top_k"),
                      (dict(optimizer="rmsprop"), "--optimizer"), (dict(learnrate=-1), "--learnrate"),
                      (dict(batch_size=0), "--batch_size"), (dict(val_fraction=5), "--val_fraction"),
                      (dict(warmup_steps=-1), "--warmup_steps")):
        with pytest.raises(ValueError, match=flag):
            TrainSettings(**bad)


@pytest.mark.parametrize("optimizer,slot", [("sgd", "Momentum"), ("adam", "Adam"), ("adamw", "Adam")])
def test_optimizers_take_the_step_they_should(optimizer, slot):
    """One step on f(w) = w^2 / 2 (gradient w) from w = 2, lr 0.1: SGD 2 - 0.1 * 2; Adam 2 - 0.1 (its first step
    is lr * sign); AdamW first shrinks w by lr * decay: 2 * (1 - 0.1 * 0.5), then the Adam step."""
    weight = tf.Variable(2.0, name="w")
    global_step = tf.train.get_or_create_global_step()
    op = train_op(0.5 * weight * weight, global_step, 0.1, 0.9, [], [weight], optimizer=optimizer,
                  decoupled_decay=0.5 if optimizer == "adamw" else 0.0, decayed=[weight])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(op)
        value = sess.run(weight)
    expected = {"sgd": 2 - 0.1 * 2, "adam": 2 - 0.1, "adamw": 2 * (1 - 0.05) - 0.1}[optimizer]
    assert value == pytest.approx(expected, rel=1e-4)
    assert any(v.op.name == "w/" + slot for v in tf.global_variables())


@pytest.mark.parametrize("loss_scaling", [False, True])
def test_the_step_moves_every_moving_average_without_control_edges_on_the_gradients(loss_scaling):
    """UPDATE_OPS run with every step (also float16's, whose optimizer step is a cond), and they are grouped with
    it: no gradient op waits on an update op (such edges, one per gradient op and update op, made Grappler's
    start-up grow with their product)."""
    images = tf.constant(np.random.RandomState(0).standard_normal((2, 8, 8, 3)), tf.float32)
    is_training = tf.placeholder_with_default(True, [])
    net = slim.conv2d(images, 4, 3, normalizer_fn=slim.batch_norm, normalizer_params={"is_training": is_training})
    net = slim.conv2d(net, 2, 3, normalizer_fn=slim.batch_norm, normalizer_params={"is_training": is_training})
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    global_step = tf.train.get_or_create_global_step()
    op = train_op(tf.reduce_mean(tf.square(net)), global_step, 0.1, 0.9, [], tf.trainable_variables(),
                  loss_scaling=loss_scaling)
    updates = {u if isinstance(u, tf.Operation) else u.op for u in update_ops}
    assert len(updates) == 4
    gradient_ops = [o for o in tf.get_default_graph().get_operations() if o.name.startswith("gradients")]
    assert gradient_ops and not [o.name for o in gradient_ops if updates & set(o.control_inputs)]
    averages = [v for v in tf.global_variables() if "moving_" in v.op.name]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        before = sess.run(averages)
        sess.run(op)
        after, step = sess.run([averages, global_step])
    assert step == 1 and all(not np.allclose(a, b) for a, b in zip(before, after))


def test_a_run_too_short_for_its_batch_norm_averages_is_warned():
    """0.997**300 = 0.41: 41 % of each moving average is still its initial value after 300 steps."""
    def config(decay, steps):
        return types.SimpleNamespace(model=types.SimpleNamespace(batch_norm_decay=decay, decoder_class=LinkNet),
                                     train=types.SimpleNamespace(total_steps=steps))
    warning = loop.batch_norm_lag(config(None, 300))
    assert warning.startswith("WARNING after 300 steps 41 % of the batch-norm moving averages (decay 0.997)")
    assert warning.endswith("--batch_norm_decay 0.99 suits a run this short")
    assert loop.batch_norm_lag(config(0.99, 2200)) is None  # the README recipe
    assert loop.batch_norm_lag(config(0.9, 300)) is None
    assert "--batch_norm_decay 0.5 suits" in loop.batch_norm_lag(config(0.9, 6))

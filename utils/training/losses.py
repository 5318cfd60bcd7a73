"""Losses and per-batch metrics of segmentation training: cross-entropy over valid pixels, confusion.

Pixels labelled with the ignore label (and the padding, which carries it) or
outside the classes carry no loss and no confusion count.  The loss comes as
(sum, count) too, so replicas can divide by the global count.
"""
from utils.compat import tf


def valid_pixels(labels, num_classes, ignore_label):
    """Pixels that carry a loss: a real class (not the ignore label, not padding)."""
    valid = tf.logical_and(labels >= 0, labels < num_classes)
    if ignore_label is not None and 0 <= ignore_label < num_classes:
        valid = tf.logical_and(valid, tf.not_equal(labels, ignore_label))
    return valid


def segmentation_loss_terms(logits, labels, num_classes, ignore_label):
    """(summed cross-entropy, count) over the valid pixels: replicas all-sum the count (utils/distribute.py)."""
    valid = valid_pixels(labels, num_classes, ignore_label)
    safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_labels,
                                                               logits=tf.cast(logits, tf.float32))
    weights = tf.cast(valid, tf.float32)
    return tf.reduce_sum(per_pixel * weights), tf.reduce_sum(weights)


def segmentation_loss(logits, labels, num_classes, ignore_label):
    """Mean softmax cross-entropy over the valid pixels; ignore pixels carry no loss."""
    total, count = segmentation_loss_terms(logits, labels, num_classes, ignore_label)
    return total / tf.maximum(count, 1.0)


def batch_confusion(logits, labels, num_classes, ignore_label):
    """C x C confusion matrix (rows = truth) of one batch, ignore pixels left out."""
    valid = valid_pixels(labels, num_classes, ignore_label)
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.math.confusion_matrix(tf.boolean_mask(labels, valid), tf.boolean_mask(predictions, valid),
                                    num_classes=num_classes, dtype=tf.int64)

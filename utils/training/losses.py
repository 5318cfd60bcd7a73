"""Segmentation losses and per-batch metrics: cross-entropy, focal, soft Dice, Lovasz-softmax, their sums.

Pixels labelled with the ignore label (and the padding, which carries it) or
outside the classes carry no loss and no confusion count.

Every loss term comes as statistics plus a function that finishes them into
the loss (`LossTerm(stats, finish)`): on one device the loss is
`finish(stats)`; data-parallel replicas all-sum the statistics first, so each
loss is the loss of the global batch whatever its shape (a mean over pixels,
a ratio of per-class sums, a mean over images):

    ce, focal  per pixel, weighted by class; (sum, valid pixel count); with --ohem_top_k only the
               hardest fraction of the valid pixels (within each replica's slice on replicas)
    dice       soft Dice per class over the batch, averaged over the classes in the labels: (I, P, Y)
    lovasz     Lovasz-softmax (Berman et al. 2018) per image, averaged over images: (sum, images)
"""
import collections
import dataclasses
from typing import Optional

from utils.compat import tf
from utils.flags import setting

LOSSES = ("ce", "focal", "dice", "lovasz")
PER_PIXEL = ("ce", "focal")
DICE_EPSILON = 1.0

LossTerm = collections.namedtuple("LossTerm", "name stats finish")


@dataclasses.dataclass(frozen=True)
class LossSettings:
    loss: str = setting("ce", "training loss: ce, focal, dice, lovasz, or a sum such as ce+dice", group="loss")
    focal_gamma: float = setting(2.0, "focusing exponent of --loss focal (0: cross-entropy)", group="loss")
    ohem_top_k: float = setting(1.0, "fraction of the hardest valid pixels the per-pixel losses (ce, focal) keep "
                                     "(DeepLab's top_k_percent_pixels); 1 = all", group="loss")
    class_weights: Optional[str] = setting(
        None, "per-class weights of the per-pixel losses: none, enet (1/ln(1.02 + p), mean 1), median_freq "
              "(SegNet's median-frequency balancing) or a JSON file, a list or {class name: weight} "
              "(default: enet for camvid, as seg-mentor; none elsewhere)", group="loss")
    class_weight_values: Optional[tuple] = setting(None, "the resolved per-class weights", on_command_line=False)

    def __post_init__(self):
        terms = self.loss_terms
        unknown = [term for term in terms if term not in LOSSES]
        if not terms or unknown or len(set(terms)) != len(terms):
            raise ValueError("--loss %r: expected one of %s or a sum of different ones such as ce+dice"
                             % (self.loss, ", ".join(LOSSES)))
        if self.focal_gamma < 0:
            raise ValueError("--focal_gamma must be >= 0, got %r" % self.focal_gamma)
        if not 0.0 < self.ohem_top_k <= 1.0:
            raise ValueError("--ohem_top_k must be in (0, 1], got %r" % self.ohem_top_k)
        if self.class_weight_values is not None:
            object.__setattr__(self, "class_weight_values", tuple(float(w) for w in self.class_weight_values))

    @property
    def loss_terms(self):
        return tuple(term.strip() for term in str(self.loss).lower().split("+") if term.strip())


def valid_pixels(labels, num_classes, ignore_label):
    """Pixels that carry a loss: a real class (not the ignore label, not padding)."""
    valid = tf.logical_and(labels >= 0, labels < num_classes)
    if ignore_label is not None and 0 <= ignore_label < num_classes:
        valid = tf.logical_and(valid, tf.not_equal(labels, ignore_label))
    return valid


def softmax_cross_entropy(logits, labels):
    """Per-pixel softmax cross-entropy of `logits` [..., C] (float32) against class ids `labels` [...], each in
    [0, C): the value and gradient of tf.nn.sparse_softmax_cross_entropy_with_logits, computed with the classes
    on the outer axis.

    Why: TensorFlow's fused CPU kernel reduces over the last axis, a dozen values per pixel, which vectorises
    badly; with the classes outermost, the max, the sum and the label's logit are C element-wise passes over
    whole rows of pixels, and the gradient (softmax - one-hot) is one more.  Same arithmetic, fewer cycles.
    """
    classes = int(logits.shape[-1])
    rank = logits.shape.rank
    to_outer, back = [rank - 1] + list(range(rank - 1)), list(range(1, rank)) + [0]
    truth = tf.one_hot(tf.reshape(labels, [-1]), classes, axis=0, dtype=logits.dtype)            # [C, pixels]

    @tf.custom_gradient
    def cross_entropy(x):
        rows = tf.reshape(tf.transpose(x, to_outer), [classes, -1])                              # [C, pixels]
        top = tf.reduce_max(rows, axis=0)
        exp = tf.exp(rows - top)
        total = tf.reduce_sum(exp, axis=0)
        loss = tf.math.log(total) + top - tf.reduce_sum(rows * truth, axis=0)

        def gradient(upstream):
            rows_grad = (exp / total - truth) * tf.reshape(upstream, [-1])
            outer_shape = tf.concat([[classes], tf.shape(x)[:-1]], axis=0)
            return tf.transpose(tf.reshape(rows_grad, outer_shape), back)

        return tf.reshape(loss, tf.shape(labels)), gradient

    return cross_entropy(logits)


def segmentation_loss_terms(logits, labels, num_classes, ignore_label):
    """(summed cross-entropy, count) over the valid pixels: the statistics of loss_terms' plain `ce` term."""
    (term,) = loss_terms(logits, labels, num_classes, ignore_label, LossSettings("ce"))
    return tuple(term.stats)


def segmentation_loss(logits, labels, num_classes, ignore_label):
    """Mean softmax cross-entropy over the valid pixels; ignore pixels carry no loss."""
    total, count = segmentation_loss_terms(logits, labels, num_classes, ignore_label)
    return total / tf.maximum(count, 1.0)


# ----------------------------------------------------------------------------- the loss zoo
def loss_terms(logits, labels, num_classes, ignore_label, settings):
    """[LossTerm] of `settings.loss` for one batch (see the module docstring)."""
    logits = tf.cast(logits, tf.float32)
    valid = valid_pixels(labels, num_classes, ignore_label)
    safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
    terms = []
    for name in settings.loss_terms:
        if name in PER_PIXEL:
            stats = per_pixel_stats(logits, safe_labels, valid, name, settings)
            terms.append(LossTerm(name, stats, _ratio))
        elif name == "dice":
            terms.append(LossTerm(name, dice_stats(logits, safe_labels, valid, num_classes), finish_dice))
        else:
            terms.append(LossTerm(name, lovasz_stats(logits, safe_labels, valid, num_classes), _ratio))
    return terms


def finish(terms, summed=None):
    """The loss of `terms`: the sum of each term finished from its statistics (or from `summed(stats)`)."""
    return tf.add_n([term.finish(summed(term.stats) if summed else term.stats) for term in terms])


def _ratio(stats):
    total, count = stats
    return total / tf.maximum(count, 1.0)


def per_pixel_stats(logits, safe_labels, valid, name, settings):
    """(weighted sum, count) of cross-entropy or focal loss over the valid pixels, optionally the hardest k."""
    loss = softmax_cross_entropy(logits, safe_labels)
    if name == "focal" and settings.focal_gamma:
        loss = tf.pow(1.0 - tf.exp(-loss), settings.focal_gamma) * loss  # (1 - p_t)^gamma * -log p_t
    weights = tf.cast(valid, tf.float32)
    if settings.class_weight_values is not None:
        weights *= tf.gather(tf.constant(settings.class_weight_values, tf.float32), safe_labels)
    weighted = tf.reshape(loss * weights, [-1])
    count = tf.reduce_sum(tf.cast(valid, tf.float32))
    if settings.ohem_top_k >= 1.0:
        return [tf.reduce_sum(weighted), count]
    k = tf.maximum(1, tf.cast(tf.math.ceil(settings.ohem_top_k * count), tf.int32))
    hardest = tf.nn.top_k(weighted, k=tf.minimum(k, tf.size(weighted)), sorted=False).values
    return [tf.reduce_sum(hardest), tf.cast(tf.size(hardest), tf.float32)]


def dice_stats(logits, safe_labels, valid, num_classes):
    """Per-class intersection, predicted and labelled mass of the soft Dice, over the valid pixels."""
    mask = tf.cast(valid, tf.float32)[..., None]
    probabilities = tf.nn.softmax(logits) * mask
    truth = tf.one_hot(safe_labels, num_classes) * mask
    axes = [0, 1, 2]
    return [tf.reduce_sum(probabilities * truth, axes), tf.reduce_sum(probabilities, axes),
            tf.reduce_sum(truth, axes)]


def finish_dice(stats):
    """1 - mean soft Dice over the classes present in the labels."""
    intersection, predicted, labelled = stats
    dice = (2.0 * intersection + DICE_EPSILON) / (predicted + labelled + DICE_EPSILON)
    present = tf.cast(labelled > 0, tf.float32)
    return 1.0 - tf.reduce_sum(dice * present) / tf.maximum(tf.reduce_sum(present), 1.0)


def lovasz_gradient(sorted_truth):
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman et al., Alg. 1),
    along the last axis of `sorted_truth` (foreground indicators sorted by decreasing error)."""
    total = tf.reduce_sum(sorted_truth, axis=-1, keepdims=True)
    intersection = total - tf.cumsum(sorted_truth, axis=-1)
    union = total + tf.cumsum(1.0 - sorted_truth, axis=-1)
    jaccard = 1.0 - intersection / tf.maximum(union, 1e-12)
    return tf.concat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=-1)


def lovasz_stats(logits, safe_labels, valid, num_classes):
    """(sum over images of the per-image Lovasz-softmax, number of images with valid pixels).

    Per image and class present: the pixels' errors |1[y=c] - p_c| sorted in
    decreasing order, dotted with the Lovasz gradient of the sorted truths;
    averaged over the classes present.  Ignored pixels get error 0 and truth 0:
    they sort last and change neither the errors nor the gradient before them,
    which makes this the loss over the valid pixels alone.
    """
    shape = tf.shape(logits)
    mask = tf.cast(valid, tf.float32)
    probabilities = tf.reshape(tf.nn.softmax(logits), [shape[0], -1, num_classes])
    truth = tf.reshape(tf.one_hot(safe_labels, num_classes) * mask[..., None], [shape[0], -1, num_classes])
    flat_mask = tf.reshape(mask, [shape[0], -1, 1])
    errors = tf.transpose(tf.abs(truth - probabilities) * flat_mask, [0, 2, 1])     # [N, C, pixels]
    sorted_errors, order = tf.nn.top_k(errors, k=tf.shape(errors)[-1])
    sorted_truth = tf.gather(tf.transpose(truth, [0, 2, 1]), order, batch_dims=2)
    per_class = tf.reduce_sum(sorted_errors * tf.stop_gradient(lovasz_gradient(sorted_truth)), axis=-1)
    present = tf.cast(tf.reduce_sum(truth, axis=1) > 0, tf.float32)                 # [N, C]
    per_image = tf.reduce_sum(per_class * present, -1) / tf.maximum(tf.reduce_sum(present, -1), 1.0)
    has_pixels = tf.cast(tf.reduce_sum(mask, axis=[1, 2]) > 0, tf.float32)
    return [tf.reduce_sum(per_image * has_pixels), tf.reduce_sum(has_pixels)]


def batch_confusion(logits, labels, num_classes, ignore_label):
    """C x C confusion matrix (rows = truth) of one batch, ignore pixels left out."""
    valid = valid_pixels(labels, num_classes, ignore_label)
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.math.confusion_matrix(tf.boolean_mask(labels, valid), tf.boolean_mask(predictions, valid),
                                    num_classes=num_classes, dtype=tf.int64)


__all__ = ["LOSSES", "LossSettings", "LossTerm", "loss_terms", "finish", "valid_pixels", "softmax_cross_entropy",
           "segmentation_loss", "segmentation_loss_terms", "batch_confusion", "lovasz_gradient"]

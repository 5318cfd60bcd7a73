"""PSPNet (Zhao et al., 2017): pyramid pooling on the top features, optional auxiliary loss.

The pyramid pooling module average-pools the top features into 1x1, 2x2, 3x3
and 6x6 bins, reduces each to in/4 channels with a 1x1 conv, upsamples them
back and concatenates them with the features; a 3x3 conv (512, as in the
official model; segmentation_models uses a cheaper 1x1) and a 1x1 classifier
follow, then bilinear upsampling.  For training, an auxiliary head on the
stage before the top (the stride-16 tap, or 8 with --encoder_stride 16, ...;
3x3 conv 256 + classifier) adds `--aux_loss_weight` (0.4 in the paper) times
its loss; graphs built only for inference skip it.
"""
from arch import BaseFcnArch, register
from utils.tf1 import slim, tf

BINS = (1, 2, 3, 6)
HEAD_DEPTH = 512
AUX_DEPTH = 256


def adaptive_average_pool(net, bins):
    """Average over a bins x bins grid of (possibly overlapping) cells, as PyTorch's AdaptiveAvgPool2d.

    Cell i spans [floor(i*H/bins), ceil((i+1)*H/bins)); works for static and
    dynamic sizes and, unlike ResizeArea, has a gradient.
    """
    with tf.name_scope("adaptive_pool%d" % bins):
        shape = tf.shape(net)
        height, width = shape[1], shape[2]
        rows = []
        for i in range(bins):
            top, bottom = (i * height) // bins, ((i + 1) * height + bins - 1) // bins
            cells = []
            for j in range(bins):
                left, right = (j * width) // bins, ((j + 1) * width + bins - 1) // bins
                cells.append(tf.reduce_mean(net[:, top:bottom, left:right, :], axis=[1, 2]))
            rows.append(tf.stack(cells, axis=1))
        pooled = tf.stack(rows, axis=1)
        pooled.set_shape([net.shape[0], bins, bins, net.shape[-1]])
        return pooled


@register("PSPNet")
class PSPNet(BaseFcnArch):

    def skip_strides(self):
        return ()

    def combine(self, net, skip, stride):  # pragma: no cover - PSPNet has no skips
        return net

    def decode_top(self, top):
        with tf.variable_scope("pyramid_pooling"):
            size = top.shape[1:3].as_list()
            size = size if None not in size else tf.shape(top)[1:3]
            depth = max(int(top.shape[-1]) // len(BINS), 1)
            levels = [top]
            for bins in BINS:
                pooled = adaptive_average_pool(top, bins)
                pooled = slim.conv2d(pooled, depth, 1, scope="bin%d" % bins)
                levels.append(self.resize(pooled, size))
            net = slim.conv2d(tf.concat(levels, axis=-1), HEAD_DEPTH, 3, scope="fuse")
            return slim.dropout(net, keep_prob=0.9, is_training=self.is_training, scope="dropout")

    def final_upsample(self, net, size):
        logits = slim.conv2d(net, self.num_classes, 1, activation_fn=None, normalizer_fn=None,
                             biases_initializer=tf.zeros_initializer(), scope="logits")
        return self.resize(logits, size)

    def auxiliary_logits(self, features, size):
        if not self.building_for_training() or self.aux_loss_weight <= 0:
            return []
        net = slim.conv2d(features.taps[self.encoder_stride // 2], AUX_DEPTH, 3, scope="conv")
        net = slim.dropout(net, keep_prob=0.9, is_training=self.is_training, scope="dropout")
        logits = slim.conv2d(net, self.num_classes, 1, activation_fn=None, normalizer_fn=None,
                             biases_initializer=tf.zeros_initializer(), scope="logits")
        return [self.resize(logits, size)]

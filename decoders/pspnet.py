"""PSPNet (Zhao et al., 2017): pyramid pooling on the top features, optional auxiliary loss.

The pyramid pooling module average-pools the top features into 1x1, 2x2, 3x3
and 6x6 bins, reduces each to in/4 channels with a 1x1 conv, upsamples them
back and concatenates them with the features; a 3x3 conv (512, as in the
official model) and a 1x1 classifier follow, then bilinear upsampling.
`PSPNetLite` is segmentation_models_pytorch's head instead: a 1x1 fuse conv
and a 3x3 classifier, about 5x cheaper (for ResNet-18 at stride 8, 4.8 of the
paper head's 10 GMACs at 512x512 go to the 3x3 fuse).  For training, an auxiliary head on the
stage before the top (the stride-16 tap, or 8 with --encoder_stride 16, ...;
3x3 conv 256 + classifier) adds `--aux_loss_weight` (0.4 in the paper) times
its loss; graphs built only for inference skip it.
"""
import dataclasses

from decoders.base import BaseFcnArch, register
from utils.compat import slim, tf
from utils.flags import setting

BINS = (1, 2, 3, 6)
HEAD_DEPTH = 512
AUX_DEPTH = 256


def pooling_matrix(size, bins):
    """[bins, size] averaging weights of PyTorch's AdaptiveAvgPool along one axis.

    Cell i spans [floor(i*size/bins), ceil((i+1)*size/bins)): cells may overlap
    when size is not a multiple of bins.  `size` may be a tensor (dynamic shapes).
    """
    size = tf.cast(size, tf.int32)
    cells = tf.range(bins)[:, None]
    start, end = (cells * size) // bins, ((cells + 1) * size + bins - 1) // bins
    positions = tf.range(size)[None, :]
    inside = tf.cast(tf.logical_and(positions >= start, positions < end), tf.float32)
    return inside / tf.cast(end - start, tf.float32)


def adaptive_average_pools(net, bin_counts):
    """[adaptive_average_pool(net, bins) for bins in bin_counts] as one matmul over the flattened map."""
    with tf.name_scope("adaptive_pools"):
        shape = tf.shape(net)
        weights = []
        for bins in bin_counts:
            rows, columns = pooling_matrix(shape[1], bins), pooling_matrix(shape[2], bins)
            weights.append(tf.reshape(rows[:, None, :, None] * columns[None, :, None, :], [bins * bins, -1]))
        flat = tf.reshape(net, [shape[0], shape[1] * shape[2], net.shape[-1]])
        pooled = tf.matmul(tf.cast(tf.concat(weights, axis=0), net.dtype)[None], flat)   # [N, sum(bins^2), C]
        outputs, start = [], 0
        for bins in bin_counts:
            cells = tf.reshape(pooled[:, start:start + bins * bins], [shape[0], bins, bins, net.shape[-1]])
            cells.set_shape([net.shape[0], bins, bins, net.shape[-1]])
            outputs.append(cells)
            start += bins * bins
        return outputs


def adaptive_average_pool(net, bins):
    """Average over a bins x bins grid of cells, as PyTorch's AdaptiveAvgPool2d.

    A matmul with `pooling_matrix` weights: works for static and dynamic sizes
    and, unlike ResizeArea, has a gradient; unlike slicing the cells out, the
    gradient is not one full-size tensor per cell.
    """
    return adaptive_average_pools(net, [bins])[0]


@register("PSPNet")
class PSPNet(BaseFcnArch):

    @dataclasses.dataclass(frozen=True)
    class Options(BaseFcnArch.Options):
        aux_loss_weight: float = setting(0.4, "weight of the auxiliary head's loss in training (the paper's 0.4; "
                                              "0: no auxiliary head)")

    FUSE_KERNEL = 3          # conv after the concatenated pyramid
    CLASSIFIER_KERNEL = 1
    KEEP_PROB = 0.9          # dropout before the classifier
    BIN1_BATCH_NORM = True   # the 1x1 bin's conv sees one value per image and channel

    def skip_strides(self):
        return ()

    def combine(self, net, skip, stride):  # pragma: no cover - PSPNet has no skips
        return net

    def decode_top(self, top):
        with tf.variable_scope("pyramid_pooling"):
            size = self.spatial_size(top)
            depth = max(int(top.shape[-1]) // len(BINS), 1)
            levels = [top]
            for bins, pooled in zip(BINS, adaptive_average_pools(top, BINS)):
                plain = {"normalizer_fn": None} if bins == 1 and not self.BIN1_BATCH_NORM else {}
                pooled = slim.conv2d(pooled, depth, 1, scope="bin%d" % bins, **plain)
                levels.append(self.resize(pooled, size))
            net = slim.conv2d(tf.concat(levels, axis=-1), HEAD_DEPTH, self.FUSE_KERNEL, scope="fuse")
            return self.dropout(net, self.KEEP_PROB, whole_channels=True)  # Dropout2d, as PSPNet implementations

    def final_upsample(self, net, size):
        return self.resize(self.classifier(net, kernel_size=self.CLASSIFIER_KERNEL), size)

    def auxiliary_logits(self, features, size):
        if not self.building_for_training() or self.aux_loss_weight <= 0:
            return []
        net = slim.conv2d(features.taps[self.encoder_stride // 2], AUX_DEPTH, 3, scope="conv")
        net = self.dropout(net, 0.9, whole_channels=True)
        return [self.resize(self.classifier(net), size)]


@register("PSPNetLite")
class PSPNetLite(PSPNet):
    """PSPNet with segmentation_models_pytorch's head: 1x1 fuse conv, dropout 0.2, 3x3 classifier, and
    no batch norm on the 1x1 bin (a batch of single values); bench/ matches smp.PSPNet with it."""
    FUSE_KERNEL = 1
    CLASSIFIER_KERNEL = 3
    KEEP_PROB = 0.8
    BIN1_BATCH_NORM = False

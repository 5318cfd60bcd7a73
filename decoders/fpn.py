"""FPN (Lin et al., 2017) with the Panoptic FPN semantic head (Kirillov et al., 2019).

Pyramid: a lateral 1x1 conv brings each encoder tap to `--fpn_channels`
(linear, as in FPN); the top-down path upsamples the coarser level x2
(nearest neighbour) and adds the lateral, from the top tap down to stride 4.
Semantic head: on every pyramid level, 3x3 conv (`--fpn_segmentation_channels`)
+ batch norm + ReLU, then bilinear x2, repeated until stride 4 (the stride-4
level gets one conv and no upsampling); the levels are summed, classified by
a 1x1 conv and upsampled bilinearly to the input.  The paper normalises with
group norm; batch norm here, as everywhere in the decoders.  The head reads
every level the skeleton built (`self.pyramid`).
"""
import dataclasses

from decoders.base import BaseFcnArch, register
from utils.compat import slim, tf
from utils.flags import setting


@register("FPN")
class FPN(BaseFcnArch):

    @dataclasses.dataclass(frozen=True)
    class Options(BaseFcnArch.Options):
        fpn_channels: int = setting(256, "channels of the FPN pyramid (lateral 1x1 convs, top-down path)")
        fpn_segmentation_channels: int = setting(128, "channels of the semantic head's 3x3 convs on each level")

    def skip_strides(self):
        return (16, 8, 4)

    def lateral(self, tap):
        return slim.conv2d(tap, self.options.fpn_channels, 1, activation_fn=None, normalizer_fn=None,
                           biases_initializer=tf.zeros_initializer(), scope="lateral")

    def decode_top(self, top):
        return self.lateral(top)

    def upsample(self, net, skip, stride):
        if net.shape[1:3].as_list() == skip.shape[1:3].as_list() and None not in skip.shape[1:3].as_list():
            return net  # a dilated encoder: the tap is this size already
        return tf.image.resize_nearest_neighbor(net, self.spatial_size(skip), half_pixel_centers=True)

    def combine(self, net, skip, stride):
        return net + self.lateral(skip)

    def final_upsample(self, net, size):
        finest = min(self.pyramid)
        levels = []
        for stride, level in sorted(self.pyramid.items(), reverse=True):
            with tf.variable_scope("level%d" % stride):
                levels.append(self.semantic_branch(level, stride, finest))
        return self.resize(self.classifier(tf.add_n(levels)), size)

    def semantic_branch(self, net, stride, finest):
        """(3x3 conv + BN + ReLU, x2 up to the next finer level's size) until the finest level; one conv there."""
        if stride == finest:
            return slim.conv2d(net, self.options.fpn_segmentation_channels, 3, scope="conv1")
        stage = 0
        while stride > finest:
            stage += 1
            net = slim.conv2d(net, self.options.fpn_segmentation_channels, 3, scope="conv%d" % stage)
            stride //= 2
            net = self.resize(net, self.spatial_size(self.pyramid[stride]))
        return net

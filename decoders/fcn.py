"""FCN-32s/16s/8s/4s (Long, Shelhamer & Darrell): score maps summed across strides.

decode_top scores the stride-32 features to num_classes; each enabled skip
(`--fcn16`, `--fcn8`, `--fcn4`) scores its tap with a 1x1 conv and adds it to
the x2-upsampled scores.  With `--trainable_upsampling` the x2 steps are
transposed convolutions initialised to bilinear interpolation; the final
upsampling stays fixed bilinear, as in the FCN paper.  `--zero_init_skips`
starts the skip scores at zero (seg-mentor needed it for VGG-FCN16), so
training begins exactly at FCN-32 and lets the skips grow in.
"""
from arch import BaseFcnArch, register
from utils.tf1 import slim, tf


@register("FCN")
class FcnArch(BaseFcnArch):

    def skip_strides(self):
        enabled = ((16, self.fcn16), (8, self.fcn8), (4, self.fcn4))
        return tuple(stride for stride, on in enabled if on)

    def decode_top(self, top):
        return self.score(top, "score_top", stddev=None)

    def combine(self, net, skip, stride):
        return net + self.score(skip, "score_skip", stddev=0.0 if self.zero_init_skips else 1e-3)

    def score(self, net, scope, stddev):
        """1x1 linear classifier (no BN, no ReLU).  stddev None = variance scaling, 0 = zeros."""
        if stddev is None:
            init = slim.variance_scaling_initializer()
        elif stddev == 0.0:
            init = tf.zeros_initializer()
        else:
            init = tf.truncated_normal_initializer(stddev=stddev)
        return slim.conv2d(net, self.num_classes, 1, activation_fn=None, normalizer_fn=None,
                           weights_initializer=init, biases_initializer=tf.zeros_initializer(), scope=scope)

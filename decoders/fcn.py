"""FCN-32s/16s/8s/4s (Long, Shelhamer & Darrell): score maps summed across strides.

decode_top scores the stride-32 features to num_classes; each enabled skip
(`--fcn16`, `--fcn8`, `--fcn4`) scores its tap with a 1x1 conv and adds it to
the x2-upsampled scores.  With `--trainable_upsampling` the x2 steps are
transposed convolutions initialised to bilinear interpolation; the final
upsampling stays fixed bilinear, as in the FCN paper.  `--zero_init_skips`
starts the skip scores at zero (seg-mentor needed it for VGG-FCN16), so
training begins exactly at FCN-32 and lets the skips grow in.
"""
import dataclasses

from decoders.base import BaseFcnArch, UpsamplingOptions, register
from utils.compat import tf
from utils.flags import setting


@register("FCN")
class FcnArch(BaseFcnArch):

    @dataclasses.dataclass(frozen=True)
    class Options(UpsamplingOptions):
        fcn16: bool = setting(True, "stride-16 skip connection")
        fcn8: bool = setting(False, "stride-8 skip connection")
        fcn4: bool = setting(False, "stride-4 skip connection")
        zero_init_skips: bool = setting(False, "start the skip scores at zero (VGG-FCN16 needs it)")

    @classmethod
    def run_name(cls, options):
        """seg-mentor's variant names: the finest skip in use."""
        return "FCN4" if options.fcn4 else "FCN8" if options.fcn8 else "FCN16" if options.fcn16 else "FCN32"

    def skip_strides(self):
        enabled = ((16, self.options.fcn16), (8, self.options.fcn8), (4, self.options.fcn4))
        return tuple(stride for stride, on in enabled if on)

    def decode_top(self, top):
        return self.classifier(top, scope="score_top")

    def combine(self, net, skip, stride):
        init = tf.zeros_initializer() if self.options.zero_init_skips else tf.truncated_normal_initializer(stddev=1e-3)
        return net + self.classifier(skip, scope="score_skip", weights_initializer=init)

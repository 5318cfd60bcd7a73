"""Dilated (atrous) 2-D convolutions as one native Conv2D op instead of TensorFlow's space-to-batch detour.

tf.nn.convolution (what tf-slim's conv2d reaches through the Keras layers)
implements every dilated convolution outside TPUs as SpaceToBatchND ->
Conv2D -> BatchToSpaceND, from the days when CPU and GPU kernels lacked
dilations.  Today's oneDNN (CPU) and cuDNN (GPU) Conv2D kernels take the
`dilations` attribute directly, forward and backward: on 2 CPU cores a 3x3
rate-36 conv of a 64x64x2048 map drops from ~690 ms to ~75 ms (DeepLab's
ASPP), with the same result and gradients (tests/test_native_atrous.py).

`install()` routes 2-D, stride-1 dilated convolutions in `nn_ops.convolution_v2`
to `nn_ops.conv2d(..., dilations=...)`; everything else (strided dilated
convs, 1-D/3-D, depthwise, whose CPU gradient with dilations is wrong) keeps
the original path.  utils/compat/tf1.py installs it before any layer is built.
"""
from tensorflow.python.ops import nn_ops

_original_convolution_v2 = nn_ops.convolution_v2


def _as_list(value, rank):
    if value is None:
        return [1] * rank
    if isinstance(value, int):
        return [value] * rank
    return [int(v) for v in value]


def native_convolution_v2(input, filters, strides=None, padding="VALID", data_format=None,  # noqa: A002
                          dilations=None, name=None):
    """convolution_v2 that sends 2-D stride-1 dilated convs to the native Conv2D kernel."""
    rank = input.shape.rank if hasattr(input, "shape") else None
    spatial_dilations = _as_list(dilations, 2)
    spatial_strides = _as_list(strides, 2)
    if (rank == 4 and len(spatial_dilations) == 2 and any(d != 1 for d in spatial_dilations)
            and all(s == 1 for s in spatial_strides) and isinstance(padding, str)):
        channels_first = data_format is not None and data_format.startswith("NC")
        full = [1, 1] + spatial_dilations if channels_first else [1] + spatial_dilations + [1]
        return nn_ops.conv2d(input, filters, strides=[1, 1, 1, 1], padding=padding,
                             data_format="NCHW" if channels_first else "NHWC", dilations=full,
                             name=name or "Conv2D")
    return _original_convolution_v2(input, filters, strides=strides, padding=padding, data_format=data_format,
                                    dilations=dilations, name=name)


def install():
    """Idempotent; returns True when the routing is (now) in place."""
    nn_ops.convolution_v2 = native_convolution_v2
    return True

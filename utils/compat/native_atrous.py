"""Dilated (atrous) 2-D convolutions as one native Conv2D op where the kernels allow, space-to-batch elsewhere.

tf.nn.convolution (what tf-slim's conv2d reaches through the Keras layers)
implements every dilated convolution outside TPUs as SpaceToBatchND ->
Conv2D -> BatchToSpaceND, from the days when CPU and GPU kernels lacked
dilations.  oneDNN's (CPU) and cuDNN's (GPU) Conv2D kernels take the
`dilations` attribute directly, forward and backward, and are much faster so
(DeepLab's ASPP on a 64x64x2048 map); Eigen's CPU kernels, which run where
oneDNN is off, have no dilated backward pass ("Current CPU implementations do
not yet support dilation rates larger than 1" in Conv2DBackpropFilter).

So the route is decided once per process, when the first dilated convolution
is built (`route()`): "native" where oneDNN is on or a GPU is visible,
"space_to_batch" otherwise; both give the same outputs and gradients
(tests/test_native_atrous.py).  SEGMENTOR_DILATED_CONVS=native|space_to_batch
overrides the choice (to time both routes, or to see what a backend lacks).
`install()` patches `nn_ops.convolution_v2`; only 2-D, stride-1 dilated convolutions can take the native route (strided
dilated convs, 1-D/3-D and depthwise convs, whose CPU gradient with
dilations is wrong, keep the original path).  utils/compat/tf1.py installs it
before any layer is built.

On both routes, a 'SAME' dilated convolution whose rate reaches past the map on
both axes (DeepLab's ASPP rate 36 on the 32x32 map of a 256 px crop at output
stride 8) is its centre tap, a 1x1 convolution: every other tap reads only padding.  It is
built so (`centre_tap`), with the same variables, the same outputs and the same
gradients (zero for the other taps); space-to-batch made a batch of rate^2 tiny
maps of it, whose backward pass took seconds on Eigen's kernels.
"""
import collections
import contextlib
import os

from utils.compat import backend

NATIVE, SPACE_TO_BATCH = "native", "space_to_batch"
OVERRIDE = "SEGMENTOR_DILATED_CONVS"
Route = collections.namedtuple("Route", "name reason")

_installed = {}  # "nn_ops": TensorFlow's module, "original": its own convolution_v2; set by install()
_decided = []  # [Route] once decided
_forced = []  # a stack of Route names set by forced()


def decide(onednn, gpus, override=None):
    """The route for a backend: Route(name, reason)."""
    if override:
        if override not in (NATIVE, SPACE_TO_BATCH):
            raise ValueError("%s must be %s or %s, got %r" % (OVERRIDE, NATIVE, SPACE_TO_BATCH, override))
        return Route(override, "%s (your setting %s=%s)" % (
            "native Conv2D with dilations" if override == NATIVE else "space-to-batch around a plain Conv2D",
            OVERRIDE, override))
    if gpus:
        return Route(NATIVE, "native Conv2D with dilations (cuDNN on the GPU)")
    if onednn:
        return Route(NATIVE, "native Conv2D with dilations (oneDNN's kernels, forward and backward)")
    return Route(SPACE_TO_BATCH, "space-to-batch around a plain Conv2D (oneDNN is off, and Eigen's Conv2D has no "
                                 "dilated backward pass)")


def route():
    """The route of this process, decided at the first call (graph-build time) and kept."""
    if _forced:
        return Route(_forced[-1], "forced")
    if not _decided:
        _decided.append(decide(backend.onednn_enabled(), backend.gpu_count(), os.environ.get(OVERRIDE)))
    return _decided[0]


@contextlib.contextmanager
def forced(name):
    """Build with the given route whatever the backend (tests compare the two routes)."""
    if name not in (NATIVE, SPACE_TO_BATCH):
        raise ValueError("route must be %s or %s, got %r" % (NATIVE, SPACE_TO_BATCH, name))
    _forced.append(name)
    try:
        yield
    finally:
        _forced.pop()


def _as_list(value, rank):
    if value is None:
        return [1] * rank
    if isinstance(value, int):
        return [value] * rank
    return [int(v) for v in value]


def centre_tap(input_shape, filter_shape, dilations, padding, channels_first):
    """The (row, column) of the one filter tap that reads the map, when every other tap of a 'SAME' dilated
    convolution falls in the padding (rate >= map size on both axes, odd filter sides); else None."""
    spatial = list(input_shape[2:4] if channels_first else input_shape[1:3])
    sides = list(filter_shape[:2])
    if padding != "SAME" or None in spatial + sides or any(side % 2 == 0 for side in sides):
        return None
    if all(side == 1 or rate >= size for side, rate, size in zip(sides, dilations, spatial)):
        return sides[0] // 2, sides[1] // 2
    return None


def native_convolution_v2(input, filters, strides=None, padding="VALID", data_format=None,  # noqa: A002
                          dilations=None, name=None):
    """convolution_v2 that sends 2-D stride-1 dilated convs to the native Conv2D kernel on the native route,
    and those that only see the map through their centre tap to a 1x1 Conv2D on either route."""
    nn_ops = _installed["nn_ops"]
    rank = input.shape.rank if hasattr(input, "shape") else None
    spatial_dilations = _as_list(dilations, 2)
    spatial_strides = _as_list(strides, 2)
    if (rank == 4 and len(spatial_dilations) == 2 and any(d != 1 for d in spatial_dilations)
            and all(s == 1 for s in spatial_strides) and isinstance(padding, str)):
        channels_first = data_format is not None and data_format.startswith("NC")
        layout = "NCHW" if channels_first else "NHWC"
        centre = centre_tap(input.shape.as_list(), filters.shape.as_list() if filters.shape.rank == 4 else
                            [None] * 4, spatial_dilations, padding, channels_first)
        if centre is not None:
            row, column = centre
            return nn_ops.conv2d(input, filters[row:row + 1, column:column + 1], strides=[1, 1, 1, 1],
                                 padding="SAME", data_format=layout, name=name or "Conv2D")
        if route().name == NATIVE:
            full = [1, 1] + spatial_dilations if channels_first else [1] + spatial_dilations + [1]
            return nn_ops.conv2d(input, filters, strides=[1, 1, 1, 1], padding=padding, data_format=layout,
                                 dilations=full, name=name or "Conv2D")
    return _installed["original"](input, filters, strides=strides, padding=padding, data_format=data_format,
                                  dilations=dilations, name=name)


def install():
    """Route nn_ops.convolution_v2 here; utils/compat/tf1.py calls it as it imports TensorFlow.  Idempotent;
    returns True when the routing is (now) in place."""
    from tensorflow.python.ops import nn_ops  # deferred: TensorFlow is imported by tf1.py, which calls this
    if nn_ops.convolution_v2 is not native_convolution_v2:
        _installed.update(nn_ops=nn_ops, original=nn_ops.convolution_v2)
        nn_ops.convolution_v2 = native_convolution_v2
    return True

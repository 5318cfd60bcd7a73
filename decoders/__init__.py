"""Decoders (segmentation heads), one module each, and their registry.

    import decoders
    decoders.NAMES                 # ('FCN', 'LinkNet', 'DeepLabV3', ...)
    decoders.get("linknet")        # the class (case-insensitive); an unknown name lists the valid ones

A module here subclasses `decoders.base.BaseFcnArch` (also `arch.BaseFcnArch`),
declares its options next to its code and decorates the class with
`@register("Name")`.  Importing this package imports every module in it, so
adding a decoder, with its options and command-line flags, is adding one file.
"""
import importlib
import pkgutil

from decoders.base import REGISTERED, UnknownDecoderError

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module("%s.%s" % (__name__, _module.name))

# seg-mentor's originals first, the rest alphabetically
NAMES = tuple(sorted(REGISTERED, key=lambda name: (name != "FCN", name != "LinkNet", name)))


def get(name):
    """The decoder class for `--extended_arch name` ('' or None: FCN); case-insensitive."""
    wanted = (name or "FCN").lower()
    for registered, cls in REGISTERED.items():
        if registered.lower() == wanted:
            return cls
    raise UnknownDecoderError("unknown --extended_arch %r; valid names: %s" % (name, ", ".join(NAMES)))

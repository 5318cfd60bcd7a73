"""Decoders (segmentation heads), one module each.

A module here subclasses `arch.BaseFcnArch`, overrides the blocks it needs and
decorates the class with `@arch.register("Name")`; `arch.get_arch_class`
imports every module of this package, so adding a decoder is adding one file.
"""

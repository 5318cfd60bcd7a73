"""TF-Slim feature extractors with `base_only` hooks, and their registry."""
from nets.registry import NAMES, REGISTRY, Encoder, Features, UnknownNetError, get  # noqa: F401

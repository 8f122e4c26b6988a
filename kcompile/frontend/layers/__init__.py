"""Importing this package registers every built-in layer lowering."""
from . import activations, attention, conv, core, locally_connected, merge, normalization, ops, pool, recurrent  # noqa: F401

"""kcompile's exceptions. Each message names the file, layer, op or shape at fault."""


class KcompileError(Exception):
    """Base class of every error kcompile raises on purpose."""


class ModelFileError(KcompileError):
    """A model file that cannot be read: truncated, not a model, missing members."""


class UnsupportedLayerError(KcompileError):
    """A Keras layer kcompile has no lowering for (or a Lambda under safe mode)."""


class LayerConfigError(KcompileError):
    """A layer whose config or weights kcompile cannot honour."""


class IRError(KcompileError):
    """A malformed graph (raised by ir.verify)."""


class InputError(KcompileError, ValueError):
    """Inputs given to a compiled model that do not fit its signature."""

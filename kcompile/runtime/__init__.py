"""The runtime: CompiledModel and what it needs (inputs, progress bars, artifacts)."""
from .compiled_model import CompiledModel

__all__ = ["CompiledModel"]

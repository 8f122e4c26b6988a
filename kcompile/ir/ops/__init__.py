"""Importing this package registers every primitive."""
from . import elementwise, grad_ops, linalg, normalization, reduce, rnn, shape  # noqa: F401

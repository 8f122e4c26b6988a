"""Importing this package registers every primitive."""
from . import elementwise, grad_ops, linalg, reduce, rnn, shape  # noqa: F401

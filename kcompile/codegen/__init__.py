"""Backends: IR -> kernels. One folder a backend, each a table of lowerings."""

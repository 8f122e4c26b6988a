"""The Numba CPU kernel library: generic @njit kernels compiled once per machine
(cache=True) and called from each model's generated `run` function."""

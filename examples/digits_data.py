"""MNIST-shaped stand-in data: scikit-learn's bundled handwritten digits (8x8, 1797
images), resized to 28x28 and scaled to [0, 1] like MNIST. Real data, but a stand-in:
scripts say so when they use it."""
from __future__ import annotations

import numpy as np


def resize_digits(images: np.ndarray, size: int = 28) -> np.ndarray:
    """Bilinear resize of (N, 8, 8) digit images to (N, size, size)."""
    from scipy.ndimage import zoom

    return np.stack([zoom(img, size / img.shape[0], order=1) for img in images]).clip(0, None)


def load_digits_as_mnist(test_fraction: float = 0.2, seed: int = 0):
    """((x_train, y_train), (x_test, y_test)) with x in [0, 1], shape (N, 28, 28, 1)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = resize_digits(digits.images.astype(np.float32))
    x = (x / x.max()).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = int(len(x) * (1 - test_fraction))
    return (x[:split], y[:split]), (x[split:], y[split:])

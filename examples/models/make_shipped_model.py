"""Train the small model the README's first command compiles: the seed's mnist_mlp on
scikit-learn's digits (resized to 28x28). Run from the repository root:

    python examples/models/make_shipped_model.py
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from digits_data import load_digits_as_mnist  # noqa: E402
from kcompile import zoo  # noqa: E402

keras.utils.set_random_seed(0)
(x_train, y_train), (x_test, y_test) = load_digits_as_mnist()
model = zoo.mnist_mlp(keras)
model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train.reshape(-1, 784), y_train, batch_size=128, epochs=20, verbose=0)
loss, accuracy = model.evaluate(x_test.reshape(-1, 784), y_test, verbose=0)
print(f"test accuracy on the digits stand-in: {accuracy:.4f}")
model.save(os.path.join(os.path.dirname(__file__), "mnist_mlp_digits.h5"), include_optimizer=False)

"""Trains a multi-layer perceptron with a custom Antirectifier layer on MNIST, with kcompile.

Keras 2.2's examples/antirectifier.py: how to write a custom layer. Antirectifier
centres its input, L2-normalizes it and returns the concatenation of its positive and
negative parts (twice the width, no zeros thrown away as ReLU does). The model: Dense
256, Antirectifier, Dropout 0.1, Dense 256, Antirectifier, Dropout 0.1, Dense 10,
Activation softmax; rmsprop; categorical_crossentropy; batch 128, 40 epochs. kcompile
compiles the custom layer by tracing its call() (custom_objects, as for Keras's
load_model). Everything is the original's, on the real set (--data mnist.npz) and on
the stand-in alike: scikit-learn's handwritten digits resized to 28x28 (1437 training
images instead of 60000), where the same 40 epochs at batch 128 take seconds.

    python examples/antirectifier.py                 # stand-in data
    python examples/antirectifier.py --data ~/.keras/datasets/mnist.npz
    python examples/antirectifier.py --quick --compare-keras
"""
import common
import keras
from keras import ops

ORIGINAL = {"epochs": 40, "batch_size": 128}
STAND_IN = {"epochs": 40, "batch_size": 128}
num_classes = 10


class Antirectifier(keras.layers.Layer):
    """The concatenation of the positive part and the negative part of the normalized input."""

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        assert len(shape) == 2  # only valid for 2D tensors
        shape[-1] *= 2
        return tuple(shape)

    def call(self, inputs):
        inputs -= ops.mean(inputs, axis=1, keepdims=True)
        inputs = ops.normalize(inputs, axis=1)  # K.l2_normalize in Keras 2
        pos = ops.relu(inputs)
        neg = ops.relu(-inputs)
        return ops.concatenate([pos, neg], axis=1)


def main(argv=None):
    args = common.parse_args("antirectifier", __doc__, argv=argv)
    data = common.load_mnist(args)
    epochs, batch_size = common.settings(args, data, ORIGINAL, STAND_IN)
    (x_train, y_train), (x_test, y_test) = data.prepared((784,), num_classes)

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        keras.Input(shape=(784,)),
        keras.layers.Dense(256),
        Antirectifier(),
        keras.layers.Dropout(0.1),
        keras.layers.Dense(256),
        Antirectifier(),
        keras.layers.Dropout(0.1),
        keras.layers.Dense(num_classes),
        keras.layers.Activation("softmax"),
    ])
    model.summary()

    run = common.Experiment(args, data)
    # kcompile traces the custom layer; custom_objects also lets Keras load the trained file.
    compiled = run.compile(model, custom_objects={"Antirectifier": Antirectifier})
    compiled.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"], seed=args.seed)
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    run.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=1, validation_data=(x_test, y_test))
    run.evaluate(x_test, y_test)
    run.deploy(x_test)


if __name__ == "__main__":
    main()

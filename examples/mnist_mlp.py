"""Trains a simple deep multi-layer perceptron on the MNIST dataset, with kcompile.

Keras 2.2's examples/mnist_mlp.py: Dense 512 relu, Dropout 0.2, Dense 512 relu,
Dropout 0.2, Dense 10 softmax; RMSprop(); categorical_crossentropy; batch 128, 20 epochs.
The model, optimizer and loss are the original's. With --data mnist.npz it trains as the
original does (20 epochs at batch 128). Without it, it trains on the stand-in, scikit-
learn's handwritten digits resized to 28x28 (1437 training images instead of 60000):
10 epochs at batch 32 there, since 20 epochs of only 12 RMSprop steps each end on a
noisy step too often.

    python examples/mnist_mlp.py                     # stand-in data
    python examples/mnist_mlp.py --data ~/.keras/datasets/mnist.npz
    python examples/mnist_mlp.py --quick --compare-keras
"""
import common

ORIGINAL = {"epochs": 20, "batch_size": 128}
STAND_IN = {"epochs": 10, "batch_size": 32}
num_classes = 10


def main(argv=None):
    args = common.parse_args("mnist_mlp", __doc__, argv=argv)
    import keras

    data = common.load_mnist(args)
    epochs, batch_size = common.settings(args, data, ORIGINAL, STAND_IN)
    (x_train, y_train), (x_test, y_test) = data.prepared((784,), num_classes)

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        keras.Input(shape=(784,)),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.summary()

    run = common.Experiment(args, data)
    compiled = run.compile(model)  # kcompile.compile of the initial weights (OUT/initial.keras)
    compiled.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(), metrics=["accuracy"],
                     seed=args.seed)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(), metrics=["accuracy"])
    run.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=1, validation_data=(x_test, y_test))
    run.evaluate(x_test, y_test)
    run.deploy(x_test)


if __name__ == "__main__":
    main()

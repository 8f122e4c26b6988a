"""Trains a simple convnet on the MNIST dataset, with kcompile.

Keras 2.2's examples/mnist_cnn.py: Conv2D 32 3x3 relu, Conv2D 64 3x3 relu,
MaxPooling 2x2, Dropout 0.25, Flatten, Dense 128 relu, Dropout 0.5, Dense 10 softmax;
Adadelta (Keras 2's defaults: learning rate 1.0, rho 0.95); categorical_crossentropy;
batch 128, 12 epochs. Everything is the original's, on the real set (--data mnist.npz)
and on the stand-in alike: scikit-learn's handwritten digits resized to 28x28 (1437
training images instead of 60000), where the same 12 epochs at batch 128 are enough.

    python examples/mnist_cnn.py                     # stand-in data
    python examples/mnist_cnn.py --data ~/.keras/datasets/mnist.npz
    python examples/mnist_cnn.py --quick --compare-keras
"""
import common

ORIGINAL = {"epochs": 12, "batch_size": 128}
STAND_IN = {"epochs": 12, "batch_size": 128}
num_classes = 10
img_rows, img_cols = 28, 28


def adadelta(keras):
    # keras.optimizers.Adadelta() of Keras 2.2 (Keras 3's default learning rate is 0.001).
    return keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-7)


def main(argv=None):
    args = common.parse_args("mnist_cnn", __doc__, argv=argv)
    import keras

    data = common.load_mnist(args)
    epochs, batch_size = common.settings(args, data, ORIGINAL, STAND_IN)
    (x_train, y_train), (x_test, y_test) = data.prepared((img_rows, img_cols, 1), num_classes)

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        keras.Input(shape=(img_rows, img_cols, 1)),
        keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        keras.layers.Conv2D(64, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Dropout(0.25),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.summary()

    run = common.Experiment(args, data)
    compiled = run.compile(model)  # kcompile.compile of the initial weights (OUT/initial.keras)
    compiled.compile(loss="categorical_crossentropy", optimizer=adadelta(keras), metrics=["accuracy"], seed=args.seed)
    model.compile(loss="categorical_crossentropy", optimizer=adadelta(keras), metrics=["accuracy"])
    run.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=1, validation_data=(x_test, y_test))
    run.evaluate(x_test, y_test)
    run.deploy(x_test)


if __name__ == "__main__":
    main()

"""Trains a simple deep CNN on the CIFAR10 small images dataset, with kcompile.

Keras 2.2's examples/cifar10_cnn.py: Conv2D 32 3x3 same, relu, Conv2D 32 3x3, relu,
MaxPooling 2x2, Dropout 0.25, Conv2D 64 3x3 same, relu, Conv2D 64 3x3, relu,
MaxPooling 2x2, Dropout 0.25, Flatten, Dense 512, relu, Dropout 0.5, Dense 10, softmax;
RMSprop(lr=0.0001, decay=1e-6); categorical_crossentropy; batch 32, 100 epochs, with
real-time data augmentation (random shifts by up to 10% and horizontal flips).

The model, optimizer and loss are the original's (Keras 2's `decay` is Keras 3's
InverseTimeDecay schedule). Data augmentation is optional here (--augment; a NumPy
version of the original's ImageDataGenerator settings, applied once per epoch).
With --data cifar-10-batches-py it trains 100 epochs at batch 32 as the original. No
CIFAR-10 can be downloaded here, so without --data it trains on a SYNTHETIC
CIFAR-shaped set (2000 + 500 images of 10 noisy colour patterns): 8 epochs at batch 32
there, to finish in about a minute on two cores. Its accuracy says nothing about
CIFAR-10.

    python examples/cifar10_cnn.py                   # synthetic stand-in
    python examples/cifar10_cnn.py --data ~/.keras/datasets/cifar-10-batches-py --augment
    python examples/cifar10_cnn.py --quick --compare-keras
"""
import common

ORIGINAL = {"epochs": 100, "batch_size": 32}
STAND_IN = {"epochs": 8, "batch_size": 32}
num_classes = 10


def rmsprop(keras):
    # keras.optimizers.rmsprop(lr=0.0001, decay=1e-6) of Keras 2: lr / (1 + decay * iterations).
    return keras.optimizers.RMSprop(learning_rate=keras.optimizers.schedules.InverseTimeDecay(
        initial_learning_rate=0.0001, decay_steps=1, decay_rate=1e-6))


def add_arguments(parser):
    parser.add_argument("--augment", action="store_true", help="real-time data augmentation, as the original")


def main(argv=None):
    args = common.parse_args("cifar10_cnn", __doc__, add_arguments, argv=argv)
    import keras

    data = common.load_cifar10(args)
    epochs, batch_size = common.settings(args, data, ORIGINAL, STAND_IN)
    (x_train, y_train), (x_test, y_test) = data.splits()
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)
    x_train = x_train.astype("float32") / 255
    x_test = x_test.astype("float32") / 255

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        keras.Input(shape=x_train.shape[1:]),
        keras.layers.Conv2D(32, (3, 3), padding="same"),
        keras.layers.Activation("relu"),
        keras.layers.Conv2D(32, (3, 3)),
        keras.layers.Activation("relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Dropout(0.25),
        keras.layers.Conv2D(64, (3, 3), padding="same"),
        keras.layers.Activation("relu"),
        keras.layers.Conv2D(64, (3, 3)),
        keras.layers.Activation("relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Dropout(0.25),
        keras.layers.Flatten(),
        keras.layers.Dense(512),
        keras.layers.Activation("relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(num_classes),
        keras.layers.Activation("softmax"),
    ])
    model.summary()

    run = common.Experiment(args, data)
    compiled = run.compile(model)  # kcompile.compile of the initial weights (OUT/initial.keras)
    compiled.compile(loss="categorical_crossentropy", optimizer=rmsprop(keras), metrics=["accuracy"], seed=args.seed)
    model.compile(loss="categorical_crossentropy", optimizer=rmsprop(keras), metrics=["accuracy"])
    if args.augment:
        print("Using real-time data augmentation.")
    else:
        print("Not using data augmentation.")
    run.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=1, validation_data=(x_test, y_test),
            shuffle=True, augment=common.shift_and_flip if args.augment else None)
    run.evaluate(x_test, y_test)
    run.deploy(x_test, batch_sizes=(1, 32))


if __name__ == "__main__":
    main()

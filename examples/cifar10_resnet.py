"""Trains a ResNet on the CIFAR10 small images dataset, with kcompile.

Keras 2.2's examples/cifar10_resnet.py: ResNet v1 (Conv2D-BatchNorm-ReLU stacks, depth
6n+2: ResNet20 at n=3) or ResNet v2 (pre-activation bottleneck blocks, depth 9n+2:
ResNet29 at n=3, --version 2), L2 weight decay 1e-4 on every Conv2D; pixel-mean
subtraction; Adam(lr=1e-3) with the original's lr_schedule by epoch
(LearningRateScheduler), ReduceLROnPlateau(factor=sqrt(0.1), patience=5,
min_lr=0.5e-6) and ModelCheckpoint(monitor=val accuracy, save_best_only=True);
categorical_crossentropy; batch 32, 200 epochs.

The model, optimizer, schedule, callbacks and loss are the original's. The original
also augments its data (shifts and flips); this script trains on the data as it is
(see cifar10_cnn.py --augment for the augmentation). With --data cifar-10-batches-py
it trains 200 epochs at batch 32 as the original. No CIFAR-10 can be downloaded here,
so without --data it trains on a SYNTHETIC CIFAR-shaped set (2000 + 500 images of 10
noisy colour patterns): 6 epochs at batch 32 there, to finish in about two minutes on
two cores. Its accuracy says nothing about CIFAR-10.

    python examples/cifar10_resnet.py                # ResNet20 v1, synthetic stand-in
    python examples/cifar10_resnet.py --version 2    # ResNet29 v2
    python examples/cifar10_resnet.py --data ~/.keras/datasets/cifar-10-batches-py
    python examples/cifar10_resnet.py --quick --compare-keras
"""
import os

import numpy as np

import common
from kcompile import zoo

ORIGINAL = {"epochs": 200, "batch_size": 32}
STAND_IN = {"epochs": 6, "batch_size": 32}
num_classes = 10
subtract_pixel_mean = True  # subtracting pixel mean improves accuracy


def lr_schedule(epoch):
    """Learning rate schedule: 1e-3, reduced after 80, 120, 160 and 180 epochs."""
    lr = 1e-3
    if epoch > 180:
        lr *= 0.5e-3
    elif epoch > 160:
        lr *= 1e-3
    elif epoch > 120:
        lr *= 1e-2
    elif epoch > 80:
        lr *= 1e-1
    print("Learning rate: ", lr)
    return lr


def add_arguments(parser):
    parser.add_argument("--version", type=int, choices=(1, 2), default=1, help="ResNet v1 or v2 (default 1)")
    parser.add_argument("--n", type=int, default=3, help="blocks per stack: depth 6n+2 (v1) or 9n+2 (v2)")


def main(argv=None):
    args = common.parse_args("cifar10_resnet", __doc__, add_arguments, argv=argv)
    import keras

    depth = args.n * 6 + 2 if args.version == 1 else args.n * 9 + 2
    model_type = "ResNet%dv%d" % (depth, args.version)
    data = common.load_cifar10(args)
    epochs, batch_size = common.settings(args, data, ORIGINAL, STAND_IN)
    (x_train, y_train), (x_test, y_test) = data.splits()
    x_train = x_train.astype("float32") / 255
    x_test = x_test.astype("float32") / 255
    if subtract_pixel_mean:
        x_train_mean = np.mean(x_train, axis=0)
        x_train -= x_train_mean
        x_test -= x_train_mean
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)

    keras.utils.set_random_seed(args.seed)
    # The original's resnet_layer, resnet_v1 and resnet_v2, line for line, live in
    # kcompile/zoo.py (the benchmarks and tests build the same ResNets).
    build = zoo.cifar10_resnet_v2 if args.version == 2 else zoo.cifar10_resnet_v1
    model = build(keras, depth=depth, num_classes=num_classes)
    model.summary()
    print(model_type)

    run = common.Experiment(args, data)
    compiled = run.compile(model)  # kcompile.compile of the initial weights (OUT/initial.keras)
    compiled.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=lr_schedule(0)),
                     metrics=["accuracy"], seed=args.seed)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=lr_schedule(0)),
                  metrics=["accuracy"])

    def callbacks(lib, tag):
        """The original's callbacks, from kcompile.training for kcompile's fit and from
        keras.callbacks for Keras's (Keras 3 calls "val_acc" "val_accuracy")."""
        filepath = os.path.join(run.out, "saved_models", tag, "cifar10_%s_model.{epoch:03d}.keras" % model_type)
        os.makedirs(os.path.dirname(filepath), exist_ok=True)
        checkpoint = lib.ModelCheckpoint(filepath=filepath, monitor="val_accuracy", verbose=1, save_best_only=True)
        lr_scheduler = lib.LearningRateScheduler(lr_schedule)
        lr_reducer = lib.ReduceLROnPlateau(factor=np.sqrt(0.1), cooldown=0, patience=5, min_lr=0.5e-6)
        return [checkpoint, lr_reducer, lr_scheduler]

    run.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=1, validation_data=(x_test, y_test),
            shuffle=True, callbacks=callbacks)
    run.evaluate(x_test, y_test)
    run.deploy(x_test, batch_sizes=(1, 32))


if __name__ == "__main__":
    main()

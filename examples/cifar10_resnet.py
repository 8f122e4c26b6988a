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


def resnet_layer(keras, inputs, num_filters=16, kernel_size=3, strides=1, activation="relu",
                 batch_normalization=True, conv_first=True):
    """2D Convolution-Batch Normalization-Activation stack builder."""
    layers = keras.layers
    conv = layers.Conv2D(num_filters, kernel_size=kernel_size, strides=strides, padding="same",
                         kernel_initializer="he_normal", kernel_regularizer=keras.regularizers.l2(1e-4))
    x = inputs
    if conv_first:
        x = conv(x)
        if batch_normalization:
            x = layers.BatchNormalization()(x)
        if activation is not None:
            x = layers.Activation(activation)(x)
    else:
        if batch_normalization:
            x = layers.BatchNormalization()(x)
        if activation is not None:
            x = layers.Activation(activation)(x)
        x = conv(x)
    return x


def resnet_v1(keras, input_shape, depth, num_classes=10):
    """ResNet Version 1: stacks of 2 x (3 x 3) Conv2D-BN-ReLU; the first layer of each
    stack but the first downsamples by a stride of 2."""
    if (depth - 2) % 6 != 0:
        raise ValueError("depth should be 6n+2 (eg 20, 32, 44 in [a])")
    num_filters = 16
    num_res_blocks = int((depth - 2) / 6)

    inputs = keras.Input(shape=input_shape)
    x = resnet_layer(keras, inputs=inputs)
    for stack in range(3):
        for res_block in range(num_res_blocks):
            strides = 1
            if stack > 0 and res_block == 0:  # first layer but not first stack
                strides = 2  # downsample
            y = resnet_layer(keras, inputs=x, num_filters=num_filters, strides=strides)
            y = resnet_layer(keras, inputs=y, num_filters=num_filters, activation=None)
            if stack > 0 and res_block == 0:  # linear projection residual shortcut to match changed dims
                x = resnet_layer(keras, inputs=x, num_filters=num_filters, kernel_size=1, strides=strides,
                                 activation=None, batch_normalization=False)
            x = keras.layers.add([x, y])
            x = keras.layers.Activation("relu")(x)
        num_filters *= 2

    x = keras.layers.AveragePooling2D(pool_size=8)(x)
    y = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", kernel_initializer="he_normal")(y)
    return keras.Model(inputs=inputs, outputs=outputs)


def resnet_v2(keras, input_shape, depth, num_classes=10):
    """ResNet Version 2: stacks of (1 x 1)-(3 x 3)-(1 x 1) BN-ReLU-Conv2D bottleneck
    layers; the first shortcut connection of each stack is a 1 x 1 Conv2D."""
    if (depth - 2) % 9 != 0:
        raise ValueError("depth should be 9n+2 (eg 56 or 110 in [b])")
    num_filters_in = 16
    num_res_blocks = int((depth - 2) / 9)

    inputs = keras.Input(shape=input_shape)
    # v2 performs Conv2D with BN-ReLU on input before splitting into 2 paths
    x = resnet_layer(keras, inputs=inputs, num_filters=num_filters_in, conv_first=True)
    for stage in range(3):
        for res_block in range(num_res_blocks):
            activation = "relu"
            batch_normalization = True
            strides = 1
            if stage == 0:
                num_filters_out = num_filters_in * 4
                if res_block == 0:  # first layer and first stage
                    activation = None
                    batch_normalization = False
            else:
                num_filters_out = num_filters_in * 2
                if res_block == 0:  # first layer but not first stage
                    strides = 2  # downsample
            # bottleneck residual unit
            y = resnet_layer(keras, inputs=x, num_filters=num_filters_in, kernel_size=1, strides=strides,
                             activation=activation, batch_normalization=batch_normalization, conv_first=False)
            y = resnet_layer(keras, inputs=y, num_filters=num_filters_in, conv_first=False)
            y = resnet_layer(keras, inputs=y, num_filters=num_filters_out, kernel_size=1, conv_first=False)
            if res_block == 0:  # linear projection residual shortcut to match changed dims
                x = resnet_layer(keras, inputs=x, num_filters=num_filters_out, kernel_size=1, strides=strides,
                                 activation=None, batch_normalization=False)
            x = keras.layers.add([x, y])
        num_filters_in = num_filters_out

    # v2 has BN-ReLU before Pooling
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.AveragePooling2D(pool_size=8)(x)
    y = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", kernel_initializer="he_normal")(y)
    return keras.Model(inputs=inputs, outputs=outputs)


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
    if args.version == 2:
        model = resnet_v2(keras, input_shape=x_train.shape[1:], depth=depth)
    else:
        model = resnet_v1(keras, input_shape=x_train.shape[1:], depth=depth)
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

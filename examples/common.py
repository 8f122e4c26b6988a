"""What the examples share: command-line arguments, data (the real set in Keras's cache
format with --data, a clearly labelled stand-in otherwise), training with kcompile and
optionally with Keras side by side, and the deployment step: a trained model file for
Keras, a kcompile artifact and an ONNX file, with the predict latency of each.

An example script reads like the Keras example it reproduces; the bookkeeping lives in
`Experiment`:

    run = Experiment(args, data)
    compiled = run.compile(keras_model)          # kcompile.compile of the initial weights
    compiled.compile(optimizer, loss, metrics)   # the original's arguments
    run.fit(x_train, y_train, batch_size=128, epochs=20, validation_data=(x_test, y_test))
    run.evaluate(x_test, y_test)
    run.deploy(x_test)                           # trained.keras, artifact/, model.onnx, latency
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quiet TensorFlow (set before Keras imports it)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK_TRAIN, QUICK_TEST = 384, 128  # samples a --quick run keeps


# -- arguments ----------------------------------------------------------------------------------------
def parse_args(name: str, doc: str, add_arguments=None, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"{name}.py", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", metavar="PATH", help="the real data set, in Keras's cache format "
                        "(default: a stand-in, see above)")
    parser.add_argument("--epochs", type=int, help="default: the original's with --data, the stand-in's without")
    parser.add_argument("--batch-size", type=int, help="default: the original's with --data, the stand-in's without")
    parser.add_argument("--quick", action="store_true", help="a smoke run: a slice of the data, one epoch")
    parser.add_argument("--compare-keras", action="store_true",
                        help="also train with Keras's own fit from the same initial weights")
    parser.add_argument("--out", default=os.path.join("runs", name), help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, dropout and shuffling")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    args.name = name
    return args


def settings(args, data, original: dict, stand_in: dict) -> tuple[int, int]:
    """(epochs, batch_size): the command line's, else the original's on the real set and
    the stand-in's on the stand-in; one epoch with --quick. Prints where each comes from."""
    defaults = stand_in if data.stand_in else original
    epochs = args.epochs or (1 if args.quick else defaults["epochs"])
    batch_size = args.batch_size or defaults["batch_size"]
    where = "on the stand-in" if data.stand_in else "on the real set"
    print(f"Training: {epochs} epochs at batch {batch_size} {where} "
          f"({original['epochs']} epochs at batch {original['batch_size']} in the original"
          f"{'; --quick' if args.quick else ''})")
    return epochs, batch_size


# -- data -----------------------------------------------------------------------------------------------
class Data:
    """A data set split into train and test, with a line saying what it is."""

    def __init__(self, train, test, description: str, stand_in: bool):
        (self.x_train, self.y_train), (self.x_test, self.y_test) = train, test
        self.description = description
        self.stand_in = stand_in

    def splits(self):
        return (self.x_train, self.y_train), (self.x_test, self.y_test)

    def prepared(self, sample_shape: tuple, num_classes: int):
        """The MNIST examples' preprocessing: images reshaped to sample_shape and scaled
        to [0, 1], labels one-hot (keras.utils.to_categorical)."""
        one_hot = np.eye(num_classes, dtype="float32")
        return tuple((x.reshape((len(x),) + tuple(sample_shape)).astype("float32") / 255,
                      one_hot[np.asarray(y).reshape(-1)]) for x, y in self.splits())

    def head(self, n_train: int, n_test: int) -> "Data":
        return Data((self.x_train[:n_train], self.y_train[:n_train]), (self.x_test[:n_test], self.y_test[:n_test]),
                    f"{self.description}; --quick keeps {n_train} + {n_test}", self.stand_in)

    def announce(self):
        label = "STAND-IN DATA: " if self.stand_in else "Data: "
        print(f"{label}{self.description}")
        print(f"  train {self.x_train.shape}, test {self.x_test.shape}")


def use(data: Data, args, quick=(QUICK_TRAIN, QUICK_TEST)) -> Data:
    """The data set to train on (its head with --quick), announced."""
    data = data.head(*quick) if args.quick else data
    data.announce()
    return data


def load_mnist(args) -> Data:
    """MNIST as keras.datasets.mnist.load_data() gives it (uint8 images (N, 28, 28), integer
    labels) from --data mnist.npz; else scikit-learn's bundled handwritten digits resized
    to 28x28 (real digits, but 1437 + 360 of them instead of 60000 + 10000)."""
    if args.data:
        with np.load(os.path.expanduser(args.data), allow_pickle=False) as f:
            data = Data((f["x_train"], f["y_train"]), (f["x_test"], f["y_test"]), f"MNIST from {args.data}", False)
    else:
        sys.path.insert(0, HERE)
        from digits_data import load_digits_as_mnist

        train, test = load_digits_as_mnist()
        as_mnist = [(np.round(x[..., 0] * 255).astype(np.uint8), y) for x, y in (train, test)]
        data = Data(*as_mnist, "scikit-learn's handwritten digits (8x8, resized to 28x28) standing in for MNIST "
                    "(pass --data mnist.npz for the real set)", True)
    return use(data, args)


def load_cifar10(args, n_train: int = 2000, n_test: int = 500) -> Data:
    """CIFAR-10 as keras.datasets.cifar10.load_data() gives it (uint8 (N, 32, 32, 3), labels
    (N, 1)) from --data cifar-10-batches-py (the folder of python pickles); else a
    synthetic CIFAR-shaped set (see synthetic_cifar10)."""
    if args.data:
        folder = os.path.expanduser(args.data)
        if not os.path.exists(os.path.join(folder, "test_batch")):
            folder = os.path.join(folder, "cifar-10-batches-py")
        batches = [_cifar_batch(os.path.join(folder, f"data_batch_{i}")) for i in range(1, 6)]
        train = (np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]))
        data = Data(train, _cifar_batch(os.path.join(folder, "test_batch")), f"CIFAR-10 from {folder}", False)
    else:
        data = Data(*synthetic_cifar10(n_train, n_test, seed=args.seed),
                    f"SYNTHETIC CIFAR-shaped images, {n_train} + {n_test} (10 classes of noisy, shifted, flipped "
                    "colour patterns; pass --data cifar-10-batches-py for the real set)", True)
    return use(data, args)


def _cifar_batch(path: str):
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    x = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(batch[b"labels"], np.uint8).reshape(-1, 1)


def synthetic_cifar10(n_train: int, n_test: int, seed: int = 0, noise: float = 0.5):
    """10 classes, each a smooth random colour pattern; every image is its class's pattern
    shifted by up to 4 pixels, maybe mirrored, with random contrast and pixel noise."""
    from scipy.ndimage import zoom

    rng = np.random.default_rng(1000 + seed)
    patterns = np.stack([zoom(rng.uniform(0, 1, (4, 4, 3)), (8, 8, 1), order=1, mode="grid-wrap", grid_mode=True)
                         for _ in range(10)])

    def draw(n):
        y = rng.integers(0, 10, n)
        x = np.empty((n, 32, 32, 3), np.float32)
        for i, label in enumerate(y):
            image = np.roll(patterns[label], tuple(rng.integers(-4, 5, 2)), axis=(0, 1))
            image = image[:, ::-1] if rng.random() < 0.5 else image
            x[i] = 0.5 + rng.uniform(0.5, 1.0) * (image - 0.5) + rng.normal(0, noise, image.shape)
        return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8), y.astype(np.uint8).reshape(-1, 1)

    return draw(n_train), draw(n_test)


# -- timing ----------------------------------------------------------------------------------------------
def epoch_timer(callback_base):
    """A callback recording seconds per epoch; callback_base is kcompile.training.Callback
    or keras.callbacks.Callback."""

    class EpochTimer(callback_base):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = EpochTimer()
    timer.seconds = []
    return timer


def median_ms(fn, x, min_runs: int = 3, budget_s: float = 0.5) -> float:
    """Median milliseconds of fn(x) after one warm-up call (at least min_runs, ~budget_s)."""
    fn(x)
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < budget_s and len(times) < 200):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


# -- the experiment ------------------------------------------------------------------------------------------
class Experiment:
    """One run of an example: kcompile training (and Keras's, with --compare-keras), the
    test-set evaluation, the deployment files, and results.json in the output folder."""

    def __init__(self, args, data: Data):
        self.args = args
        self.data = data
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.keras_model = self.compiled = self.custom_objects = None
        self.results = {"example": args.name, "data": data.description, "stand_in": data.stand_in,
                        "quick": args.quick, "kcompile": {}, "files": {}}

    def path(self, name: str) -> str:
        return os.path.join(self.out, name)

    def compile(self, keras_model, custom_objects=None):
        """Save the Keras model's initial weights and compile that file with kcompile."""
        import kcompile

        self.keras_model, self.custom_objects = keras_model, custom_objects
        initial = self.path("initial.keras")
        keras_model.save(initial)
        start = time.perf_counter()
        self.compiled = kcompile.compile(initial, custom_objects=custom_objects)
        print(f"kcompile.compile({os.path.relpath(initial)}): {time.perf_counter() - start:.1f} s")
        return self.compiled

    def fit(self, x, y, callbacks=None, augment=None, **fit_args):
        """kcompile's fit, then (--compare-keras) Keras's fit with the same arguments.

        callbacks: a function of a module (kcompile.training or keras.callbacks) and a tag
        ("kcompile" or "keras") returning the callback list, so each fit gets its own.
        augment: a function (x, rng) -> x applied to the training inputs once per epoch
        (one fit call per epoch then, as in a hand-written augmentation loop)."""
        import keras

        import kcompile.training

        self.results.update(epochs=fit_args.get("epochs"), batch_size=fit_args.get("batch_size"))
        print("\n== Training with kcompile ==")
        timer = epoch_timer(kcompile.training.Callback)
        user = callbacks(kcompile.training, "kcompile") if callbacks else []
        history = _fit(self.compiled, x, y, user + [timer], augment, self.args.seed, fit_args)
        self.results["kcompile"].update(_timing(timer.seconds), history=history)
        if self.args.compare_keras:
            print("\n== Training with Keras (same initial weights, same arguments) ==")
            keras.utils.set_random_seed(self.args.seed)
            timer = epoch_timer(keras.callbacks.Callback)
            user = callbacks(keras.callbacks, "keras") if callbacks else []
            keras_history = _fit(self.keras_model, x, y, user + [timer], augment, self.args.seed, fit_args)
            self.results["keras"] = dict(_timing(timer.seconds), history=keras_history)
        return history

    def evaluate(self, x, y):
        """Test loss and accuracy of each trained model, side by side."""
        runs = {"kcompile": self.compiled}
        if self.args.compare_keras:
            runs["keras"] = self.keras_model
        for key, model in runs.items():
            loss, accuracy = model.evaluate(x, y, verbose=0)[:2]
            self.results[key].update(test_loss=float(loss), test_accuracy=float(accuracy))
        rows = [("seconds per epoch (median of 2nd on)", "epoch_s", "{:.2f}"),
                ("first epoch (s, with compiling)", "first_epoch_s", "{:.2f}"),
                ("test loss", "test_loss", "{:.4f}"), ("test accuracy", "test_accuracy", "{:.2%}")]
        print(f"\n== Results ({self.results['epochs']} epochs, batch {self.results['batch_size']}"
              f"{', STAND-IN DATA' if self.data.stand_in else ''}) ==")
        print(f"{'':34s}" + "".join(f"{key:>12s}" for key in runs))
        for label, key, fmt in rows:
            print(f"{label:34s}" + "".join(f"{fmt.format(self.results[r][key]):>12s}" for r in runs))

    def deploy(self, x, batch_sizes=(1, 128)):
        """The trained model as a Keras file, a kcompile artifact and an ONNX file; checks
        that each reproduces kcompile's predictions on x and times predict on each."""
        import keras
        import onnxruntime

        import kcompile

        files = {"keras": self.path("trained.keras"), "artifact": self.path("artifact"), "onnx": self.path("model.onnx")}
        self.compiled.save(files["keras"])
        self.compiled.save(files["artifact"])
        self.compiled.export_onnx(files["onnx"])
        self.results["files"] = files

        reloaded = keras.models.load_model(files["keras"], custom_objects=self.custom_objects)
        artifact = kcompile.load(files["artifact"])
        session = onnxruntime.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
        onnx_input = session.get_inputs()[0].name
        runners = {
            "Keras (trained.keras)": lambda b: reloaded.predict_on_batch(b),
            "kcompile artifact": lambda b: artifact.predict_on_batch(b),
            "ONNX Runtime (model.onnx)": lambda b: session.run(None, {onnx_input: b})[0],
        }
        sample = x[:max(batch_sizes)]
        expected = self.compiled.predict(sample, verbose=0)
        differences = {name: float(np.max(np.abs(np.asarray(run(sample)) - expected))) for name, run in runners.items()}
        latency = {name: {str(b): median_ms(run, sample[:b]) for b in batch_sizes if b <= len(sample)}
                   for name, run in runners.items()}
        self.results.update(max_difference=differences, latency_ms=latency)

        print("\n== Trained model files ==")
        for name, path in files.items():
            print(f"  {name:9s} {os.path.relpath(path)}")
        shown = [b for b in batch_sizes if b <= len(sample)]
        print(f"\n{'predict latency (median ms)':30s}" + "".join(f"{'batch ' + str(b):>11s}" for b in shown)
              + "   max |y - y_kcompile|")
        for name in runners:
            print(f"  {name:28s}" + "".join(f"{latency[name][str(b)]:11.3f}" for b in shown)
                  + f"   {differences[name]:.1e}")
        with open(self.path("results.json"), "w") as f:
            json.dump(self.results, f, indent=1)
        print(f"\nResults: {os.path.relpath(self.path('results.json'))}")


def _fit(model, x, y, callbacks, augment, seed, fit_args) -> dict:
    """model.fit; with augment, one call per epoch on freshly augmented inputs. Returns
    the history as a dict of float lists."""
    if augment is None:
        history = model.fit(x, y, callbacks=callbacks, **fit_args).history
    else:
        rng = np.random.default_rng(seed)
        args, history = dict(fit_args), {}
        for epoch in range(args.pop("epochs")):
            one = model.fit(augment(x, rng), y, callbacks=callbacks, initial_epoch=epoch, epochs=epoch + 1, **args)
            for key, values in one.history.items():
                history.setdefault(key, []).extend(values)
    return {key: [float(v) for v in values] for key, values in history.items()}


def shift_and_flip(x, rng, shift: float = 0.1):
    """The original's ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1,
    horizontal_flip=True, fill_mode="nearest") on (N, H, W, C) arrays, in NumPy (shifts
    rounded to whole pixels)."""
    n, height, width, _ = x.shape
    pad = int(round(shift * max(height, width)))
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    dy, dx = rng.integers(-pad, pad + 1, (2, n))
    flip = rng.random(n) < 0.5
    out = np.empty_like(x)
    for i in range(n):
        image = padded[i, pad + dy[i]:pad + dy[i] + height, pad + dx[i]:pad + dx[i] + width]
        out[i] = image[:, ::-1] if flip[i] else image
    return out


def _timing(seconds: list) -> dict:
    later = seconds[1:] or seconds
    return {"epoch_s": float(np.median(later)), "first_epoch_s": float(seconds[0]), "epoch_seconds": seconds}


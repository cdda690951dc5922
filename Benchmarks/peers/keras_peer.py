"""Keras 3 (TensorFlow CPU) training the tutorials' MLP or CNN, as the tutorials write them:
Adam (Keras defaults), sparse categorical cross-entropy, model.fit with the given batch.

  python keras_peer.py --model mlp|cnn --batch 32 --epochs 5 [--data-dir data/mnist]

Prints one JSON line: each epoch's seconds (timed by a callback, as Keras times itself),
the median of the steady ones (after the first, which traces the graph), test accuracy, peak RSS."""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import mnist  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--data-dir")
args = parser.parse_args()

x_train, y_train, x_test, y_test = mnist.load(args.data_dir)
L = keras.layers
if args.model == "mlp":
    model = keras.Sequential([keras.Input((28, 28)), L.Flatten(), L.Dense(128, activation="relu"),
                              L.Dropout(0.2), L.Dense(10, activation="softmax")])
else:
    x_train, x_test = x_train[..., None], x_test[..., None]
    model = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                              L.Flatten(), L.Dense(128, activation="relu"), L.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])


class Clock(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


clock = Clock()
model.fit(x_train, y_train, batch_size=args.batch, epochs=args.epochs, verbose=0, callbacks=[clock])
_, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
steady = clock.seconds[1:] or clock.seconds
print(json.dumps({"system": "keras", "model": args.model, "batch": args.batch,
                  "epoch_s": [round(s, 4) for s in clock.seconds], "steady_epoch_s": round(statistics.median(steady), 4),
                  "test_accuracy": round(float(accuracy), 4), "peak_rss_mb": round(mnist.peak_rss_mb(), 1),
                  "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}))

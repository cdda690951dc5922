"""Keras 3 (TensorFlow CPU) on the tutorials of dptrain's data configs, to compare accuracies:

  binary       Configs/binary-tabular.yaml: the breast-cancer table's mean radius and mean
               texture (standardised with the training rows' mean and deviation, as sklearn's
               StandardScaler), Dense(8, relu) -> Dense(1, sigmoid), binary cross-entropy, batch 1,
               10 epochs (Launch/fetch-breast-cancer.sh puts the table in data/breast-cancer)
  categorical  Configs/mlp-categorical.yaml: MNIST, one-hot labels, the tutorial MLP, categorical
               cross-entropy, validation_split=0.2, 10 epochs
  npz          Configs/mlp-npz.yaml: the tutorial MLP on data/mnist.npz (dptrain data convert --to npz)

  python keras_tutorials.py --tutorial binary --seed 1

Prints one JSON line: test accuracy and loss."""
import argparse
import csv
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402

import mnist  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--tutorial", choices=["binary", "categorical", "npz"], required=True)
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--root", default=mnist.ROOT)
args = parser.parse_args()
keras.utils.set_random_seed(args.seed)
L = keras.layers


def mlp(loss):
    model = keras.Sequential([keras.Input((28, 28)), L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.2),
                              L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model


if args.tutorial == "binary":
    def table(name):
        with open(os.path.join(args.root, "data", "breast-cancer", name)) as f:
            rows = list(csv.DictReader(f))
        x = np.array([[float(r["mean radius"]), float(r["mean texture"])] for r in rows], np.float32)
        return x, np.array([1.0 if r["diagnosis"] == "malignant" else 0.0 for r in rows], np.float32)
    (x_train, y_train), (x_test, y_test) = table("train.csv"), table("test.csv")
    mean, std = x_train.mean(0), x_train.std(0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    model = keras.Sequential([keras.Input((2,)), L.Dense(8, activation="relu"), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=1, epochs=10, verbose=0)
elif args.tutorial == "categorical":
    x_train, y_train, x_test, y_test = mnist.load()
    y_train, y_test = keras.utils.to_categorical(y_train, 10), keras.utils.to_categorical(y_test, 10)
    model = mlp("categorical_crossentropy")
    model.fit(x_train, y_train, epochs=10, validation_split=0.2, verbose=0)
else:
    arrays = np.load(os.path.join(args.root, "data", "mnist.npz"))
    x_train, x_test = arrays["x_train"].astype(np.float32) / 255, arrays["x_test"].astype(np.float32) / 255
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    model = mlp("sparse_categorical_crossentropy")
    model.fit(x_train, y_train, batch_size=32, epochs=5, verbose=0)
loss, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
print(json.dumps({"system": "keras", "tutorial": args.tutorial, "seed": args.seed, "test_accuracy": round(float(accuracy), 4),
                  "test_loss": round(float(loss), 4)}))

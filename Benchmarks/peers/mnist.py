"""MNIST for the peers, read from the same IDX files dptrain reads (raw or .gz), pixels / 255.

The directory is --data-dir, else $DPTRAIN_DATA, else data/mnist in the repository."""
import gzip
import os
import resource

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def directory(flag=None):
    return flag or os.environ.get("DPTRAIN_DATA") or os.path.join(ROOT, "data", "mnist")


def _read(folder, stem):
    path = os.path.join(folder, stem)
    opener = open if os.path.exists(path) else gzip.open
    path = path if os.path.exists(path) else path + ".gz"
    with opener(path, "rb") as f:
        raw = f.read()
    rank = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(shape)


def load(folder=None):
    """(train images, train labels, test images, test labels): float32 [n, 28, 28] in [0, 1], int64."""
    folder = directory(folder)
    x_train = _read(folder, "train-images-idx3-ubyte").astype(np.float32) / 255
    x_test = _read(folder, "t10k-images-idx3-ubyte").astype(np.float32) / 255
    return (x_train, _read(folder, "train-labels-idx1-ubyte").astype(np.int64),
            x_test, _read(folder, "t10k-labels-idx1-ubyte").astype(np.int64))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

"""Data parallelism written by hand in mpi4py + numpy (OpenBLAS), the way a careful engineer would
without a framework: the tutorial MLP (784-128 ReLU, dropout 0.2, 128-10 softmax cross-entropy),
Glorot-uniform initialisation, all parameters in one flat buffer and all gradients in another, one
in-place Allreduce(SUM) of the gradients a step, and the same Adam step (Keras defaults) on every
rank.

  OPENBLAS_NUM_THREADS=1 mpirun -np 2 python numpy_peer.py --batch 32 --epochs 5
  OPENBLAS_NUM_THREADS=2 python numpy_peer.py --batch 32        # one process, BLAS on both cores

--batch is the GLOBAL batch, split across ranks as dptrain splits it. Rank 0 prints one JSON line:
each epoch's seconds (the slowest rank's), their median, test accuracy, peak RSS per rank."""
import argparse
import json
import os
import statistics

import numpy as np
from mpi4py import MPI

import mnist

parser = argparse.ArgumentParser()
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--data-dir")
args = parser.parse_args()
comm = MPI.COMM_WORLD
rank, ranks = comm.Get_rank(), comm.Get_size()

x_train, y_train, x_test, y_test = mnist.load(args.data_dir)
x_train, x_test = x_train.reshape(-1, 784), x_test.reshape(-1, 784)
shapes = [(784, 128), (128,), (128, 10), (10,)]
offsets = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
params = np.zeros(offsets[-1], np.float32)
grads = np.zeros_like(params)
W1, b1, W2, b2 = (params[o:e].reshape(s) for o, e, s in zip(offsets, offsets[1:], shapes))
gW1, gb1, gW2, gb2 = (grads[o:e].reshape(s) for o, e, s in zip(offsets, offsets[1:], shapes))
init = np.random.default_rng(1)  # the same draw on every rank
for W in (W1, W2):
    limit = np.sqrt(6 / sum(W.shape))
    W[...] = init.uniform(-limit, limit, W.shape)
m, v = np.zeros_like(params), np.zeros_like(params)
beta1, beta2, epsilon, rate = 0.9, 0.999, 1e-7, 1e-3
dropout = np.random.default_rng(100 + rank)


def backprop(x, y, scale):
    """The slice's gradient, scaled by 1 / global batch, into grads."""
    h = np.maximum(x @ W1 + b1, 0)
    keep = (dropout.random(h.shape, dtype=np.float32) >= 0.2) / np.float32(0.8)
    hd = h * keep
    z = hd @ W2 + b2
    z = np.exp(z - z.max(1, keepdims=True))
    z /= z.sum(1, keepdims=True)
    z[np.arange(len(y)), y] -= 1
    z *= scale
    np.matmul(hd.T, z, out=gW2)
    gb2[...] = z.sum(0)
    dh = (z @ W2.T) * keep * (h > 0)
    np.matmul(x.T, dh, out=gW1)
    gb1[...] = dh.sum(0)


seconds, t = [], 0
for epoch in range(args.epochs):
    order = np.random.default_rng(epoch).permutation(len(x_train))  # the same on every rank
    comm.Barrier()
    started = MPI.Wtime()
    for first in range(0, len(order), args.batch):
        batch = order[first:first + args.batch]
        mine = batch[rank * len(batch) // ranks:(rank + 1) * len(batch) // ranks]
        if len(mine):
            backprop(x_train[mine], y_train[mine], np.float32(1 / len(batch)))
        else:
            grads[...] = 0
        if ranks > 1:
            comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
        t += 1
        m *= beta1
        m += (1 - beta1) * grads
        v *= beta2
        v += (1 - beta2) * grads * grads
        params -= rate * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (np.sqrt(v) + epsilon)
    seconds.append(comm.allreduce(MPI.Wtime() - started, op=MPI.MAX))

rss = comm.gather(mnist.peak_rss_mb(), root=0)
if rank == 0:
    accuracy = float(((np.maximum(x_test @ W1 + b1, 0) @ W2 + b2).argmax(1) == y_test).mean())
    print(json.dumps({"system": "numpy", "model": "mlp", "batch": args.batch, "ranks": ranks,
                      "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
                      "epoch_s": [round(s, 4) for s in seconds], "median_epoch_s": round(statistics.median(seconds), 4),
                      "test_accuracy": round(accuracy, 4), "peak_rss_mb": round(max(rss), 1),
                      "versions": {"numpy": np.__version__}}), flush=True)

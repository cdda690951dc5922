"""PyTorch (CPU) training the tutorial MLP in one process: Linear 784-128, ReLU, Dropout 0.2,
Linear 128-10, cross-entropy, Adam(1e-3). The data lives in tensors; each epoch draws a fresh
permutation and slices it into batches (no DataLoader, which would only add to its time).

  python torch_peer.py --batch 32 --epochs 5 --threads 2 [--data-dir data/mnist]

Prints one JSON line: each epoch's seconds, their median, test accuracy, peak RSS."""
import argparse
import json
import statistics
import time

import torch

import mnist

parser = argparse.ArgumentParser()
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--data-dir")
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)

x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in mnist.load(args.data_dir))
x_train, x_test = x_train.reshape(-1, 784), x_test.reshape(-1, 784)
model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(128, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()

seconds = []
for epoch in range(args.epochs):
    started = time.perf_counter()
    model.train()
    order = torch.randperm(len(x_train))
    for first in range(0, len(order), args.batch):
        batch = order[first:first + args.batch]
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x_train[batch]), y_train[batch]).backward()
        optimizer.step()
    seconds.append(time.perf_counter() - started)
model.eval()
with torch.no_grad():
    accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
print(json.dumps({"system": "pytorch", "model": "mlp", "batch": args.batch, "threads": torch.get_num_threads(),
                  "epoch_s": [round(s, 4) for s in seconds], "median_epoch_s": round(statistics.median(seconds), 4),
                  "test_accuracy": round(accuracy, 4), "peak_rss_mb": round(mnist.peak_rss_mb(), 1),
                  "versions": {"torch": torch.__version__}}))

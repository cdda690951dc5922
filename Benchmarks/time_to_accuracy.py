"""MLPerf-style time to a target test accuracy from `dptrain train --metrics-file` runs: wall
seconds of training (the sum of epoch times; evaluation excluded) until the first epoch whose
test accuracy reaches the target.
Usage: python3 time_to_accuracy.py TARGET LABEL=METRICS.jsonl [LABEL=METRICS.jsonl ...]"""
import json
import sys


def read_events(path):
    """The JSON Lines of a metrics file."""
    return [json.loads(line) for line in open(path) if line.strip()]


def time_to_accuracy(events, target):
    """(epoch, training seconds, accuracy) of the first test evaluation at or above `target`,
    or None when no epoch reached it."""
    seconds = {e["epoch"]: e["seconds"] for e in events if e.get("event") == "epoch"}
    for e in (e for e in events if e.get("event") == "eval" and e.get("split") == "test"):
        if e["accuracy"] >= target:
            return e["epoch"], sum(s for n, s in seconds.items() if n <= e["epoch"]), e["accuracy"]
    return None


if __name__ == "__main__":
    target = float(sys.argv[1])
    print(f"time to {target:.1%} test accuracy (training seconds, evaluation excluded):")
    for arg in sys.argv[2:]:
        label, path = arg.split("=", 1)
        try:
            events = read_events(path)
        except OSError as e:
            print(f"  {label:<24} no metrics ({e.strerror})")
            continue
        reached = time_to_accuracy(events, target)
        if reached:
            print(f"  {label:<24} {reached[1]:7.2f} s  (epoch {reached[0]}, accuracy {reached[2]:.4f})")
        else:
            epochs = sum(1 for e in events if e.get("event") == "epoch")
            print(f"  {label:<24} not reached in {epochs} epochs")

"""MLPerf-style time to a target test accuracy from `dptrain train --metrics-file` runs: wall
seconds of training (the sum of epoch times; evaluation excluded) until the first epoch whose
test accuracy reaches the target.
Usage: python3 time_to_accuracy.py TARGET LABEL=METRICS.jsonl [LABEL=METRICS.jsonl ...]"""
import json
import sys

target = float(sys.argv[1])
print(f"time to {target:.1%} test accuracy (training seconds, evaluation excluded):")
for arg in sys.argv[2:]:
    label, path = arg.split("=", 1)
    try:
        events = [json.loads(l) for l in open(path) if l.strip()]
    except OSError as e:
        print(f"  {label:<24} no metrics ({e.strerror})")
        continue
    seconds = {e["epoch"]: e["seconds"] for e in events if e.get("event") == "epoch"}
    reached = None
    for e in (e for e in events if e.get("event") == "eval" and e.get("split") == "test"):
        elapsed = sum(s for n, s in seconds.items() if n <= e["epoch"])
        if e["accuracy"] >= target:
            reached = (e["epoch"], elapsed, e["accuracy"])
            break
    if reached:
        print(f"  {label:<24} {reached[1]:7.2f} s  (epoch {reached[0]}, accuracy {reached[2]:.4f})")
    else:
        print(f"  {label:<24} not reached in {len(seconds)} epochs")

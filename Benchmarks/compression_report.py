"""Reads Benchmarks/compression.sh's runs: one host alone, then 2 hosts per wire format, each round: the mean step, the training
time to the target test accuracy (time_to_accuracy.py) and the test accuracy after the config's
epochs and at the end.
Usage: python3 compression_report.py MODEL TARGET CONFIG_EPOCHS OUT ROUNDS [FORMATS]
(FORMATS: the ones run, as compression.sh's --formats; default all)"""
import os
import statistics
import sys

from time_to_accuracy import read_events, time_to_accuracy

model, target, config_epochs, out, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
run = sys.argv[6].split() if len(sys.argv) > 6 else None
print(f"{model}: mean step, training seconds to {target:.1%} test accuracy (evaluation excluded), "
      f"test accuracy after the config's {config_epochs} epochs and at the end")
for fmt, label in (("onehost", "1 host"), ("none", "float32"), ("none-serial", "float32, sent after backward"),
                   ("bf16", "bf16"), ("bf16-serial", "bf16, sent after backward"), ("powersgd", "PowerSGD"),
                   ("powersgd-bf16", "PowerSGD, bf16")):
    if run is not None and fmt.removesuffix("-serial") not in run:
        continue
    if fmt.endswith("-serial") and not os.path.exists(f"{out}/{model}-{fmt}-1.jsonl"):
        continue
    times = []
    for r in range(1, rounds + 1):
        try:
            events = read_events(f"{out}/{model}-{fmt}-{r}.jsonl")
        except OSError:
            print(f"  {label:28} round {r}: no metrics")
            continue
        epochs = [e for e in events if e.get("event") == "epoch"]
        tests = [e for e in events if e.get("event") == "eval" and e.get("split") == "test"]
        reached = time_to_accuracy(events, target)
        times.append(reached[1] if reached else float("inf"))
        at_config = next((e["accuracy"] for e in tests if e["epoch"] == config_epochs), float("nan"))
        step_ms = 1e3 * sum(e["seconds"] for e in epochs) / max(max((e["step"] for e in epochs), default=1), 1)
        to_target = f"{reached[1]:7.1f} s (epoch {reached[0]})" if reached else f"not in {len(epochs)} epochs"
        print(f"  {label:28} round {r}: {step_ms:6.2f} ms a step, {to_target}, accuracy {at_config:.4f} after {config_epochs}, "
              f"{tests[-1]['accuracy'] if tests else float('nan'):.4f} after {len(epochs)}")
    if len(times) > 1:
        middle = statistics.median(times)
        print(f"  {label:28} median over {len(times)} rounds: "
              + (f"{middle:.1f} s" if middle != float("inf") else "not reached") + f" ({sum(t != float('inf') for t in times)} reached)")

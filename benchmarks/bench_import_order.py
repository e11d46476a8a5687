"""Does the import order still matter? Prints one JSON object.

The LeNet train step (batch 64, float32, fused plan) timed in fresh processes that import
`dagnet` first or `numpy` first (OpenBLAS reads its thread settings when numpy loads; dagnet
re-reads them when it comes second, dagnet/procenv.py). The two orders alternate, round by
round, so that the machine's drift falls on both alike; each process reports the median of
its steps, and the summary gives the median of each order and their ratio.

    python benchmarks/bench_import_order.py [--quick] [--rounds N]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

#: one process's measurement: the first import decides the order
CHILD = """
import sys, time, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if sys.argv[1] == "numpy_first":
        import numpy as np
        import dagnet
    else:
        import dagnet
        import numpy as np
from dagnet.models import lenet
steps, warm = int(sys.argv[2]), 5
plan = dagnet.compile(lenet())
rng = np.random.default_rng(0)
x = rng.random((64, 1, 28, 28), dtype=np.float32)
y = rng.integers(0, 10, 64)
times = []
for i in range(warm + steps):
    t0 = time.perf_counter()
    plan.loss_and_grads(x, y)
    times.append(time.perf_counter() - t0)
times = sorted(times[warm:])
print(len(caught), times[len(times) // 2])
"""

ORDERS = ("dagnet_first", "numpy_first")


def step_ms(order: str, steps: int) -> tuple[float, int]:
    """(the median step in ms, the warnings its imports raised) of one fresh process."""
    out = subprocess.run([sys.executable, "-c", CHILD, order, str(steps)], check=True,
                         capture_output=True, text=True)
    warned, median = out.stdout.split()[-2:]
    return 1e3 * float(median), int(warned)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 round of 5 steps (a smoke test)")
    p.add_argument("--rounds", type=int, default=8, help="processes per order")
    p.add_argument("--steps", type=int, default=60, help="timed steps per process")
    args = p.parse_args(argv)
    rounds, steps = (1, 5) if args.quick else (args.rounds, args.steps)
    ms = {order: [] for order in ORDERS}
    warned = {order: 0 for order in ORDERS}
    for r in range(rounds):
        for order in (ORDERS if r % 2 == 0 else ORDERS[::-1]):
            t, w = step_ms(order, steps)
            ms[order].append(t)
            warned[order] += w
    med = {order: statistics.median(v) for order, v in ms.items()}
    result = {"step_ms": {k: [round(t, 3) for t in v] for k, v in ms.items()},
              "import_warnings": warned,
              "summary": {"dagnet_first_step_ms": round(med["dagnet_first"], 3),
                          "numpy_first_step_ms": round(med["numpy_first"], 3),
                          "numpy_first_ratio": round(med["numpy_first"] / med["dagnet_first"], 3)}}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

"""Time the simulator: one 1024x1024x11 RGB stack.

PYTHONPATH=. python benchmarks/training/bench_synth.py   # from the repository root
"""

from __future__ import annotations

import json
import platform
import time

import scipy.fft

from mfpi_deploy.synth import SimConfig, simulate_stack


def main() -> None:
    times = []
    for seed in range(3):
        t = time.perf_counter()
        with scipy.fft.set_workers(1):
            simulate_stack(SimConfig(height=1024, width=1024, seed=seed))
        times.append(time.perf_counter() - t)
    print(
        json.dumps(
            {
                "stack": "11 x 1024 x 1024 x 3 uint8",
                "seconds": [round(x, 2) for x in times],
                "best_s": round(min(times), 2),
                "machine": platform.processor() or platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Side-by-side latency of several runners (ONNX Runtime sessions) on one machine.

The runners take turns, so a busy machine slows all of them alike and their ratios stay
meaningful. Each turn is one untimed run and then `TURN` timed ones: an ONNX Runtime session's
workers keep spinning for a moment after its last run (as they do in the node, where that
keeps latency down), and on 2 cores the untimed run absorbs that, where one-run turns charged
it to the next model (a 2-thread fp32 graph then timed no faster than on 1 thread).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

TURN = 4  # timed runs per runner per turn


def time_in_turns(runners: dict[str, Callable[[], object]], repeats: int, warmup: int,
                  clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """At least `repeats` latencies in ms per runner, after `warmup` untimed runs of each
    (`clock`: seconds)."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(math.ceil(repeats / TURN)):
        for name, run in runners.items():
            run()
            for _ in range(TURN):
                t0 = clock()
                run()
                times[name].append(1e3 * (clock() - t0))
    return times

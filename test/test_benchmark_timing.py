"""The benchmarks' side-by-side timing: runners take turns, each turn's first run is untimed."""
from __future__ import annotations

from lsmdepth_ros.benchmarks.timing import TURN, time_in_turns


def test_runners_take_turns_and_each_turns_first_run_is_not_timed():
    # A fake clock: no wall time is measured, so a busy machine cannot change the result.
    now = [0.0]
    calls = []

    def runner(name):
        def run():
            # the first run of a turn (after the other runner) costs 50 ms: what the previous
            # session's spinning workers cost on a 2-core machine; every other run 1 ms
            slow = bool(calls) and calls[-1] != name
            calls.append(name)
            now[0] += 0.050 if slow else 0.001
        return run

    times = time_in_turns({"a": runner("a"), "b": runner("b")}, repeats=10, warmup=2,
                          clock=lambda: now[0])
    turns = -(-10 // TURN)
    assert len(times["a"]) == len(times["b"]) == turns * TURN >= 10
    # two warm-up runs each, then turns of 1 + TURN runs, alternating
    expected = ["a"] * 2 + ["b"] * 2 + (["a"] * (TURN + 1) + ["b"] * (TURN + 1)) * turns
    assert calls == expected
    assert max(times["a"] + times["b"]) < 25.0   # no timed run paid the 50 ms switch
    assert all(abs(t - 1.0) < 1e-6 for t in times["a"] + times["b"])

"""Node health: rates, latency percentiles, drop counts, throttled warnings -> /diagnostics."""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


class RateMeter:
    """Events per second over the last `window` seconds (monotonic clock)."""

    def __init__(self, window: float = 5.0):
        self.window = window
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        # (n - 1) intervals up to now: decays to zero when the events stop.
        return (len(self._times) - 1) / max(now - self._times[0], 1e-9)


@dataclass
class FrameStats:
    """Counters and recent samples shared by the callbacks and the inference thread."""

    window: int = 200
    received: int = 0
    processed: int = 0
    dropped: int = 0                 # overwritten before inference could take them
    skipped_no_subscribers: int = 0
    bad_input: int = 0
    inference_ms: deque = field(default_factory=deque)
    latency_ms: deque = field(default_factory=deque)     # arrival -> depth published
    input_rate: RateMeter = field(default_factory=RateMeter)
    output_rate: RateMeter = field(default_factory=RateMeter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.inference_ms = deque(maxlen=self.window)
        self.latency_ms = deque(maxlen=self.window)

    def on_received(self, replaced_unprocessed: bool) -> None:
        with self.lock:
            self.received += 1
            self.dropped += int(replaced_unprocessed)
            self.input_rate.tick()

    def on_published(self, inference_ms: float, latency_ms: float) -> None:
        with self.lock:
            self.processed += 1
            self.inference_ms.append(inference_ms)
            self.latency_ms.append(latency_ms)
            self.output_rate.tick()

    def snapshot(self) -> dict:
        with self.lock:
            inf = np.array(self.inference_ms, dtype=np.float64)
            lat = np.array(self.latency_ms, dtype=np.float64)
            snap = {
                "input_rate_hz": self.input_rate.rate(), "output_rate_hz": self.output_rate.rate(),
                "frames_received": self.received, "frames_processed": self.processed,
                "frames_dropped": self.dropped,
                "frames_skipped_no_subscribers": self.skipped_no_subscribers,
                "bad_inputs": self.bad_input,
            }
        for name, values in (("inference_ms", inf), ("latency_ms", lat)):
            for p in (50, 90, 99):
                snap[f"{name}_p{p}"] = float(np.percentile(values, p)) if values.size else float("nan")
        return snap


class ThrottledWarnings:
    """At most one warning per kind every `period` seconds; counts what it held back."""

    def __init__(self, emit, period: float = 5.0):
        self._emit = emit
        self.period = period
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def warn(self, kind: str, text: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.period:
                self._held[kind] = self._held.get(kind, 0) + 1
                return False
            held = self._held.pop(kind, 0)
            self._last[kind] = now
        suffix = f" ({held} similar warnings suppressed)" if held else ""
        self._emit(text + suffix)
        return True

    def active(self, within: float) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return sorted(k for k, t in self._last.items() if now - t <= within)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def build_diagnostics(name: str, hardware_id: str, snap: dict, info: dict, stamp,
                      problems: list[str]) -> DiagnosticArray:
    """One DiagnosticStatus with every statistic as a KeyValue; WARN while input is bad."""
    status = DiagnosticStatus()
    status.name = name
    status.hardware_id = hardware_id
    if snap["frames_received"] == 0:
        status.level, status.message = DiagnosticStatus.STALE, "no images received yet"
    elif problems:
        status.level = DiagnosticStatus.WARN
        status.message = "input problems: " + ", ".join(problems)
    else:
        status.level = DiagnosticStatus.OK
        status.message = (f"{snap['input_rate_hz']:.1f} Hz in, {snap['output_rate_hz']:.1f} Hz out, "
                          f"{snap['frames_dropped']} dropped")
    values = dict(info)
    values.update(snap)
    status.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg


def diagnostics_values(msg: DiagnosticArray) -> dict[str, str]:
    """KeyValues of the first status as a dict (for tools and tests)."""
    return {kv.key: kv.value for kv in msg.status[0].values} if msg.status else {}

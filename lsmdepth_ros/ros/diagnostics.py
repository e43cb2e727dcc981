"""Node health for /diagnostics, in diagnostic_updater's conventions.

One DiagnosticStatus per node, named `<fully qualified node name>: depth estimation` (two
cameras in two namespaces are told apart), hardware_id = the input image topic. Its level is
the worst of:
  * frequency status (diagnostic_updater FrequencyStatus): input and output rates against the
    optional min/max expected rates, WARN outside them;
  * timestamp status (TimeStampStatus): ERROR when an image stamp since the last report was
    further in the past than max_stamp_delay or in the future by more than max_stamp_lead,
    or zero;
  * input problems (bad images, unpaired images, camera_info trouble): WARN while recent;
  * STALE before the first image.
Values carry the counts and latency percentiles. Every received frame ends as exactly one of
processed, dropped, bad input, skipped (no subscriber) or failed.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

STATUS_TASK = "depth estimation"


def status_name(fully_qualified_node_name: str) -> str:
    return f"{fully_qualified_node_name}: {STATUS_TASK}"


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
    """Counters and recent samples shared by the callbacks and the inference thread.

    Received / dropped / unpaired images are counted by the pairing (camera_info_pairing)."""

    window: int = 200
    processed: int = 0
    skipped_no_subscribers: int = 0
    bad_input: int = 0
    failed: int = 0     # an unexpected error (logged with its traceback)
    inference_ms: deque = field(default_factory=deque)
    latency_ms: deque = field(default_factory=deque)     # arrival -> depth published
    input_rate: RateMeter = field(default_factory=RateMeter)
    output_rate: RateMeter = field(default_factory=RateMeter)
    # Stamp delays (node clock - image stamp) since the last report, TimeStampStatus style.
    stamp_delays: list = field(default_factory=list)
    zero_stamps: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.inference_ms = deque(maxlen=self.window)
        self.latency_ms = deque(maxlen=self.window)

    def on_received(self, stamp_delay_s: float | None) -> None:
        """One image arrived; `stamp_delay_s` None for a zero stamp."""
        with self.lock:
            self.input_rate.tick()
            if stamp_delay_s is None:
                self.zero_stamps += 1
            else:
                self.stamp_delays.append(stamp_delay_s)

    def on_published(self, inference_ms: float, latency_ms: float) -> None:
        with self.lock:
            self.processed += 1
            self.inference_ms.append(inference_ms)
            self.latency_ms.append(latency_ms)
            self.output_rate.tick()

    def count(self, what: str) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)

    def snapshot(self, pairing) -> dict:
        """Figures since start-up (stamp delays: since the previous snapshot)."""
        with self.lock:
            inf = np.array(self.inference_ms, dtype=np.float64)
            lat = np.array(self.latency_ms, dtype=np.float64)
            delays, self.stamp_delays = self.stamp_delays, []
            zero, self.zero_stamps = self.zero_stamps, 0
            snap = {
                "input_rate_hz": self.input_rate.rate(), "output_rate_hz": self.output_rate.rate(),
                "frames_received": pairing.received, "frames_processed": self.processed,
                "frames_dropped": pairing.dropped, "images_unpaired": pairing.unpaired,
                "camera_info_frame_id_mismatches": pairing.frame_id_mismatch,
                "frames_skipped_no_subscribers": self.skipped_no_subscribers,
                "bad_inputs": self.bad_input, "frames_failed": self.failed,
            }
        snap["stamp_delay_min_s"] = min(delays) if delays else float("nan")
        snap["stamp_delay_max_s"] = max(delays) if delays else float("nan")
        snap["zero_stamps"] = zero
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


@dataclass(frozen=True)
class Expectations:
    """What the user expects (node parameters); 0 disables a rate bound."""

    min_input_rate: float = 0.0
    max_input_rate: float = 0.0
    min_output_rate: float = 0.0
    max_output_rate: float = 0.0
    max_stamp_delay: float = 5.0
    max_stamp_lead: float = 1.0


def _frequency_problem(what: str, rate: float, low: float, high: float) -> str | None:
    if low > 0 and rate < low:
        return f"{what} rate {rate:.1f} Hz below the expected {low:g} Hz"
    if high > 0 and rate > high:
        return f"{what} rate {rate:.1f} Hz above the expected {high:g} Hz"
    return None


def assess(snap: dict, expect: Expectations, problems: list[str],
           inputs_subscribed: bool) -> tuple[int, str]:
    """(level, message) of the node's status; see the module note for the rules."""
    errors, warnings = [], []
    if snap["zero_stamps"]:
        errors.append("zero timestamp seen")
    if snap["stamp_delay_max_s"] > expect.max_stamp_delay:
        errors.append(f"image stamps up to {snap['stamp_delay_max_s']:.2f} s in the past "
                      f"(more than max_stamp_delay {expect.max_stamp_delay:g} s)")
    if -snap["stamp_delay_min_s"] > expect.max_stamp_lead:
        errors.append(f"image stamps up to {-snap['stamp_delay_min_s']:.2f} s in the future "
                      f"(more than max_stamp_lead {expect.max_stamp_lead:g} s)")
    for what, low, high in (("input", expect.min_input_rate, expect.max_input_rate),
                            ("output", expect.min_output_rate, expect.max_output_rate)):
        problem = _frequency_problem(what, snap[f"{what}_rate_hz"], low, high)
        if problem and inputs_subscribed:
            warnings.append(problem)
    if problems:
        warnings.append("input problems: " + ", ".join(problems))
    if errors:
        return DiagnosticStatus.ERROR, "; ".join(errors + warnings)
    if warnings:
        return DiagnosticStatus.WARN, "; ".join(warnings)
    if not inputs_subscribed:
        return DiagnosticStatus.OK, "idle: no subscriber on any output, inputs unsubscribed"
    if snap["frames_received"] == 0:
        return DiagnosticStatus.STALE, "no images received yet"
    return DiagnosticStatus.OK, (f"{snap['input_rate_hz']:.1f} Hz in, "
                                 f"{snap['output_rate_hz']:.1f} Hz out, "
                                 f"{snap['frames_dropped']} dropped")


def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def build_diagnostics(name: str, hardware_id: str, level: int, message: str, values: dict,
                      stamp) -> DiagnosticArray:
    """The node's one DiagnosticStatus (every value as a KeyValue) in a DiagnosticArray."""
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, message=message)
    status.level = level
    status.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg


def diagnostics_values(msg: DiagnosticArray) -> dict[str, str]:
    """KeyValues of the first status as a dict (for tools and tests)."""
    return {kv.key: kv.value for kv in msg.status[0].values} if msg.status else {}

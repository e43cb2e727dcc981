"""Each image with its own camera_info, matched by stamp, and a one-frame mailbox for inference.

`FramePairing` is fed by the subscription callbacks and read by the inference thread:

* 'exact' (default, like message_filters' exact-time synchroniser): an image waits (at most
  `timeout` seconds, in a queue of `queue_size`) for the camera_info with the same stamp, and a
  camera_info waits for its image. Infos usually arrive within milliseconds of their image,
  but may come first or, from a slow driver, a few hundred milliseconds later.
* 'newest': the most recent camera_info, whatever its stamp (for drivers that publish one
  fixed camera_info); a stamp far from the image's is reported.

A matched (or timed-out) image goes into a one-slot mailbox: a newer one replaces it, so a slow
model never builds a backlog; replaced images count as dropped. An image that leaves without a
camera_info is still turned into depth (which needs none) but counts as unpaired.
No ROS imports: messages only need `header.stamp.sec/.nanosec` and `header.frame_id`.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from lsmdepth_ros.ros.conversions import header_ns

PAIRING_MODES = ("exact", "newest")
NEWEST_STAMP_GAP_S = 1.0   # 'newest' pairing: a larger gap between the stamps is reported
NO_INFO_YET = "no camera_info received yet: publishing depth only (no depth/camera_info, no points)"


stamp_ns = header_ns   # the header stamp in nanoseconds (one conversion, ros.conversions)


@dataclass
class Frame:
    image: object                 # Image or CompressedImage
    arrival: float                # time.monotonic() when the image arrived
    info: object | None = None    # its CameraInfo, or None (unpaired)
    problems: list[tuple[str, str]] = field(default_factory=list)   # (kind, text) to warn about


@dataclass
class PairingCounts:
    received: int = 0
    dropped: int = 0       # replaced in the mailbox (or in the queue) before inference took them
    unpaired: int = 0      # left without a camera_info
    frame_id_mismatch: int = 0


class FramePairing:
    def __init__(self, mode: str = "exact", queue_size: int = 5, timeout: float = 0.5,
                 clock=time.monotonic):
        if mode not in PAIRING_MODES:
            raise ValueError(f"camera_info pairing must be one of {PAIRING_MODES}, got {mode!r}")
        self.mode, self.queue_size, self.timeout = mode, queue_size, timeout
        self._clock = clock
        self._cond = threading.Condition()
        self._images: OrderedDict[int, Frame] = OrderedDict()    # stamp -> waiting image
        self._infos: OrderedDict[int, object] = OrderedDict()    # stamp -> waiting camera_info
        self._newest_info = None
        self._ready: Frame | None = None
        self._closed = False
        self.counts = PairingCounts()

    # -- producers (subscription callbacks) ------------------------------------------------------
    def put_image(self, msg) -> None:
        now = self._clock()
        with self._cond:
            self.counts.received += 1
            frame = Frame(msg, now)
            if self.mode == "newest":
                self._pair(frame, self._newest_info)
                return
            key = stamp_ns(msg)
            info = self._infos.pop(key, None)
            if info is not None:
                self._pair(frame, info)
                return
            self._images[key] = frame
            while len(self._images) > self.queue_size:   # the oldest can wait no longer
                self._release_unpaired(self._images.popitem(last=False)[1], "queue_full")

    def put_info(self, msg) -> None:
        with self._cond:
            self._newest_info = msg
            if self.mode == "newest":
                return
            key = stamp_ns(msg)
            frame = self._images.pop(key, None)
            if frame is not None:
                self._pair(frame, msg)
                return
            self._infos[key] = msg
            while len(self._infos) > self.queue_size:
                self._infos.popitem(last=False)

    # -- consumer (inference thread) ---------------------------------------------------------
    def take(self, timeout: float) -> Frame | None:
        """The next frame to process, or None after `timeout` seconds (or once closed)."""
        end = self._clock() + timeout
        with self._cond:
            while True:
                self._expire(self._clock())
                if self._ready is not None or self._closed:
                    frame, self._ready = self._ready, None
                    return frame
                wait = end - self._clock()
                if self._images:   # wake up when the oldest waiting image times out
                    oldest = next(iter(self._images.values()))
                    wait = min(wait, oldest.arrival + self.timeout - self._clock())
                if end - self._clock() <= 0:
                    return None
                self._cond.wait(max(wait, 0.001))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Ready for a new start after close() (lifecycle deactivate -> activate)."""
        self.clear()
        with self._cond:
            self._closed = False

    def clear(self) -> None:
        """Forget waiting messages (the inputs were unsubscribed: they would be stale later)."""
        with self._cond:
            self.counts.dropped += len(self._images) + (self._ready is not None)
            self._images.clear()
            self._infos.clear()
            self._ready = None

    def snapshot(self) -> PairingCounts:
        with self._cond:
            return PairingCounts(**vars(self.counts))

    # -- internals (lock held) ---------------------------------------------------------------
    def _expire(self, now: float) -> None:
        while self._images:
            oldest = next(iter(self._images.values()))
            if now - oldest.arrival < self.timeout:
                break
            self._release_unpaired(self._images.popitem(last=False)[1], "timeout")

    def _release_unpaired(self, frame: Frame, why: str) -> None:
        if self._newest_info is None:
            text = NO_INFO_YET
        else:
            text = (f"no camera_info with the image's stamp {_fmt(stamp_ns(frame.image))} "
                    f"arrived within {self.timeout:.2f} s (newest camera_info: "
                    f"{_fmt(stamp_ns(self._newest_info))}); publishing depth only. The camera "
                    "driver must stamp camera_info like its image, or set "
                    "camera_info_pairing:=newest")
        frame.problems.append(("no_camera_info" if self._newest_info is None
                               else "unpaired_image", text))
        self._deliver(frame)

    def _pair(self, frame: Frame, info) -> None:
        frame.info = info
        if info is None:
            frame.problems.append(("no_camera_info", NO_INFO_YET))
        else:
            if info.header.frame_id != frame.image.header.frame_id:
                self.counts.frame_id_mismatch += 1
                frame.problems.append(("frame_id_mismatch", (
                    f"camera_info frame_id '{info.header.frame_id}' differs from the image's "
                    f"'{frame.image.header.frame_id}': the outputs use the image's; remap the "
                    "camera_info topic of the same camera")))
            gap = abs(stamp_ns(info) - stamp_ns(frame.image)) * 1e-9
            if self.mode == "newest" and gap > NEWEST_STAMP_GAP_S:
                frame.problems.append(("stamp_gap", (
                    f"the newest camera_info is {gap:.1f} s away from the image's stamp; is it "
                    "from the same camera?")))
        # Older images still waiting could only be processed after this newer one: never.
        newest = stamp_ns(frame.image)
        for key in [k for k in self._images if k < newest]:
            del self._images[key]
            self.counts.dropped += 1
        self._deliver(frame)

    def _deliver(self, frame: Frame) -> None:
        if frame.info is None:
            self.counts.unpaired += 1
        if self._ready is not None:
            self.counts.dropped += 1
        self._ready = frame
        self._cond.notify()


def _fmt(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"

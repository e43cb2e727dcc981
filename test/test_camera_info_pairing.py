"""camera_info_pairing.FramePairing without ROS: stamps, queues, time-outs, counts.

Messages are plain objects with a header; time is a fake clock, so nothing here waits."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from lsmdepth_ros.ros.camera_info_pairing import FramePairing


def msg(stamp_s: float, frame="cam", what="image"):
    sec = int(stamp_s)
    stamp = SimpleNamespace(sec=sec, nanosec=round((stamp_s - sec) * 1e9))
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id=frame), what=what)


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def pairing(mode="exact", queue=5, timeout=0.5):
    clock = Clock()
    return FramePairing(mode, queue, timeout, clock=clock), clock


def test_exact_pairs_by_stamp_whichever_arrives_first():
    p, _ = pairing()
    img1, info1 = msg(1.0), msg(1.0, what="info")
    p.put_image(img1)
    assert p.take(0) is None                 # waiting for its camera_info
    p.put_info(msg(0.9, what="info"))        # someone else's
    p.put_info(info1)
    frame = p.take(0)
    assert frame.image is img1 and frame.info is info1 and not frame.problems
    info2 = msg(2.0, what="info")
    p.put_info(info2)                        # camera_info first this time
    p.put_image(msg(2.0))
    assert p.take(0).info is info2
    c = p.snapshot()
    assert (c.received, c.dropped, c.unpaired) == (2, 0, 0)


def test_a_late_camera_info_never_pairs_with_the_next_image():
    """The bug this replaces: image i went out with camera_info i-1."""
    p, _ = pairing()
    p.put_image(msg(1.0))
    p.put_info(msg(1.0, what="info"))
    p.take(0)
    p.put_image(msg(2.0))                    # its info comes 0.3 s later
    assert p.take(0) is None
    late = msg(2.0, what="info")
    p.put_info(late)
    assert p.take(0).info is late


def test_an_image_whose_camera_info_never_comes_leaves_unpaired_after_the_timeout():
    p, clock = pairing(timeout=0.5)
    p.put_info(msg(0.5, what="info"))
    p.put_image(msg(1.0))
    clock.t += 0.4
    assert p.take(0) is None
    clock.t += 0.2
    frame = p.take(0)
    assert frame.info is None and frame.problems[0][0] == "unpaired_image"
    assert "camera_info_pairing:=newest" in frame.problems[0][1]
    assert p.snapshot().unpaired == 1


def test_no_camera_info_at_all_says_so():
    p, clock = pairing(timeout=0.2)
    p.put_image(msg(1.0))
    clock.t += 0.3
    frame = p.take(0)
    assert frame.info is None and frame.problems[0][0] == "no_camera_info"


def test_newest_wins_and_every_image_is_accounted_for():
    p, _ = pairing(queue=3)
    for i in range(1, 6):                    # 5 images, nothing taken yet
        p.put_image(msg(float(i)))
    p.put_info(msg(5.0, what="info"))        # pairs the newest; older waiting ones are stale
    frame = p.take(0)
    assert frame.image.header.stamp.sec == 5 and frame.info is not None
    c = p.snapshot()
    # 2 left the full queue unpaired (1 then replaced in the mailbox by 2), 3 and 4 superseded,
    # 2 replaced by 5 in the mailbox: 5 received = 1 taken + 4 dropped.
    assert c.received == 5 and c.dropped == 4 and c.unpaired == 2
    assert p.take(0) is None


def test_newest_mode_uses_the_latest_camera_info_and_reports_distant_stamps():
    p, _ = pairing(mode="newest")
    p.put_image(msg(1.0))
    first = p.take(0)
    assert first.info is None and first.problems[0][0] == "no_camera_info"
    info = msg(0.0, what="info")
    p.put_info(info)
    p.put_image(msg(50.0))
    frame = p.take(0)
    assert frame.info is info
    assert [k for k, _ in frame.problems] == ["stamp_gap"]


def test_frame_id_mismatch_is_reported_and_counted():
    p, _ = pairing()
    p.put_info(msg(1.0, frame="other_cam", what="info"))
    p.put_image(msg(1.0, frame="cam"))
    frame = p.take(0)
    assert frame.info is not None and frame.problems[0][0] == "frame_id_mismatch"
    assert "other_cam" in frame.problems[0][1] and p.snapshot().frame_id_mismatch == 1


def test_close_wakes_the_consumer_and_bad_modes_are_refused():
    p, _ = pairing()
    p.close()
    assert p.take(10.0) is None              # returns at once
    with pytest.raises(ValueError, match="exact"):
        FramePairing("latest")

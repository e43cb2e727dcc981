"""Two processes for the large-data delivery test (run with `python large_data_peers.py ROLE`).

pub: a reliable publisher on `big/reliable` and a best-effort one on `big/best_effort`, each
     sending COUNT 640x480 rgb8 frames (frame i has every byte equal to i) once it sees the
     expected subscribers. Prints one JSON line: {"sent": COUNT}.
sub: a reliable and a best-effort subscriber on `big/reliable`, a best-effort one on
     `big/best_effort`; prints one JSON line with the frame indices each one received, after
     QUIET_S seconds without a message (or TIMEOUT_S in all).
Before any participant exists the role applies the package's large-data transport, like every
entry point of the package; FASTDDS_BUILTIN_TRANSPORTS=DEFAULT (a user's own setting, which
wins) measures what happens without it.
"""
from __future__ import annotations

import json
import os
import sys
import time

COUNT = int(os.environ.get("PEERS_COUNT", "20"))
RATE_HZ = float(os.environ.get("PEERS_RATE_HZ", "5"))
WIDTH, HEIGHT = 640, 480
QUIET_S = 4.0
TIMEOUT_S = 90.0


def main(role: str) -> int:
    from lsmdepth_ros.ros.transport import use_large_data_transport

    use_large_data_transport()
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    reliable = QoSProfile(depth=COUNT, reliability=ReliabilityPolicy.RELIABLE)
    best_effort = QoSProfile(depth=COUNT, reliability=ReliabilityPolicy.BEST_EFFORT)
    rclpy.init()
    node = rclpy.create_node(f"large_data_{role}")
    try:
        if role == "pub":
            pubs = {"reliable": node.create_publisher(Image, "big/reliable", reliable),
                    "best_effort": node.create_publisher(Image, "big/best_effort", best_effort)}
            wanted = {"reliable": 2, "best_effort": 1}
            end = time.monotonic() + TIMEOUT_S
            while any(p.get_subscription_count() < wanted[k] for k, p in pubs.items()):
                if time.monotonic() > end:
                    print(json.dumps({"error": "subscribers never matched"}), flush=True)
                    return 1
                time.sleep(0.05)
            time.sleep(0.5)   # matched on our side; give the readers a moment to match us
            for i in range(COUNT):
                msg = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=3 * WIDTH)
                msg.header.frame_id = str(i)
                msg.data = bytes([i % 256]) * (3 * WIDTH * HEIGHT)
                for p in pubs.values():
                    p.publish(msg)
                time.sleep(1.0 / RATE_HZ)
            time.sleep(2.0)   # keep the writers alive while reliable repairs finish
            print(json.dumps({"sent": COUNT}), flush=True)
            return 0
        got: dict[str, list[int]] = {"reliable/reliable": [], "reliable/best_effort": [],
                                     "best_effort/best_effort": []}
        last = [time.monotonic()]

        def keep(key):
            def callback(msg):
                ok = len(msg.data) == 3 * WIDTH * HEIGHT and msg.data[-1] == int(
                    msg.header.frame_id) % 256
                got[key].append(int(msg.header.frame_id) if ok else -1)
                last[0] = time.monotonic()
            return callback
        subs = [node.create_subscription(Image, "big/reliable", keep("reliable/reliable"),
                                         reliable),
                node.create_subscription(Image, "big/reliable", keep("reliable/best_effort"),
                                         best_effort),
                node.create_subscription(Image, "big/best_effort",
                                         keep("best_effort/best_effort"), best_effort)]
        print(json.dumps({"ready": True}), flush=True)
        start = time.monotonic()
        while time.monotonic() - start < TIMEOUT_S:
            rclpy.spin_once(node, timeout_sec=0.1)
            if any(got.values()) and time.monotonic() - last[0] > QUIET_S:
                break
        del subs
        print(json.dumps(got), flush=True)
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

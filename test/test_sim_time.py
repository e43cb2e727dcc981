"""use_sim_time with no /clock: the node's housekeeping runs on steady time (its own node
process: no other node may publish /depth or subscribe to /image meanwhile)."""
from __future__ import annotations

import time

from node_harness import FRAME, RELIABLE, Harness, read_log, start_node, tiny_checkpoint
from sensor_msgs.msg import Image


def test_sim_time_without_clock_still_follows_subscribers(tmp_path_factory):
    """use_sim_time with no /clock (a bag not playing yet): ROS time stands still, and the node
    must still notice a subscriber that appears after it started, and process frames."""
    log = tmp_path_factory.mktemp("sim_time") / "depth_node.log"
    proc = start_node(log, f"model_path:={tiny_checkpoint(tmp_path_factory)}", "num_threads:=1",
                      "use_sim_time:=true")
    watcher = Harness()
    try:
        watcher.unsubscribe_outputs()   # nobody listens while the node starts
        assert watcher.wait(lambda: proc.poll() is not None or
                            watcher.node.count_publishers("/depth") > 0, 60), read_log(log)
        assert proc.poll() is None, read_log(log)
        time.sleep(1.0)                 # past the node's start-up check of its subscribers
        assert watcher.pub_image.get_subscription_count() == 0
        watcher.subscribe("depth", Image, RELIABLE)
        assert watcher.wait(lambda: watcher.pub_image.get_subscription_count() > 0, 10), \
            read_log(log)
        header = watcher.send_until(["depth"])
        assert watcher.get("depth", header).header.frame_id == FRAME
    finally:
        watcher.close()
        proc.kill()
        proc.wait()

"""rosbag2 without the `ros2` CLI: one reader and one writer (via `rosbags`), and the bag tools.

    bagfile.py        open / read / write bags, bag paths (a bag, a folder of bags, a glob), BagError
    messages.py       rosbags messages <-> numpy (the twin of ros/messages.py, same conversions)
    topic_streams.py  decoded frames of a topic, images paired with camera_info, stamp matching
    camera_poses.py   camera poses from odometry + TF (/tf_static, /tf) at image stamps
    synthetic_bag.py  a synthetic drive as a robot records it (camera, depth, /odom, /tf_static)
    replay.py         publish a bag live (recorded bytes, recorded timing)   -> lsmdepth bag replay
    record.py         record live topics as raw bytes into mcap / sqlite3    -> lsmdepth bag record
    bag_eval.py       depth vs ground truth (depth topic or LiDAR), offline  -> lsmdepth bag eval
    demo.py           node + replay + record + evaluate on a sample drive    -> lsmdepth demo
    demo_report.py, outputs.py, plots.py, processes.py: what the demo and the evaluator write

Modules import rclpy / torch inside the functions that need them, so evaluation runs on a
machine without ROS and `lsmdepth --help` stays fast.
"""

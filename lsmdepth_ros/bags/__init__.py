"""rosbag2 tools without the `ros2` CLI: replay, record, offline evaluation and the demo.

    replay.py    publish a bag live (recorded bytes, recorded timing)       -> lsmdepth bag replay
    record.py    record live topics as raw bytes into mcap / sqlite3        -> lsmdepth bag record
    evaluate.py  depth vs ground truth (depth topic or LiDAR), offline      -> lsmdepth bag eval
    demo.py      node + replay + record + evaluate on a sample drive        -> lsmdepth demo

Modules import rclpy / torch inside the functions that need them, so evaluation runs on a
machine without ROS and `lsmdepth --help` stays fast.
"""

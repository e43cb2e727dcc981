"""lsmdepth_ros: monocular depth for ROS 2 with the LSMDepth network.

Layers: a ROS-free core (networks, geometry, checkpoints, inference), a thin ROS layer (ros/),
and offline tools (training/, bags, cli).
"""

__version__ = "0.1.0"

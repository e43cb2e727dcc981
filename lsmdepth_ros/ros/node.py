"""depth_node: camera image in; depth, camera_info, point cloud, colour depth and diagnostics out.

Topics (relative, remap them):
  in   image (sensor_msgs/Image rgb8|bgr8|mono8|rgba8|bgra8) or image/compressed,
       camera_info (sensor_msgs/CameraInfo with the image's stamp; the input should be
       rectified). Subscribed only while some output has a subscriber.
  out  depth (32FC1 metres, NaN invalid, the input's header), depth/camera_info (same header,
       K/P scaled to the depth's size), points (organised PointCloud2, x y z [rgb]),
       depth/colored (bgr8), /diagnostics (one status named after the node's full name)
Parameters: see `lsmdepth_ros.ros.params` and config/lsmdepth.yaml.

    python -m lsmdepth_ros.ros.node --ros-args -p model_path:=model.pt -r image:=/camera/image_raw

The managed (lifecycle) variant is `lsmdepth_ros.ros.lifecycle_node`. This module stays light
to import (torch and rclpy load inside main(), where SIGINT/SIGTERM are already handled); the
work is in `pipeline.DepthPipeline`.
"""
from __future__ import annotations

import functools
import sys

from lsmdepth_ros.ros.process import run_node
from lsmdepth_ros.ros.topics import (  # noqa: F401 -- the node's names, imported from here too
    NODE_NAME,
    TOPIC_CAMERA_INFO,
    TOPIC_COLORED,
    TOPIC_DEPTH,
    TOPIC_DEPTH_INFO,
    TOPIC_DIAGNOSTICS,
    TOPIC_IMAGE,
    TOPIC_POINTS,
)
from lsmdepth_ros.ros.transport import use_large_data_transport


@functools.cache
def make_depth_node_class():
    """The plain node class (imports rclpy and the model code, so only on demand)."""
    from rclpy.node import Node

    from lsmdepth_ros.ros.params import declare_parameters, on_set_parameters
    from lsmdepth_ros.ros.pipeline import DepthPipeline, load_estimator

    class DepthNode(Node):
        """Loads the model and starts work at construction; `stop()` before destroy_node()."""

        def __init__(self, **kwargs):
            super().__init__(NODE_NAME, **kwargs)
            self.pipeline = None
            # A half-built node is destroyed here: leaving its handles to the garbage
            # collector after rclpy shuts down can crash the interpreter on exit.
            try:
                params = declare_parameters(self)
                self.estimator = load_estimator(self, params)
                self.pipeline = DepthPipeline(self, params, self.estimator)
                self.add_on_set_parameters_callback(
                    on_set_parameters(lambda: self.pipeline.params, self.pipeline.set_params))
                self.pipeline.start()
            except BaseException:
                self.stop()
                self.destroy_node()
                raise

        def stop(self) -> None:
            if self.pipeline is not None:
                self.pipeline.stop()

    return DepthNode


def __getattr__(name: str):
    if name == "DepthNode":   # `from lsmdepth_ros.ros.node import DepthNode` keeps working
        return make_depth_node_class()
    raise AttributeError(name)


def main(args=None) -> int:
    use_large_data_transport()
    return run_node(make_depth_node_class, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())

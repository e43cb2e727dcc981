"""DepthNode: camera image in; depth, camera_info, point cloud, colour depth and diagnostics out.

Topics (relative, remap them):
  in   image (sensor_msgs/Image rgb8|bgr8|mono8|rgba8|bgra8) or image/compressed,
       camera_info (sensor_msgs/CameraInfo; the input should be rectified)
  out  depth (32FC1 metres, NaN invalid, the input's header), depth/camera_info (same header,
       K/P scaled to the depth's size), points (organised PointCloud2, x y z [rgb]),
       depth/colored (bgr8), /diagnostics
Parameters: see `lsmdepth_ros.ros.params` and config/lsmdepth.yaml.

Threading: the subscription callbacks only keep the newest frame; one inference thread takes it,
so a slow model never builds a backlog (replaced frames are counted as dropped). Shutdown sets a
flag and waits at most one inference for that thread.

    python -m lsmdepth_ros.ros.node --ros-args -p model_path:=model.pt -r image:=/camera/image_raw
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from lsmdepth_ros.inference import (
    DepthEstimator,
    ModelLoadError,
    colorize_depth,
    image_to_rgb,
)
from lsmdepth_ros.ros import messages as rosmsg
from lsmdepth_ros.ros.diagnostics import (
    FrameStats,
    ThrottledWarnings,
    build_diagnostics,
)
from lsmdepth_ros.ros.params import (
    NodeParams,
    declare_parameters,
    on_set_parameters,
    qos_profile,
)

NODE_NAME = "depth_node"
# Topic names the node uses (the launch file and tests check against these).
TOPIC_IMAGE = "image"
TOPIC_CAMERA_INFO = "camera_info"
TOPIC_DEPTH = "depth"
TOPIC_DEPTH_INFO = "depth/camera_info"
TOPIC_POINTS = "points"
TOPIC_COLORED = "depth/colored"
TOPIC_DIAGNOSTICS = "/diagnostics"
SHUTDOWN_WAIT_S = 5.0


@dataclass
class _Frame:
    msg: object          # Image or CompressedImage
    arrival: float       # time.monotonic() when the callback stored it


class _LatestFrame:
    """A one-slot mailbox: put() replaces, take() waits; replacing unread frames means drops."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: _Frame | None = None
        self._closed = False

    def put(self, frame: _Frame) -> bool:
        with self._cond:
            replaced = self._frame is not None
            self._frame = frame
            self._cond.notify()
            return replaced

    def take(self, timeout: float) -> _Frame | None:
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class DepthNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._params: NodeParams = declare_parameters(self)
        opts = self._params.node
        logger = self.get_logger()
        # Raises ModelLoadError with a message for people; main() turns it into exit code 2.
        # Destroy the half-built node first: leaving its handles to the garbage collector
        # after rclpy shuts down can crash the interpreter on exit.
        try:
            self.estimator = DepthEstimator(self._params.estimator, say=logger.warning)
        except BaseException:
            self.destroy_node()
            raise
        logger.info(f"model '{self.estimator.model_name}' from {self.estimator.model_path} on "
                    f"{self.estimator.backend}/{self.estimator.device}, network input "
                    f"{self.estimator.network_size[0]}x{self.estimator.network_size[1]}, scale "
                    f"policy '{self._params.estimator.scale.policy}'")
        self.stats = FrameStats()
        self._warnings = ThrottledWarnings(logger.warning, opts.warning_period)
        self._camera_info: CameraInfo | None = None
        self._slot = _LatestFrame()
        self._clouds = rosmsg.CloudBuilder()   # used by the inference thread only
        self._stop = threading.Event()

        in_qos = qos_profile(opts.input_qos, opts.input_queue_size)
        out_qos = qos_profile(opts.output_qos, opts.output_queue_size)
        inputs = MutuallyExclusiveCallbackGroup()
        if opts.image_transport == "compressed":
            topic = self.resolve_topic_name(TOPIC_IMAGE) + "/compressed"
            self._image_sub = self.create_subscription(CompressedImage, topic, self._on_image,
                                                       in_qos, callback_group=inputs)
        else:
            self._image_sub = self.create_subscription(Image, TOPIC_IMAGE, self._on_image, in_qos,
                                                       callback_group=inputs)
        self._info_sub = self.create_subscription(CameraInfo, TOPIC_CAMERA_INFO,
                                                  self._on_camera_info, in_qos,
                                                  callback_group=inputs)
        self.pub_depth = self.create_publisher(Image, TOPIC_DEPTH, out_qos)
        self.pub_info = self.create_publisher(CameraInfo, TOPIC_DEPTH_INFO, out_qos)
        self.pub_points = (self.create_publisher(PointCloud2, TOPIC_POINTS, out_qos)
                           if opts.publish_points else None)
        self.pub_colored = (self.create_publisher(Image, TOPIC_COLORED, out_qos)
                            if opts.publish_colored else None)
        self.pub_diag = self.create_publisher(DiagnosticArray, TOPIC_DIAGNOSTICS, 10)
        self._diag_timer = self.create_timer(opts.diagnostics_period, self._publish_diagnostics,
                                             callback_group=MutuallyExclusiveCallbackGroup())
        self.add_on_set_parameters_callback(
            on_set_parameters(lambda: self._params, self._set_params))
        self._worker = threading.Thread(target=self._work_loop, name="lsmdepth-inference",
                                        daemon=True)
        self.context.on_shutdown(self._on_context_shutdown)
        self._worker.start()

    # -- parameters --------------------------------------------------------------------------
    def _set_params(self, params: NodeParams) -> None:
        self._params = params
        self.estimator.update_options(params.estimator)
        self._warnings.period = params.node.warning_period

    # -- callbacks: store only ---------------------------------------------------------------
    def _on_image(self, msg) -> None:
        replaced = self._slot.put(_Frame(msg, time.monotonic()))
        self.stats.on_received(replaced)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    # -- inference thread --------------------------------------------------------------------
    def _outputs(self) -> dict[str, bool]:
        pubs = {"depth": self.pub_depth, "info": self.pub_info, "points": self.pub_points,
                "colored": self.pub_colored}
        return {k: p is not None and p.get_subscription_count() > 0 for k, p in pubs.items()}

    def _work_loop(self) -> None:
        while not self._stop.is_set():
            frame = self._slot.take(timeout=0.2)
            if frame is None or self._stop.is_set():
                continue
            try:
                self._handle(frame)
            except Exception as exc:  # noqa: BLE001 -- one bad frame must never kill the node
                if self._stop.is_set() or not self.context.ok():
                    return   # shutting down: publishers are gone
                self._warnings.warn("internal", f"frame failed: {exc!r}\n{traceback.format_exc()}")

    def _handle(self, frame: _Frame) -> None:
        wanted = self._outputs()
        if not any(wanted.values()):
            with self.stats.lock:
                self.stats.skipped_no_subscribers += 1
            return
        try:
            self._process(frame, wanted)
        except ValueError as exc:   # MessageError, or the estimator's own input checks
            with self.stats.lock:
                self.stats.bad_input += 1
            self._warnings.warn(getattr(exc, "kind", "image"), f"skipping a frame: {exc}")

    def _camera_model(self, size: tuple[int, int]) -> tuple[CameraInfo | None, np.ndarray | None]:
        info = self._camera_info
        topic = self._info_sub.topic_name
        if info is None:
            self._warnings.warn("no_camera_info", f"no camera_info received on {topic} yet: "
                                "publishing depth only (no depth/camera_info, no points)")
            return None, None
        try:
            K = rosmsg.camera_matrix(info)
        except rosmsg.MessageError as exc:
            self._warnings.warn(exc.kind, f"{exc} Publishing depth without camera_info/points.")
            return None, None
        if (info.width, info.height) != size:
            self._warnings.warn("size_mismatch", f"camera_info on {topic} is for "
                                f"{info.width}x{info.height} but the image is {size[0]}x{size[1]}; "
                                "they must come from the same (rectified) stream. Publishing depth "
                                "without camera_info/points.")
            return None, None
        return info, K

    def _process(self, frame: _Frame, wanted: dict[str, bool]) -> None:
        msg = frame.msg
        if isinstance(msg, CompressedImage):
            image, encoding = rosmsg.compressed_to_numpy(msg)
        else:
            image, encoding = rosmsg.input_image_to_numpy(msg)
        size = (image.shape[1], image.shape[0])
        info, K = self._camera_model(size)
        result = self.estimator.run(image, encoding, K)
        header = msg.header
        depth = result.depth
        if wanted["depth"]:
            self.pub_depth.publish(rosmsg.depth_to_image(depth, header))
        latency_ms = (time.monotonic() - frame.arrival) * 1e3
        out_size = (depth.shape[1], depth.shape[0])
        opts = self._params.node
        if info is not None:
            if wanted["info"]:
                self.pub_info.publish(rosmsg.camera_info_for(info, result.K, out_size, header))
            if wanted["points"]:
                self.pub_points.publish(self._cloud(depth, result, image, encoding, header, opts))
        if wanted["colored"]:
            colored = colorize_depth(depth, opts.colormap)
            self.pub_colored.publish(rosmsg.numpy_to_image(colored, "bgr8", header))
        self.stats.on_published(result.timings_ms["network"], latency_ms)

    def _cloud(self, depth, result, image, encoding, header, opts) -> PointCloud2:
        s = opts.point_stride
        rgb = None
        if opts.cloud_rgb:
            if depth.shape == result.network_rgb.shape[:2]:
                rgb = result.network_rgb[::s, ::s]
            else:
                rgb = image_to_rgb(np.ascontiguousarray(image[::s, ::s]), encoding)
        return self._clouds.build(depth, result.K, header, rgb, s, opts.max_range or None)

    # -- diagnostics -------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        est = self.estimator
        info = {"backend": est.backend, "device": est.device, "model": est.model_name,
                "network_size": f"{est.network_size[0]}x{est.network_size[1]}",
                "scale_policy": est.options.scale.policy,
                "scale_factor": float(est.scale_policy.factor)}
        problems = self._warnings.active(within=max(2.0 * self._params.node.diagnostics_period,
                                                     self._warnings.period))
        msg = build_diagnostics(f"{self.get_name()}: depth estimation", est.device,
                                self.stats.snapshot(), info, self.get_clock().now().to_msg(),
                                problems)
        self.pub_diag.publish(msg)

    # -- shutdown ----------------------------------------------------------------------------
    def _on_context_shutdown(self) -> None:
        self._stop.set()
        self._slot.close()

    def stop(self, timeout: float = SHUTDOWN_WAIT_S) -> None:
        """Stop the inference thread; waits at most `timeout` (one inference) for it."""
        self._stop.set()
        self._slot.close()
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout)


def main(args=None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = DepthNode()
        except (ModelLoadError, ValueError) as exc:
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
            return 2
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            executor.shutdown(timeout_sec=1.0)
        return 0
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())

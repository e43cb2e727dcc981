"""The work of the depth node, shared by the plain node and the lifecycle node.

`DepthPipeline.start()` creates the publishers, the diagnostics timer and the inference thread;
`stop()` undoes all of it (the lifecycle node's activate / deactivate). The inputs (image and
camera_info) are subscribed only while some output has a subscriber, as depth_image_proc does:
an idle node costs no DDS traffic, and it subscribes again when someone listens.

Threading: the subscription callbacks only hand messages to the pairing (camera_info_pairing),
whose one-frame mailbox the inference thread reads, so a slow model never builds a backlog
(replaced frames are counted as dropped). `stop()` waits at most one inference for that thread.
"""
from __future__ import annotations

import threading
import time
import traceback

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from lsmdepth_ros.inference import DepthEstimator, image_to_rgb
from lsmdepth_ros.ros import messages as rosmsg
from lsmdepth_ros.ros.camera_info_pairing import Frame, FramePairing
from lsmdepth_ros.ros.conversions import stamp_to_ns
from lsmdepth_ros.ros.diagnostics import (
    Expectations,
    FrameStats,
    ThrottledWarnings,
    assess,
    build_diagnostics,
    status_name,
)
from lsmdepth_ros.ros.params import NodeParams, qos_profile
from lsmdepth_ros.ros.process import GUARD
from lsmdepth_ros.ros.topics import (
    TOPIC_CAMERA_INFO,
    TOPIC_COLORED,
    TOPIC_DEPTH,
    TOPIC_DEPTH_INFO,
    TOPIC_DIAGNOSTICS,
    TOPIC_IMAGE,
    TOPIC_POINTS,
)
from lsmdepth_ros.visualisation import colorize_depth

SHUTDOWN_WAIT_S = 5.0
SUBSCRIBER_CHECK_S = 0.5    # how often the output subscriber counts are looked at


def load_estimator(node, params: NodeParams) -> DepthEstimator:
    """The model, loaded so that a signal can abandon the load (see process.SignalGuard)."""
    logger = node.get_logger()
    with GUARD.interruptible():
        est = DepthEstimator(params.estimator, say=logger.warning)
    logger.info(f"model '{est.model_name}' from {est.model_path} on {est.backend}/{est.device}, "
                f"network input {est.network_size[0]}x{est.network_size[1]}, scale policy "
                f"'{params.estimator.scale.policy}'")
    return est


class DepthPipeline:
    def __init__(self, node, params: NodeParams, estimator: DepthEstimator):
        self.node, self.params, self.estimator = node, params, estimator
        opts = params.node
        self.stats = FrameStats()
        self.warnings = ThrottledWarnings(node.get_logger().warning, opts.warning_period)
        self.pairing = FramePairing(opts.camera_info_pairing, opts.camera_info_queue_size,
                                    opts.camera_info_timeout)
        self._clouds = rosmsg.CloudBuilder()   # used by the inference thread only
        self._stop = threading.Event()
        self._inputs_group = MutuallyExclusiveCallbackGroup()
        self._subs: list = []
        self._pubs: dict = {}
        self._timers: list = []
        self._worker: threading.Thread | None = None
        self._pub_diag = None
        self._image_topic = node.resolve_topic_name(TOPIC_IMAGE)
        if opts.image_transport == "compressed":
            self._image_topic += "/compressed"

    # -- life ----------------------------------------------------------------------------------
    def start(self) -> None:
        node, opts = self.node, self.params.node
        out_qos = qos_profile(opts.output_qos, opts.output_queue_size)
        self._pubs = {"depth": node.create_publisher(Image, TOPIC_DEPTH, out_qos),
                      "info": node.create_publisher(CameraInfo, TOPIC_DEPTH_INFO, out_qos)}
        if opts.publish_points:
            self._pubs["points"] = node.create_publisher(PointCloud2, TOPIC_POINTS, out_qos)
        if opts.publish_colored:
            self._pubs["colored"] = node.create_publisher(Image, TOPIC_COLORED, out_qos)
        self._pub_diag = node.create_publisher(DiagnosticArray, TOPIC_DIAGNOSTICS, 10)
        self._timers = [
            node.create_timer(opts.diagnostics_period, self._publish_diagnostics,
                              callback_group=MutuallyExclusiveCallbackGroup()),
            # Same group as the input callbacks: never destroys a subscription mid-callback.
            # Steady time, not the node's clock: with use_sim_time and no /clock yet (a bag
            # not playing, a paused simulator) ROS time stands still, and a timer on it never
            # fired, so a node that started before its first subscriber never subscribed.
            node.create_timer(SUBSCRIBER_CHECK_S, self._follow_subscribers,
                              callback_group=self._inputs_group,
                              clock=Clock(clock_type=ClockType.STEADY_TIME))]
        self._stop.clear()
        self.pairing.reopen()
        self._worker = threading.Thread(target=self._work_loop, name="lsmdepth-inference",
                                        daemon=True)
        self._worker.start()
        self._follow_subscribers()

    def stop(self, timeout: float = SHUTDOWN_WAIT_S) -> None:
        """Stop the inference thread (waits at most `timeout`), drop subscriptions, publishers
        and timers. Safe to call twice."""
        self._stop.set()
        self.pairing.close()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(timeout)
        self._worker = None
        for timer in self._timers:
            self.node.destroy_timer(timer)
        self._timers = []
        self._unsubscribe()
        for pub in [*self._pubs.values(), self._pub_diag]:
            if pub is not None:
                self.node.destroy_publisher(pub)
        self._pubs, self._pub_diag = {}, None
        self.pairing.clear()

    def set_params(self, params: NodeParams) -> None:
        self.params = params
        self.estimator.update_options(params.estimator)
        self.warnings.period = params.node.warning_period
        self.pairing.timeout = params.node.camera_info_timeout

    # -- inputs only while someone listens ----------------------------------------------------
    def _wanted(self) -> dict[str, bool]:
        return {k: p.get_subscription_count() > 0 for k, p in self._pubs.items()}

    def _follow_subscribers(self) -> None:
        listening = any(self._wanted().values())
        if listening and not self._subs:
            self._subscribe()
        elif not listening and self._subs:
            self._unsubscribe()
            self.pairing.clear()

    def _subscribe(self) -> None:
        node, opts = self.node, self.params.node
        qos = qos_profile(opts.input_qos, opts.input_queue_size)
        kind = CompressedImage if opts.image_transport == "compressed" else Image
        self._subs = [
            node.create_subscription(kind, self._image_topic, self._on_image, qos,
                                     callback_group=self._inputs_group),
            node.create_subscription(CameraInfo, TOPIC_CAMERA_INFO, self.pairing.put_info, qos,
                                     callback_group=self._inputs_group)]

    def _unsubscribe(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []

    @property
    def inputs_subscribed(self) -> bool:
        return bool(self._subs)

    def _on_image(self, msg) -> None:
        stamp = msg.header.stamp
        if stamp.sec == 0 and stamp.nanosec == 0:
            delay = None
        else:
            now_ns = self.node.get_clock().now().nanoseconds
            delay = (now_ns - stamp_to_ns(stamp)) * 1e-9
        self.stats.on_received(delay)
        self.pairing.put_image(msg)

    # -- inference thread ----------------------------------------------------------------------
    def _work_loop(self) -> None:
        pairing = self.pairing
        while not self._stop.is_set():
            frame = pairing.take(timeout=0.2)
            if frame is None or self._stop.is_set():
                continue
            try:
                self._handle(frame)
            except Exception as exc:  # noqa: BLE001 -- one bad frame must never kill the node
                if self._stop.is_set() or not self.node.context.ok():
                    return   # shutting down: publishers are gone
                self.stats.count("failed")
                self.warnings.warn("internal", f"frame failed: {exc!r}\n{traceback.format_exc()}")

    def _handle(self, frame: Frame) -> None:
        for kind, text in frame.problems:
            self.warnings.warn(kind, text)
        wanted = self._wanted()
        if not any(wanted.values()):
            self.stats.count("skipped_no_subscribers")
            return
        try:
            self._process(frame, wanted)
        except ValueError as exc:   # MessageError, or the estimator's own input checks
            self.stats.count("bad_input")
            self.warnings.warn(getattr(exc, "kind", "image"), f"skipping a frame: {exc}")

    def _camera_model(self, info, size: tuple[int, int]):
        if info is None:
            return None, None
        try:
            K = rosmsg.image_camera_matrix(info, self.params.node.intrinsics)
        except rosmsg.MessageError as exc:
            self.warnings.warn(exc.kind, f"{exc} Publishing depth without camera_info/points.")
            return None, None
        if (info.width, info.height) != size:
            topic = self.node.resolve_topic_name(TOPIC_CAMERA_INFO)
            self.warnings.warn("size_mismatch", f"camera_info on {topic} is for "
                               f"{info.width}x{info.height} but the image is {size[0]}x{size[1]}"
                               "; they must come from the same (rectified) stream. Publishing "
                               "depth without camera_info/points.")
            return None, None
        return info, K

    def _process(self, frame: Frame, wanted: dict[str, bool]) -> None:
        msg = frame.image
        if isinstance(msg, CompressedImage):
            image, encoding = rosmsg.compressed_to_numpy(msg)
        else:
            image, encoding = rosmsg.input_image_to_numpy(msg)
        size = (image.shape[1], image.shape[0])
        info, K = self._camera_model(frame.info, size)
        result = self.estimator.run(image, encoding, K)
        header = msg.header
        depth = result.depth
        if wanted["depth"]:
            self._pubs["depth"].publish(rosmsg.depth_to_image(depth, header))
        latency_ms = (time.monotonic() - frame.arrival) * 1e3
        out_size = (depth.shape[1], depth.shape[0])
        opts = self.params.node
        if info is not None:
            if wanted["info"]:
                self._pubs["info"].publish(rosmsg.camera_info_for(info, out_size, header))
            if wanted.get("points"):
                self._pubs["points"].publish(self._cloud(depth, result, image, encoding, header,
                                                         opts))
        if wanted.get("colored"):
            colored = colorize_depth(depth, opts.colormap)
            self._pubs["colored"].publish(rosmsg.numpy_to_image(colored, "bgr8", header))
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
        est, opts = self.estimator, self.params.node
        snap = self.stats.snapshot(self.pairing.snapshot())
        problems = self.warnings.active(within=max(2.0 * opts.diagnostics_period,
                                                   self.warnings.period))
        expect = Expectations(**{k: getattr(opts, k) for k in Expectations.__dataclass_fields__})
        level, message = assess(snap, expect, problems, self.inputs_subscribed)
        values = {"backend": est.backend, "device": est.device, "model": est.model_name,
                  "network_size": f"{est.network_size[0]}x{est.network_size[1]}",
                  "scale_policy": est.options.scale.policy,
                  "scale_factor": float(est.scale_policy.factor),
                  "inputs_subscribed": self.inputs_subscribed,
                  "camera_info_pairing": opts.camera_info_pairing}
        values.update(snap)
        values.update({f"expected_{k}": v for k, v in vars(expect).items()})
        msg = build_diagnostics(status_name(self.node.get_fully_qualified_name()),
                                self._image_topic, level, message, values,
                                self.node.get_clock().now().to_msg())
        if self._pub_diag is not None:
            self._pub_diag.publish(msg)

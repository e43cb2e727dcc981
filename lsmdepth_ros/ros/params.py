"""The node's ROS parameters, derived from the options dataclasses (one description per setting).

Top-level names come from `EstimatorOptions` (model_path, backend, ..., scale.policy, ...) and
`NodeOptions` below (topics, QoS, cloud and colour output). Options marked `live` can be changed
with `ros2 param set` while the node runs; the others are read-only after start-up.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.parameter import Parameter
from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
    qos_profile_system_default,
)

from lsmdepth_ros.inference import COLORMAPS, EstimatorOptions
from lsmdepth_ros.options import (
    OptionInfo,
    check_choices,
    get_dotted,
    iter_options,
    option,
    replace_dotted,
)

QOS_CHOICES = ("sensor_data", "reliable", "best_effort", "system_default")
TRANSPORTS = ("raw", "compressed")


@dataclass(frozen=True)
class NodeOptions:
    image_transport: str = option("raw", "'raw': subscribe to `image`; 'compressed': to "
                                  "`image/compressed` (jpeg/png, decoded with OpenCV)",
                                  choices=TRANSPORTS)
    input_qos: str = option("sensor_data", "QoS of the image and camera_info subscriptions "
                            "(sensor_data = best effort, matches reliable and best-effort "
                            "publishers)", choices=QOS_CHOICES)
    output_qos: str = option("reliable", "QoS of the depth, camera_info, points and colour "
                             "publishers", choices=QOS_CHOICES)
    input_queue_size: int = option(2, "Subscription history depth; only the newest frame is "
                                   "processed, older ones are dropped and counted")
    output_queue_size: int = option(2, "Publisher history depth")
    publish_points: bool = option(True, "Publish the organised point cloud on `points`")
    publish_colored: bool = option(True, "Publish a bgr8 colour-mapped depth on `depth/colored`")
    cloud_rgb: bool = option(True, "Add the camera colour to the cloud (`rgb` field, point_step "
                             "32) instead of x, y, z only (point_step 16)", live=True)
    point_stride: int = option(1, "Use every n-th pixel in both directions for the cloud",
                               live=True)
    max_range: float = option(0.0, "Cloud points farther than this many metres are NaN "
                              "(0: no limit)", live=True)
    colormap: str = option("magma", "Colour map of `depth/colored`", live=True,
                           choices=tuple(COLORMAPS))
    diagnostics_period: float = option(1.0, "Seconds between /diagnostics messages")
    warning_period: float = option(5.0, "Seconds between repeated warnings of one kind",
                                   live=True)

    def __post_init__(self) -> None:
        check_choices(self)
        if self.point_stride < 1:
            raise ValueError(f"point_stride must be >= 1, got {self.point_stride}")
        if self.max_range < 0 or not math.isfinite(self.max_range):
            raise ValueError(f"max_range must be >= 0 metres (0 disables), got {self.max_range}")
        if self.input_queue_size < 1 or self.output_queue_size < 1:
            raise ValueError("queue sizes must be >= 1")
        if self.diagnostics_period <= 0 or self.warning_period < 0:
            raise ValueError("diagnostics_period must be > 0 and warning_period >= 0 seconds")


@dataclass(frozen=True)
class NodeParams:
    estimator: EstimatorOptions = dataclasses.field(default_factory=EstimatorOptions)
    node: NodeOptions = dataclasses.field(default_factory=NodeOptions)


def parameter_infos() -> dict[str, tuple[str, OptionInfo]]:
    """ROS parameter name -> (group 'estimator' | 'node', option info)."""
    out: dict[str, tuple[str, OptionInfo]] = {}
    for group, cls in (("estimator", EstimatorOptions), ("node", NodeOptions)):
        for info in iter_options(cls):
            if info.name in out:
                raise RuntimeError(f"parameter name clash: {info.name}")
            out[info.name] = (group, info)
    return out


def _descriptor(info: OptionInfo) -> ParameterDescriptor:
    text = info.help
    if info.choices:
        text += f" [one of: {', '.join(map(str, info.choices))}]"
    text += " (live)" if info.live else " (read at start-up)"
    return ParameterDescriptor(
        description=text, read_only=not info.live, dynamic_typing=True,
        additional_constraints=("one of: " + ", ".join(map(str, info.choices))) if info.choices
        else "")


def coerce(info: OptionInfo, value: Any) -> Any:
    """A parameter value converted to the option's type; ValueError with a clear reason."""
    t = info.type
    if t is bool:
        if isinstance(value, bool):
            return value
    elif t is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif t is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif t is str and isinstance(value, str):
        return value
    raise ValueError(f"parameter '{info.name}' must be a {t.__name__}, got {value!r}")


def declare_parameters(node) -> NodeParams:
    """Declare every parameter with its description; return the start-up options."""
    params = NodeParams()
    for name, (group, info) in parameter_infos().items():
        value = node.declare_parameter(name, info.default, _descriptor(info)).value
        params = replace_dotted(params, f"{group}.{name}", coerce(info, value))
    return params


def apply_changes(params: NodeParams, changes: list[Parameter]) -> NodeParams:
    """New options with `changes` applied; ValueError naming the bad parameter otherwise."""
    infos = parameter_infos()
    updated = params
    for p in changes:
        if p.name not in infos:
            continue   # not ours (use_sim_time, qos overrides, ...)
        group, info = infos[p.name]
        if not info.live:
            raise ValueError(f"parameter '{p.name}' is read at start-up; restart the node to "
                             "change it")
        updated = replace_dotted(updated, f"{group}.{p.name}", coerce(info, p.value))
    return updated   # dataclass __post_init__ checks already ran


def on_set_parameters(get_params, set_params):
    """An add_on_set_parameters_callback callable that validates and applies live options."""
    def callback(changes: list[Parameter]) -> SetParametersResult:
        try:
            new = apply_changes(get_params(), changes)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        set_params(new)
        return SetParametersResult(successful=True)
    return callback


def qos_profile(kind: str, depth: int) -> QoSProfile:
    if kind == "sensor_data":
        profile = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in
                                ("history", "reliability", "durability")}, depth=depth)
    elif kind == "system_default":
        return qos_profile_system_default
    else:
        profile = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                             reliability=ReliabilityPolicy.RELIABLE if kind == "reliable"
                             else ReliabilityPolicy.BEST_EFFORT)
    return profile


def parameter_value(params: NodeParams, name: str) -> Any:
    group, _ = parameter_infos()[name]
    return get_dotted(params, f"{group}.{name}")

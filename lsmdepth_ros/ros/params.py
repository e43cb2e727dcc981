"""The node's ROS parameters, derived from the options dataclasses (one description per setting).

Top-level names come from `EstimatorOptions` (model_path, backend, ..., scale.policy, ...) and
`NodeOptions` below (topics, QoS, pairing, cloud and colour output, diagnostics). Options marked
`live` can be changed with `ros2 param set` while the node runs; the others are read-only after
start-up. Every parameter is statically typed with its range in the descriptor (`ros2 param
describe`); an integer given for a floating-point parameter is converted, never retyped.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
)
from rclpy.parameter import Parameter
from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
    qos_profile_system_default,
)

from lsmdepth_ros.inference import EstimatorOptions
from lsmdepth_ros.options import (
    OptionInfo,
    check_choices,
    coerce,
    get_dotted,
    iter_options,
    option,
    replace_dotted,
)
from lsmdepth_ros.visualisation import COLORMAPS

QOS_CHOICES = ("sensor_data", "reliable", "best_effort", "system_default")
TRANSPORTS = ("raw", "compressed")
PAIRINGS = ("exact", "newest")
INTRINSICS = ("projection", "camera_matrix")
RATE_BOUNDS = (0.0, 10000.0)


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
                                   "processed, older ones are dropped and counted",
                                   bounds=(1, 1000))
    output_queue_size: int = option(2, "Publisher history depth", bounds=(1, 1000))
    camera_info_pairing: str = option("exact", "'exact': each image uses the camera_info with "
                                      "the same stamp, waiting for it up to "
                                      "camera_info_timeout; 'newest': the latest camera_info, "
                                      "whatever its stamp", choices=PAIRINGS)
    camera_info_queue_size: int = option(5, "Images and camera_infos kept while they wait for "
                                         "their partner ('exact' pairing)", bounds=(1, 100))
    camera_info_timeout: float = option(0.5, "Seconds an image waits for its camera_info; after "
                                        "that it gives depth only (no depth/camera_info, no "
                                        "points) and counts as unpaired", live=True,
                                        bounds=(0.0, 10.0))
    intrinsics: str = option("projection", "Which camera_info matrix describes the input "
                             "image: 'projection' (P, the rectified image's camera, as "
                             "depth_image_proc and image_geometry read it; K when P is unset) "
                             "or 'camera_matrix' (K, for an unrectified image_raw)",
                             choices=INTRINSICS)
    publish_points: bool = option(True, "Publish the organised point cloud on `points`")
    publish_colored: bool = option(True, "Publish a bgr8 colour-mapped depth on `depth/colored`")
    cloud_rgb: bool = option(True, "Add the camera colour to the cloud (`rgb` field, point_step "
                             "32) instead of x, y, z only (point_step 16)", live=True)
    point_stride: int = option(1, "Use every n-th pixel in both directions for the cloud",
                               live=True, bounds=(1, 64))
    max_range: float = option(0.0, "Cloud points farther than this many metres are NaN "
                              "(0: no limit)", live=True, bounds=(0.0, 10000.0))
    colormap: str = option("magma", "Colour map of `depth/colored`", live=True,
                           choices=tuple(COLORMAPS))
    diagnostics_period: float = option(1.0, "Seconds between /diagnostics messages",
                                       bounds=(0.01, 3600.0))
    warning_period: float = option(5.0, "Seconds between repeated warnings of one kind",
                                   live=True, bounds=(0.0, 3600.0))
    min_input_rate: float = option(0.0, "Lowest expected image rate in Hz; diagnostics warn "
                                   "below it (0: no check)", live=True, bounds=RATE_BOUNDS)
    max_input_rate: float = option(0.0, "Highest expected image rate in Hz (0: no check)",
                                   live=True, bounds=RATE_BOUNDS)
    min_output_rate: float = option(0.0, "Lowest expected depth rate in Hz; diagnostics warn "
                                    "below it (0: no check)", live=True, bounds=RATE_BOUNDS)
    max_output_rate: float = option(0.0, "Highest expected depth rate in Hz (0: no check)",
                                    live=True, bounds=RATE_BOUNDS)
    max_stamp_delay: float = option(5.0, "Image stamps older than this many seconds (by the "
                                    "node's clock) make the timestamp status an error",
                                    live=True, bounds=(0.0, 1e6))
    max_stamp_lead: float = option(1.0, "Image stamps more than this many seconds in the "
                                   "future make the timestamp status an error", live=True,
                                   bounds=(0.0, 1e6))

    def __post_init__(self) -> None:
        check_choices(self)
        for info in iter_options(self):   # the ranges hold for values set in code too
            coerce(info, getattr(self, info.name))
        for low, high in (("min_input_rate", "max_input_rate"),
                          ("min_output_rate", "max_output_rate")):
            if 0 < getattr(self, high) < getattr(self, low):
                raise ValueError(f"{high} ({getattr(self, high)}) must be >= {low} "
                                 f"({getattr(self, low)}) or 0 (no check)")


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


_PARAMETER_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                    float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def descriptor(info: OptionInfo, startup_writable: bool = False) -> ParameterDescriptor:
    """A statically typed descriptor: the option's type and range; read-only unless live (or
    `startup_writable`: the lifecycle node accepts start-up options while unconfigured)."""
    text = info.help
    if info.choices:
        text += f" [one of: {', '.join(map(str, info.choices))}]"
    text += " (live)" if info.live else " (read at start-up)"
    d = ParameterDescriptor(
        description=text, type=_PARAMETER_TYPES[info.type],
        read_only=not (info.live or startup_writable),
        dynamic_typing=False,
        additional_constraints=("one of: " + ", ".join(map(str, info.choices))) if info.choices
        else "")
    if info.bounds is not None and info.type is int:
        d.integer_range = [IntegerRange(from_value=info.bounds[0], to_value=info.bounds[1],
                                        step=1)]
    elif info.bounds is not None and info.type is float:
        d.floating_point_range = [FloatingPointRange(from_value=float(info.bounds[0]),
                                                     to_value=float(info.bounds[1]), step=0.0)]
    return d


def as_double(param: Parameter) -> Parameter:
    """An integer given for one of our double parameters (`-p clip_max_depth:=50`, `factor: 5`
    in YAML, `ros2 param set ... 50`) as a double: a parameter's type never changes."""
    entry = parameter_infos().get(param.name)
    if entry and entry[1].type is float and param.type_ == Parameter.Type.INTEGER:
        return Parameter(param.name, Parameter.Type.DOUBLE, float(param.value))
    return param


def declare_parameters(node, startup_writable: bool = False) -> NodeParams:
    """Declare every parameter (typed, ranged, described); return the start-up options.

    ValueError naming the parameter when an override has the wrong type or is out of range."""
    # Overrides (command line, params file) are checked against the descriptor when declared,
    # before any set-parameters callback runs, so integers for doubles are converted here;
    # rclpy has no public way to edit them.
    overrides = node._parameter_overrides
    for name in list(overrides):
        overrides[name] = as_double(overrides[name])
    node.add_pre_set_parameters_callback(lambda params: [as_double(p) for p in params])
    params = NodeParams()
    for name, (group, info) in parameter_infos().items():
        try:
            value = node.declare_parameter(name, info.default,
                                           descriptor(info, startup_writable)).value
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            raise ValueError(f"parameter '{name}': {exc}") from None
        params = replace_dotted(params, f"{group}.{name}", coerce(info, value))
    return params


def apply_changes(params: NodeParams, changes: list[Parameter],
                  allow_startup: bool = False) -> NodeParams:
    """New options with `changes` applied; ValueError naming the bad parameter otherwise.
    Start-up options are refused unless `allow_startup`."""
    infos = parameter_infos()
    updated = params
    for p in changes:
        if p.name not in infos:
            continue   # not ours (use_sim_time, qos overrides, ...)
        group, info = infos[p.name]
        if not (info.live or allow_startup):
            raise ValueError(f"parameter '{p.name}' is read at start-up; restart the node "
                             "(lifecycle node: clean it up) to change it")
        updated = replace_dotted(updated, f"{group}.{p.name}", coerce(info, p.value))
    return updated   # dataclass __post_init__ checks already ran


def on_set_parameters(get_params, set_params, allow_startup=lambda: False):
    """An add_on_set_parameters_callback callable that validates and applies live options
    (and start-up ones while `allow_startup()`)."""
    def callback(changes: list[Parameter]) -> SetParametersResult:
        try:
            new = apply_changes(get_params(), changes, allow_startup())
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

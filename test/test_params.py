"""Typed option values (options.coerce) and the node's parameter descriptors (no ROS graph)."""
from __future__ import annotations

import pytest
from rcl_interfaces.msg import ParameterType
from rclpy.parameter import Parameter

from lsmdepth_ros.options import coerce, iter_options
from lsmdepth_ros.ros.params import (
    NodeOptions,
    NodeParams,
    apply_changes,
    as_double,
    descriptor,
    parameter_infos,
)


def info(name):
    return parameter_infos()[name][1]


def test_coerce_converts_integers_for_floats_and_names_what_was_wrong():
    assert coerce(info("clip_max_depth"), 50) == 50.0
    assert type(coerce(info("clip_max_depth"), 50)) is float
    assert coerce(info("point_stride"), 3) == 3
    with pytest.raises(ValueError, match="'point_stride' must be an integer, got 2.5"):
        coerce(info("point_stride"), 2.5)
    with pytest.raises(ValueError, match="'cloud_rgb' must be true or false"):
        coerce(info("cloud_rgb"), 1)
    with pytest.raises(ValueError, match="'max_range' must be a number"):
        coerce(info("max_range"), True)
    with pytest.raises(ValueError, match="'point_stride' must be between 1 and 64, got 0"):
        coerce(info("point_stride"), 0)


def test_text_values_are_read_as_the_option_type_only_when_asked():
    # ROS parameters arrive typed: text for a number stays an error there ...
    with pytest.raises(ValueError, match="'point_stride' must be an integer, got '3'"):
        coerce(info("point_stride"), "3")
    # ... while config files and command lines (`from_text`) are read as the option's type,
    # with the same range check afterwards.
    assert coerce(info("point_stride"), "3", from_text=True) == 3
    assert coerce(info("point_stride"), 4.0, from_text=True) == 4
    assert coerce(info("clip_max_depth"), "5e1", from_text=True) == 50.0
    assert coerce(info("cloud_rgb"), "off", from_text=True) is False
    with pytest.raises(ValueError, match="'point_stride' must be an integer, got '2.5'"):
        coerce(info("point_stride"), "2.5", from_text=True)
    with pytest.raises(ValueError, match="'point_stride' must be between 1 and 64, got 65"):
        coerce(info("point_stride"), "65", from_text=True)


def test_descriptors_are_static_with_the_option_ranges():
    for name, (_, opt) in parameter_infos().items():
        d = descriptor(opt)
        assert not d.dynamic_typing and d.read_only == (not opt.live), name
        expected = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                    float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
        assert d.type == expected[opt.type], name
        if opt.bounds is None:
            assert not d.integer_range and not d.floating_point_range, name
            continue
        ranges = d.integer_range if opt.type is int else d.floating_point_range
        assert [(r.from_value, r.to_value) for r in ranges] == [opt.bounds], name
        assert opt.bounds[0] <= opt.default <= opt.bounds[1], name
    bounded = {n for n, (_, o) in parameter_infos().items() if o.bounds}
    assert {"point_stride", "max_range", "clip_max_depth", "scale.factor", "num_threads",
            "camera_info_timeout", "min_output_rate"} <= bounded
    assert descriptor(info("model_path"), startup_writable=True).read_only is False


def test_integer_parameters_for_doubles_become_doubles():
    p = as_double(Parameter("clip_max_depth", Parameter.Type.INTEGER, 50))
    assert p.type_ == Parameter.Type.DOUBLE and p.value == 50.0
    same = Parameter("point_stride", Parameter.Type.INTEGER, 2)
    assert as_double(same) is same


def test_changes_are_checked_and_start_up_ones_refused_unless_allowed():
    params = NodeParams()
    new = apply_changes(params, [Parameter("max_range", value=12.5)])
    assert new.node.max_range == 12.5
    with pytest.raises(ValueError, match="read at start-up"):
        apply_changes(params, [Parameter("model_path", value="/x.pt")])
    assert apply_changes(params, [Parameter("model_path", value="/x.pt")],
                         allow_startup=True).estimator.model_path == "/x.pt"
    with pytest.raises(ValueError, match="max_output_rate"):
        NodeOptions(min_output_rate=10.0, max_output_rate=5.0)
    assert [o.name for o in iter_options(NodeOptions) if o.name.startswith("camera_info")] == [
        "camera_info_pairing", "camera_info_queue_size", "camera_info_timeout"]

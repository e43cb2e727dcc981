"""launch/lsmdepth.launch.py, config/lsmdepth.yaml, config/lsmdepth.rviz, the Fast DDS profile.

`launch` / `launch_ros` are not installed here, so the launch file is checked by reading its
syntax tree against the node's real topic and parameter names; it is also imported and run for
real when launch_ros exists (on a robot).
"""
from __future__ import annotations

import ast
import configparser
import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from lsmdepth_ros import resources
from lsmdepth_ros.inference import EstimatorOptions
from lsmdepth_ros.options import iter_options
from lsmdepth_ros.ros import node as depth_node
from lsmdepth_ros.ros.params import NodeOptions, parameter_infos
from lsmdepth_ros.scale import ScaleOptions

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "lsmdepth.launch.py"
PARAMS = ROOT / "config" / "lsmdepth.yaml"
RVIZ = ROOT / "config" / "lsmdepth.rviz"
PROFILE = ROOT / "config" / "fastdds_profile.xml"


@pytest.fixture(scope="module")
def tree():
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]


def _kw(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _module_constants(tree) -> dict:
    out = {}
    for n in tree.body:
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            try:
                out[n.targets[0].id] = ast.literal_eval(n.value)
            except ValueError:
                pass
    return out


def _value(node, consts):
    """A literal or a module-level constant's value."""
    if isinstance(node, ast.Name):
        return consts[node.id]
    return ast.literal_eval(node)


def test_launch_file_defines_generate_launch_description(tree):
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names


def test_launch_arguments(tree):
    declared = {ast.literal_eval(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    assert {"image", "camera_info", "namespace", "use_sim_time", "rviz", "params_file",
            "model_path", "fastdds_profile"} <= declared
    used = {ast.literal_eval(c.args[0]) for c in _calls(tree, "LaunchConfiguration")
            if isinstance(c.args[0], ast.Constant)}
    # cfg("x") inside the OpaqueFunction also reads launch configurations.
    used |= {ast.literal_eval(c.args[0]) for c in _calls(tree, "cfg")}
    assert used <= declared, f"launch configurations never declared: {used - declared}"


def test_launch_runs_the_installed_node_with_its_topics_and_parameters(tree):
    consts = _module_constants(tree)
    # One node call (plain or lifecycle class) for this package ...
    depth = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and _kw(n, "package") is not None and _value(_kw(n, "package"), consts) == "lsmdepth_ros"]
    assert len(depth) == 1
    call = depth[0]
    # ... whose two executables are the package's console scripts.
    setup = (ROOT / "setup.py").read_text()
    assert (consts["EXECUTABLE"], consts["LIFECYCLE_EXECUTABLE"]) == ("depth_node",
                                                                      "depth_lifecycle_node")
    assert "depth_node = lsmdepth_ros.ros.node:main" in setup
    assert "depth_lifecycle_node = lsmdepth_ros.ros." in setup
    # Remapped topics are the node's real input names.
    remaps = _kw(call, "remappings")
    sources = {_value(el.elts[0], consts) for el in remaps.elts}
    assert sources == {depth_node.TOPIC_IMAGE, depth_node.TOPIC_CAMERA_INFO}
    # Parameters set by the launch file are declared by the node.
    declared = set(parameter_infos()) | {"use_sim_time"}
    keys = set()
    for d in ast.walk(tree):
        if isinstance(d, ast.Dict):
            keys |= {k.value for k in d.keys if isinstance(k, ast.Constant)}
    for sub in ast.walk(tree):   # overrides["model_path"] = ...
        if isinstance(sub, ast.Subscript) and isinstance(sub.ctx, ast.Store):
            keys.add(ast.literal_eval(sub.slice))
    assert keys and keys <= declared, keys - declared
    assert "model_path" in keys and "use_sim_time" in keys


def test_launch_uses_shipped_config_files_and_the_fastdds_profile(tree):
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    for name in ("lsmdepth.yaml", "lsmdepth.rviz", "fastdds_profile.xml"):
        assert name in strings and (ROOT / "config" / name).is_file()
    consts = _module_constants(tree)
    assert tuple(consts["PROFILE_ENV_VARS"]) == resources.FASTDDS_PROFILE_ENV_VARS
    env_calls = _calls(tree, "SetEnvironmentVariable")
    assert env_calls, "the launch file must export the Fast DDS profile"
    setup = (ROOT / "setup.py").read_text()
    assert 'glob("launch/*.py")' in setup and 'glob("config/*")' in setup
    rviz = [n for n in _calls(tree, "Node") if _value(_kw(n, "package"), consts) == "rviz2"]
    assert len(rviz) == 1 and _kw(rviz[0], "condition") is not None


def test_launch_file_for_real_when_launch_ros_exists():
    pytest.importorskip("launch_ros", reason="launch_ros is not installed on this machine")
    from launch import LaunchDescription

    spec = importlib.util.spec_from_file_location("lsmdepth_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    assert {a.name for a in description.get_launch_arguments()} >= {"image", "camera_info"}


# ----------------------------------------------------------------------------------------------

def _flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def test_params_yaml_sets_exactly_the_declared_parameters_with_valid_values():
    data = yaml.safe_load(PARAMS.read_text())
    assert list(data) == ["/**"] and list(data["/**"]) == ["ros__parameters"]
    values = dict(_flatten(data["/**"]["ros__parameters"]))
    infos = parameter_infos()
    assert set(values) == set(infos)
    for name, value in values.items():
        _, info = infos[name]
        assert type(value) is info.type, (name, value, info.type)
        if info.choices:
            assert value in info.choices, name
    est = {k: v for k, v in values.items() if k in {i.name for i in iter_options(EstimatorOptions)}}
    scale = ScaleOptions(**{k.split(".", 1)[1]: v for k, v in est.items() if k.startswith("scale.")})
    EstimatorOptions(**{k: v for k, v in est.items() if not k.startswith("scale.")}, scale=scale)
    NodeOptions(**{k: v for k, v in values.items() if k in NodeOptions.__dataclass_fields__})


def test_every_parameter_has_a_description():
    for name, (_, info) in parameter_infos().items():
        assert len(info.help) > 15, name
    live = {n for n, (_, i) in parameter_infos().items() if i.live}
    assert {"clip_min_depth", "clip_max_depth", "point_stride", "max_range", "colormap",
            "scale.factor"} <= live
    assert "model_path" not in live and "backend" not in live


def test_rviz_config_shows_colored_depth_and_points():
    data = yaml.safe_load(RVIZ.read_text())
    manager = data["Visualization Manager"]
    displays = {d["Class"]: d for d in manager["Displays"]}
    image = displays["rviz_default_plugins/Image"]
    cloud = displays["rviz_default_plugins/PointCloud2"]
    assert image["Topic"]["Value"] == depth_node.TOPIC_COLORED
    assert cloud["Topic"]["Value"] == depth_node.TOPIC_POINTS
    assert cloud["Color Transformer"] == "RGB8"
    assert manager["Global Options"]["Fixed Frame"] == "camera_optical_frame"


def test_fastdds_profile_has_a_32mb_shared_memory_segment_and_is_default():
    root = ET.parse(PROFILE).getroot()
    strip = lambda tag: tag.split("}")[-1]
    assert strip(root.tag) == "dds"
    descriptors = {}
    for d in root.iter():
        if strip(d.tag) == "transport_descriptor":
            fields = {strip(c.tag): c.text for c in d}
            descriptors[fields["transport_id"]] = fields
    shm = [d for d in descriptors.values() if d["type"] == "SHM"]
    assert len(shm) == 1 and int(shm[0]["segment_size"]) == 32 * 1024 * 1024
    participant = next(e for e in root.iter() if strip(e.tag) == "participant")
    assert participant.get("is_default_profile") == "true"
    used = [e.text for e in participant.iter() if strip(e.tag) == "transport_id"]
    assert set(used) == set(descriptors) and shm[0]["transport_id"] in used
    assert resources.fastdds_profile_path() == PROFILE


def test_setup_cfg_installs_depth_node_for_ros2_run():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/lsmdepth_ros"

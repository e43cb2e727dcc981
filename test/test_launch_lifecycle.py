"""The launch file offers the lifecycle node behind `lifecycle:=true` (plain node by default)."""
from __future__ import annotations

import ast
from pathlib import Path

from lsmdepth_ros.ros import topics

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "lsmdepth.launch.py"


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]


def test_lifecycle_argument_starts_the_managed_executable_with_the_same_remappings():
    tree = ast.parse(LAUNCH.read_text())
    consts = {n.targets[0].id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
              and isinstance(n.value, ast.Constant) and isinstance(n.targets[0], ast.Name)}
    arguments = {c.args[0].value: c for c in _calls(tree, "DeclareLaunchArgument")}
    default = next(k.value.value for k in arguments["lifecycle"].keywords
                   if k.arg == "default_value")
    assert default == "false"
    # One node construction serves both: the lifecycle argument picks (class, executable), so
    # remappings, parameters, namespace and name cannot differ between the two.
    choice = next(n for n in ast.walk(tree) if isinstance(n, ast.IfExp)
                  and "lifecycle" in ast.unparse(n.test))
    managed, plain = (tuple(e.id for e in branch.elts) for branch in (choice.body, choice.orelse))
    assert managed == ("LifecycleNode", "LIFECYCLE_EXECUTABLE")
    assert plain == ("Node", "EXECUTABLE")
    assert (consts["LIFECYCLE_EXECUTABLE"], consts["EXECUTABLE"]) == ("depth_lifecycle_node",
                                                                      "depth_node")
    built = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", None) == "node_class"]
    assert len(built) == 1
    kw = {k.arg for k in built[0].keywords}
    assert {"remappings", "parameters", "namespace", "name", "package", "executable"} <= kw
    setup = (ROOT / "setup.py").read_text()
    assert "depth_lifecycle_node = lsmdepth_ros.ros.lifecycle_node:main" in setup
    assert {consts["NODE_IMAGE_TOPIC"], consts["NODE_CAMERA_INFO_TOPIC"]} == {
        topics.TOPIC_IMAGE, topics.TOPIC_CAMERA_INFO}

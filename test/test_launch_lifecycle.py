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
    (managed,), (plain,) = _calls(tree, "LifecycleNode"), [
        c for c in _calls(tree, "Node") if ast.unparse(c).count("EXECUTABLE") == 1
        and "LIFECYCLE" not in ast.unparse(c)]
    kw = {k.arg: k.value for k in managed.keywords}
    assert consts[kw["executable"].id] == "depth_lifecycle_node"
    plain_kw = {k.arg: k.value for k in plain.keywords}
    for key in ("remappings", "parameters", "namespace", "name", "package"):
        assert ast.dump(kw[key]) == ast.dump(plain_kw[key]), key
    setup = (ROOT / "setup.py").read_text()
    assert "depth_lifecycle_node = lsmdepth_ros.ros.lifecycle_node:main" in setup
    assert {consts["NODE_IMAGE_TOPIC"], consts["NODE_CAMERA_INFO_TOPIC"]} == {
        topics.TOPIC_IMAGE, topics.TOPIC_CAMERA_INFO}

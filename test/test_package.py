"""Package layout and layering rules that a robot build (colcon) and the design note rely on."""
import ast
import configparser
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "lsmdepth_ros"
CORE = ["networks", "geometry.py", "metrics.py", "synthetic", "checkpoints.py", "inference.py",
        "training", "atomic_files.py",
        "scale.py", "onnx", "options.py", "resources.py", "visualisation.py", "image_encodings.py"]


def test_package_xml_is_ament_python_format3():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "lsmdepth_ros"
    assert root.find("export").findtext("build_type") == "ament_python"
    deps = {e.text for e in root.iter("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs"} <= deps


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["develop"]["script_dir"] == "$base/lib/lsmdepth_ros"
    assert cfg["install"]["install_scripts"] == "$base/lib/lsmdepth_ros"
    assert (ROOT / "resource" / "lsmdepth_ros").is_file()


def test_setup_py_declares_entry_points_and_share_files():
    tree = ast.parse((ROOT / "setup.py").read_text())
    text = ast.unparse(tree)
    assert "depth_node = lsmdepth_ros.ros.node:main" in text
    assert "lsmdepth = lsmdepth_ros.cli:main" in text
    for folder in ("launch", "config", "models"):
        assert f"share/{{PACKAGE}}/{folder}" in text


ROS_ROOTS = {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "geometry_msgs", "nav_msgs",
             "rcl_interfaces", "lifecycle_msgs", "launch", "launch_ros"}


def _imported_modules(path: Path):
    """Absolute names of every module `path` imports, relative imports resolved, imports inside
    functions included."""
    package = list(path.relative_to(ROOT).with_suffix("").parts)[:-1]  # the file's package
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                if node.module:
                    yield ".".join([*base, node.module])
                else:
                    for alias in node.names:
                        yield ".".join([*base, alias.name])
            elif node.module:
                yield node.module


def _files(entries):
    for entry in entries:
        target = PKG / entry
        assert target.exists(), f"layering test names {target}, which does not exist"
        yield from sorted(target.rglob("*.py")) if target.is_dir() else [target]


def _offenders(entries, forbidden):
    found = []
    for f in _files(entries):
        for mod in _imported_modules(f):
            if forbidden(mod):
                found.append(f"{f.relative_to(ROOT)} imports {mod}")
    return found


def _is_ros(mod: str) -> bool:
    return mod.split(".")[0] in ROS_ROOTS or mod.startswith("lsmdepth_ros.ros")


def test_relative_imports_are_resolved():
    names = set(_imported_modules(PKG / "ros" / "node.py")) | set(
        _imported_modules(PKG / "training" / "datasets" / "registry.py"))
    assert not any(n.startswith(".") for n in names)
    assert any(n.startswith("lsmdepth_ros.") for n in names)


def test_core_never_imports_ros_training_or_bags():
    core = [e for e in CORE if e != "training"]
    assert not (bad := _offenders(core, lambda m: _is_ros(m) or m.startswith((
        "lsmdepth_ros.training", "lsmdepth_ros.bags", "lsmdepth_ros.commands")))), bad


def test_training_never_imports_ros():
    assert not (bad := _offenders(["training"], _is_ros)), bad


def test_ros_layer_never_imports_training_or_bags():
    assert not (bad := _offenders(["ros"], lambda m: m.startswith(
        ("lsmdepth_ros.training", "lsmdepth_ros.bags", "lsmdepth_ros.commands")))), bad


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci

"""Package layout and layering rules that a robot build (colcon) and the design note rely on."""
import ast
import configparser
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "lsmdepth_ros"
CORE = ["networks", "geometry.py", "metrics.py", "synthetic", "checkpoints.py", "inference.py",
        "training", "atomic_files.py",
        "scale.py", "onnx", "options.py", "resources.py"]


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


def _imported_modules(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_core_never_imports_ros():
    offenders = []
    for entry in CORE:
        target = PKG / entry
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for f in files:
            if not f.exists():
                continue
            for mod in _imported_modules(f):
                root = mod.split(".")[0]
                if root in {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "launch",
                            "launch_ros"} or mod.startswith("lsmdepth_ros.ros"):
                    offenders.append(f"{f.relative_to(ROOT)} imports {mod}")
    assert not offenders, offenders


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci

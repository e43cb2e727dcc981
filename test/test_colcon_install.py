"""The package as colcon installs it (see colcon_fixtures.py): the layout `ros2 run`, `ros2 launch`
and the ament index rely on, the installed code finding its shipped files through the share
folder, and package.xml declaring what the code imports (so `rosdep install` brings it)."""
from __future__ import annotations

import ast
import filecmp
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from colcon_fixtures import PACKAGE, ROOT, colcon_install

# Third-party Python modules with a rosdep key (the distribution's package).
PYTHON_ROSDEP = {"numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml",
                 "matplotlib": "python3-matplotlib", "scipy": "python3-scipy",
                 "skimage": "python3-skimage", "tqdm": "python3-tqdm"}
# Modules installed with pip on a robot (no rosdep key in every distribution, or the
# distribution's build is unusable, e.g. a CPU-only torch): requirements-robot.txt names them.
PIP_ONLY = {"torch": "torch", "torchvision": "torchvision", "onnx": "onnx",
            "onnxruntime": "onnxruntime", "onnxscript": "onnxscript", "rosbags": "rosbags"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    before = set(os.listdir(ROOT))
    result = colcon_install(tmp_path_factory.mktemp("colcon"))
    assert set(os.listdir(ROOT)) == before, "the install wrote into the source folder"
    return result


def _run(installed, code: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], check=False, text=True, timeout=120,
                          env=env or installed.environment(), cwd=cwd or installed.prefix,
                          capture_output=True)


def test_share_folder_holds_manifest_launch_config_and_models(installed):
    for folder in ("launch", "config", "models"):
        sources = sorted(p.name for p in (ROOT / folder).iterdir() if p.is_file())
        assert sources, folder
        match, mismatch, errors = filecmp.cmpfiles(ROOT / folder, installed.share / folder,
                                                   sources, shallow=False)
        assert match == sources, (folder, mismatch, errors)
    assert filecmp.cmp(ROOT / "package.xml", installed.share / "package.xml", shallow=False)
    recorded = set(installed.record)
    assert installed.share / "launch" / "lsmdepth.launch.py" in recorded


def test_ament_index_marker_makes_the_package_findable(installed):
    marker = installed.prefix / "share/ament_index/resource_index/packages" / PACKAGE
    assert marker.is_file() and marker in set(installed.record)
    proc = _run(installed, "from ament_index_python.packages import get_package_share_directory,"
                           " get_package_prefix\n"
                           f"print(get_package_prefix('{PACKAGE}'))\n"
                           f"print(get_package_share_directory('{PACKAGE}'))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(installed.prefix), str(installed.share)]


def test_executables_live_in_lib_package_and_run_the_installed_code(installed):
    for name in ("depth_node", "lsmdepth"):
        exe = installed.lib / name
        assert exe.is_file() and os.access(exe, os.X_OK), exe
        assert exe.read_text().splitlines()[0] == f"#!{sys.executable}"
    env = installed.environment()
    proc = subprocess.run([str(installed.lib / "lsmdepth"), "--help"], check=False, env=env,
                          cwd=installed.prefix, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "export" in proc.stdout, proc.stderr
    proc = _run(installed, "import lsmdepth_ros; print(lsmdepth_ros.__file__)")
    assert Path(proc.stdout.strip()).is_relative_to(installed.site_packages), proc.stdout


def test_shipped_model_and_config_are_found_through_the_share_folder(installed):
    proc = _run(installed, "from lsmdepth_ros import resources as r\n"
                           "print(r.share_dir()); print(r.default_model_path());"
                           " print(r.params_file_path())")
    assert proc.returncode == 0, proc.stderr
    share, model, params = map(Path, proc.stdout.split())
    assert share == installed.share
    assert model == installed.share / "models" / "lsmdepth_synthetic.pt"
    assert filecmp.cmp(model, ROOT / "models" / "lsmdepth_synthetic.pt", shallow=False)
    assert params == installed.share / "config" / "lsmdepth.yaml" and params.is_file()


def test_without_a_sourced_workspace_the_error_says_what_to_do(installed):
    env = installed.environment()
    env.pop("AMENT_PREFIX_PATH")
    proc = _run(installed, "from lsmdepth_ros import resources as r; r.share_dir()", env=env)
    assert proc.returncode != 0
    assert "install/setup.bash" in proc.stderr and PACKAGE in proc.stderr


# ----------------------------------------------------------------------------------------------
# package.xml against the code

def _manifest():
    return ET.parse(ROOT / "package.xml").getroot()


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module.split(".")[0]


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files importing it, for every non-stdlib, non-own import shipped."""
    files = sorted((ROOT / PACKAGE).rglob("*.py")) + sorted((ROOT / "launch").glob("*.py"))
    found: dict[str, set[str]] = {}
    for f in files:
        for mod in _imports(f):
            if mod not in sys.stdlib_module_names and mod not in {PACKAGE, "__future__"}:
                found.setdefault(mod, set()).add(str(f.relative_to(ROOT)))
    return found


def _launched_packages() -> set[str]:
    """Packages the launch file starts nodes from (Node(package="...") literals)."""
    out = set()
    for f in (ROOT / "launch").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Node":
                for kw in node.keywords:
                    if kw.arg == "package" and isinstance(kw.value, ast.Constant):
                        out.add(kw.value.value)
    return out


def test_package_xml_declares_every_ros_package_and_rosdep_key_the_code_needs():
    declared = {e.text for e in _manifest().iter("exec_depend")}
    missing = {}
    for mod, files in _third_party_imports().items():
        if mod in PIP_ONLY:
            continue
        key = PYTHON_ROSDEP.get(mod, mod)  # anything else is a ROS package: its name is its key
        if key not in declared:
            missing[key] = sorted(files)
    for package in _launched_packages():
        if package != PACKAGE and package not in declared:
            missing[package] = ["launch/"]
    assert not missing, ("package.xml lacks <exec_depend> for (or classify the module in "
                         f"PIP_ONLY / PYTHON_ROSDEP of this test): {missing}")


def test_pip_only_modules_are_in_requirements_robot():
    names = set()
    for line in (ROOT / "requirements-robot.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line)[0].lower())
    used = {PIP_ONLY[m] for m in _third_party_imports() if m in PIP_ONLY}
    assert used and used <= names, used - names


def test_package_xml_and_setup_py_agree_on_name_and_version():
    root = _manifest()
    setup = (ROOT / "setup.py").read_text()
    assert root.findtext("name") == PACKAGE and f'PACKAGE = "{PACKAGE}"' in setup
    assert f'version="{root.findtext("version")}"' in setup

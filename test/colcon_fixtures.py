"""Install the package the way `colcon build` installs an ament_python package, into a temporary
prefix, and the environment `source install/setup.bash` would give (shared by
test_colcon_install.py and test_ros2_launch.py).

colcon-core's PythonBuildTask runs, from the package's source folder:
    setup.py egg_info --egg-base BUILD build --build-base BUILD/build
             install --record BUILD/install.log --install-scripts <setup.cfg [install] value>
             --single-version-externally-managed install_data
with the install prefix forced to PREFIX (we pass --prefix, which gives the same layout). It
passes --install-scripts itself because setuptools ignores setup.cfg's [install] section inside
a virtual environment; colcon-ros's ament_python task adds PREFIX to AMENT_PREFIX_PATH.
"""
from __future__ import annotations

import configparser
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lsmdepth_ros"


@dataclass(frozen=True)
class ColconInstall:
    prefix: Path
    build: Path
    record: list[Path]

    @property
    def site_packages(self) -> Path:
        return Path(sysconfig.get_path("purelib", "posix_prefix", {"base": str(self.prefix)}))

    @property
    def share(self) -> Path:
        return self.prefix / "share" / PACKAGE

    @property
    def lib(self) -> Path:
        return self.prefix / "lib" / PACKAGE

    def environment(self, *python_paths: Path, base: dict | None = None) -> dict[str, str]:
        """`base` (default os.environ) as `source PREFIX/setup.bash` leaves it: the prefix's
        site-packages and AMENT_PREFIX_PATH first, and no source checkout on PYTHONPATH (so the
        installed copy is what runs)."""
        env = dict(os.environ if base is None else base)
        kept = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                if p and Path(p).resolve() != ROOT]
        env["PYTHONPATH"] = os.pathsep.join([*map(str, python_paths), str(self.site_packages),
                                             *kept])
        ament = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(self.prefix), *ament])
        return env


def install_scripts_option(root: Path = ROOT) -> str | None:
    """setup.cfg's [install] install_scripts (or install-scripts), read as colcon reads it."""
    parser = configparser.ConfigParser()
    parser.optionxform = str
    parser.read(root / "setup.cfg")
    return (parser.get("install", "install-scripts", fallback=None)
            or parser.get("install", "install_scripts", fallback=None))


def colcon_install(base: Path, root: Path = ROOT) -> ColconInstall:
    build, prefix = base / "build" / PACKAGE, base / "install"
    build.mkdir(parents=True, exist_ok=True)
    record = build / "install.log"
    cmd = [sys.executable, "setup.py", "egg_info", "--egg-base", os.path.relpath(build, root),
           "build", "--build-base", str(build / "build"),
           "install", "--prefix", str(prefix), "--record", str(record)]
    scripts = install_scripts_option(root)
    if scripts:
        cmd += ["--install-scripts", scripts]
    cmd += ["--single-version-externally-managed", "install_data"]
    proc = subprocess.run(cmd, check=False, cwd=root, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode:
        raise RuntimeError(f"colcon-style install failed ({proc.returncode}):\n{proc.stdout}\n"
                           f"{proc.stderr}")
    return ColconInstall(prefix, build, [Path(p) for p in record.read_text().split()])

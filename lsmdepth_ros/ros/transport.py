"""Large messages delivered without hand-tuning: the package's Fast DDS profile, applied early.

Why a profile and not Fast DDS's own `FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`: measured here
(Kilted, Fast DDS 3.2, one host, 20 frames of 640x480 rgb8 at 5 Hz, test/large_data_peers.py):

    publisher / subscriber config   reliable->reliable  reliable->best-effort  best-effort->best-effort
    none / none                      20                  10                     4
    LARGE_DATA / LARGE_DATA          20                   8                     1
    LARGE_DATA(4MB) / same           20                  15                     2
    profile / none                   20                  20                    20
    profile / profile                20                  20                    20

The sender's shared-memory segment decides: Fast DDS's default 512 KB segment is smaller than
one 640x480 image, so samples fall back to fragmented UDP and a best-effort reader loses any
sample with a lost fragment. `config/fastdds_profile.xml` gives the participant a 32 MB segment,
so every process that *publishes* large messages needs it; a subscriber on the same host (RViz,
a recorder) needs nothing.

Call `use_large_data_transport()` at the start of every entry point, before the first rclpy
participant exists (Fast DDS reads its profiles once, when the first participant is created).
A user's own Fast DDS configuration always wins.
"""
from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from lsmdepth_ros.resources import FASTDDS_PROFILE_ENV_VARS, fastdds_profile_path

# Any of these means the user configured Fast DDS: we leave the environment alone.
USER_FASTDDS_VARS = FASTDDS_PROFILE_ENV_VARS + ("FASTDDS_BUILTIN_TRANSPORTS",)
# Fast DDS also loads these from the working directory on its own.
DEFAULT_PROFILE_FILES = ("DEFAULT_FASTDDS_PROFILES.xml", "DEFAULT_FASTRTPS_PROFILES.xml")
# Fast DDS 2.x (Humble, Iron, Jazzy) reads only FASTRTPS_DEFAULT_PROFILES_FILE; Fast DDS 3
# (Kilted on) reads FASTDDS_DEFAULT_PROFILES_FILE and its rmw warns that the old name is
# deprecated. Checked in the libraries' strings of both pip installs.
FASTDDS2_DISTROS = ("humble", "iron", "jazzy")
FASTDDS2_VAR, FASTDDS3_VAR = "FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"


def profile_variables(environ: dict) -> tuple[str, ...]:
    """The profile variable(s) the installed Fast DDS reads: ROS_DISTRO (a sourced ROS) first,
    else the pip-installed Fast DDS package, else both."""
    distro = environ.get("ROS_DISTRO", "")
    if distro:
        return (FASTDDS2_VAR,) if distro in FASTDDS2_DISTROS else (FASTDDS3_VAR,)
    for package, variable in (("ros-fastdds", FASTDDS3_VAR), ("ros-fastrtps", FASTDDS2_VAR)):
        try:
            importlib.metadata.version(package)
            return (variable,)
        except importlib.metadata.PackageNotFoundError:
            pass
    return FASTDDS_PROFILE_ENV_VARS


def user_transport_config(environ: dict, cwd: Path | None = None) -> str | None:
    """Why the user's own middleware configuration must be kept, or None when there is none."""
    rmw = environ.get("RMW_IMPLEMENTATION", "")
    if rmw and not rmw.startswith("rmw_fastrtps"):
        return f"RMW_IMPLEMENTATION={rmw} (not Fast DDS)"
    for name in USER_FASTDDS_VARS:
        if environ.get(name):
            return f"{name} is set"
    folder = Path.cwd() if cwd is None else cwd
    for name in DEFAULT_PROFILE_FILES:
        if (folder / name).is_file():
            return f"{name} in the working directory"
    return None


def large_data_env(environ: dict | None = None, cwd: Path | None = None) -> dict:
    """A copy of `environ` (default os.environ) with the package's Fast DDS profile exported,
    unless the user configured the middleware themselves or the profile is not installed."""
    env = dict(os.environ if environ is None else environ)
    if user_transport_config(env, cwd) is not None:
        return env
    try:
        profile = fastdds_profile_path()
    except FileNotFoundError:   # no share folder (unusual install): Fast DDS defaults
        return env
    if profile.is_file():
        env.update({name: str(profile) for name in profile_variables(env)})
    return env


def use_large_data_transport() -> dict[str, str]:
    """Export the profile into this process's environment (see the module note); returns the
    variables it set (empty when the user's configuration was kept)."""
    env = large_data_env()
    added = {k: v for k, v in env.items() if os.environ.get(k) != v}
    os.environ.update(added)
    return added

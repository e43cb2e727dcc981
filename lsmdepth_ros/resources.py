"""Where the package's shipped files live: config/, launch/, models/.

Two layouts are supported: the source tree (a venv with an editable install, or colcon
--symlink-install), where the files sit beside the Python package, and an installed ROS 2
package, where they are in `share/lsmdepth_ros/` found through the ament index.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE = "lsmdepth_ros"
DEFAULT_MODEL_FILE = "lsmdepth_synthetic.pt"
FASTDDS_PROFILE_FILE = "fastdds_profile.xml"
PARAMS_FILE = "lsmdepth.yaml"
# Fast DDS 3 reads the first, Fast DDS 2 (Humble, Iron) the second; set both.
FASTDDS_PROFILE_ENV_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def _source_root() -> Path | None:
    root = Path(__file__).resolve().parents[1]
    return root if (root / "package.xml").is_file() and (root / "config").is_dir() else None


def share_dir() -> Path:
    """The folder holding config/, launch/ and models/ (source tree first, then the ament index)."""
    root = _source_root()
    if root is not None:
        return root
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    # OSError: AMENT_PREFIX_PATH unset (no workspace sourced); LookupError: not in the index.
    except (ImportError, LookupError, ValueError, OSError) as exc:
        raise FileNotFoundError(
            f"cannot find the {PACKAGE} share folder: not running from the source tree and the "
            f"ament index has no '{PACKAGE}' ({exc}). Source the workspace's install/setup.bash "
            "or reinstall the package."
        ) from exc


def default_model_path() -> Path:
    """The shipped default weights (`models/lsmdepth_synthetic.pt`); may not exist yet."""
    return share_dir() / "models" / DEFAULT_MODEL_FILE


def fastdds_profile_path() -> Path:
    """Fast DDS profile with a 32 MB shared-memory segment for large images and clouds."""
    return share_dir() / "config" / FASTDDS_PROFILE_FILE


def params_file_path() -> Path:
    """The node's default parameter file (`config/lsmdepth.yaml`)."""
    return share_dir() / "config" / PARAMS_FILE


def fastdds_env(environ: dict | None = None) -> dict:
    """A copy of `environ` (default os.environ) with the Fast DDS profile variables set.

    Variables already set by the user are kept: their profile wins.
    """
    import os

    env = dict(os.environ if environ is None else environ)
    profile = str(fastdds_profile_path())
    for name in FASTDDS_PROFILE_ENV_VARS:
        env.setdefault(name, profile)
    return env

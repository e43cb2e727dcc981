"""Large-data delivery without the launch file: lsmdepth_ros.ros.transport.

The delivery test runs three parties as the issue describes: a publisher process (reliable and
best-effort writers of 640x480 rgb8), a subscriber process (reliable and best-effort readers),
and this test, which only starts them and counts what arrived: every frame, in order.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from lsmdepth_ros.resources import fastdds_profile_path
from lsmdepth_ros.ros.transport import (
    FASTDDS2_VAR,
    FASTDDS3_VAR,
    large_data_env,
    profile_variables,
    user_transport_config,
)

PEERS = Path(__file__).with_name("large_data_peers.py")
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def test_profile_is_exported_when_the_user_configured_nothing(tmp_path):
    env = large_data_env({"PATH": "/bin"}, cwd=tmp_path)
    names = profile_variables({})
    assert names and all(env[name] == str(fastdds_profile_path()) for name in names)
    assert env["PATH"] == "/bin" and "FASTDDS_BUILTIN_TRANSPORTS" not in env


def test_the_variable_matches_the_fast_dds_of_the_distribution(tmp_path):
    # Fast DDS 2 (up to Jazzy) reads only the FASTRTPS_ name; Fast DDS 3 warns about it.
    for distro, name in (("jazzy", FASTDDS2_VAR), ("humble", FASTDDS2_VAR),
                         ("kilted", FASTDDS3_VAR), ("rolling", FASTDDS3_VAR)):
        env = large_data_env({"ROS_DISTRO": distro}, cwd=tmp_path)
        assert [k for k in env if k.endswith("PROFILES_FILE")] == [name], distro
    # This venv: rclpy's own Fast DDS decides (Kilted: 3.x, the Jazzy venv: 2.x).
    from importlib.metadata import version

    major = int(version("ros-rclpy").split(".")[0])   # Jazzy 7.x, Kilted 9.x
    assert profile_variables({}) == ((FASTDDS2_VAR,) if major < 9 else (FASTDDS3_VAR,))


def test_a_users_own_middleware_configuration_wins(tmp_path):
    for own in ({"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"},
                {"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"},
                {"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"},
                {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}):
        assert large_data_env(own, cwd=tmp_path) == own, own
        assert user_transport_config(own, tmp_path)
    # A Fast DDS default profile in the working directory is loaded by Fast DDS itself.
    (tmp_path / "DEFAULT_FASTDDS_PROFILES.xml").write_text("<dds/>")
    assert large_data_env({}, cwd=tmp_path) == {}
    # Fast DDS chosen explicitly is still ours to configure.
    env = large_data_env({"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}, cwd=tmp_path.parent)
    assert env[profile_variables({})[0]] == str(fastdds_profile_path())


def _peer_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARS
           and k != "FASTDDS_BUILTIN_TRANSPORTS"}   # as a user who set nothing
    env.update(ROS_DOMAIN_ID=str(random.randint(101, 200)),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PEERS_COUNT="20", PEERS_RATE_HZ="5")
    return env


def test_every_large_frame_reaches_reliable_and_best_effort_subscribers_of_another_process():
    env = _peer_env()
    sub = subprocess.Popen([sys.executable, str(PEERS), "sub"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(sub.stdout.readline()) == {"ready": True}, sub.stderr.read()
        pub = subprocess.run([sys.executable, str(PEERS), "pub"], env=env, capture_output=True, check=False,
                             text=True, timeout=120)
        assert pub.returncode == 0 and json.loads(pub.stdout.splitlines()[-1]) == {"sent": 20}, (
            pub.stdout + pub.stderr)
        out, err = sub.communicate(timeout=120)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    got = json.loads(out.splitlines()[-1])
    for stream in ("reliable/reliable", "reliable/best_effort", "best_effort/best_effort"):
        assert got[stream] == list(range(20)), (stream, got, err[-2000:])

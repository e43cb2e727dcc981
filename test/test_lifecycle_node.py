"""The lifecycle variant as a process: configure fails on a bad model and the process stays up;
after fixing model_path configure loads it, activate starts work, deactivate stops it, cleanup
frees the model; SIGINT ends it with exit code 0."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from node_harness import Harness, node_env, read_log, tiny_checkpoint

from lsmdepth_ros.resources import params_file_path


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lifecycle")
    log = folder / "node.log"
    cmd = [sys.executable, "-m", "lsmdepth_ros.ros.lifecycle_node", "--ros-args",
           "--params-file", str(params_file_path()), "-p", f"model_path:={folder / 'none.pt'}",
           "-p", "num_threads:=1", "-p", "diagnostics_period:=0.5"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=node_env(), stdout=out, stderr=subprocess.STDOUT)
    hx = Harness()
    try:
        client = hx.node.create_client(GetState, "/depth_node/get_state")
        assert client.wait_for_service(timeout_sec=90), read_log(log)   # imports take a while
        hx.node.destroy_client(client)
        yield proc, hx, log, tiny_checkpoint(tmp_path_factory)
    finally:
        hx.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _call(hx, srv, name, request):
    client = hx.node.create_client(srv, name)
    try:
        return hx.call(client, request)
    finally:
        hx.node.destroy_client(client)


def _state(hx) -> int:
    return _call(hx, GetState, "/depth_node/get_state", GetState.Request()).current_state.id


def _transition(hx, transition: int) -> bool:
    return _call(hx, ChangeState, "/depth_node/change_state",
                 ChangeState.Request(transition=Transition(id=transition))).success


def test_lifecycle_transitions(lifecycle):
    proc, hx, log, checkpoint = lifecycle
    assert _state(hx) == State.PRIMARY_STATE_UNCONFIGURED
    assert hx.node.count_publishers("/depth") == 0
    # A missing model: FAILURE with the reason, still unconfigured, still running.
    assert not _transition(hx, Transition.TRANSITION_CONFIGURE)
    assert "configure failed" in read_log(log) and "none.pt" in read_log(log)
    assert proc.poll() is None and _state(hx) == State.PRIMARY_STATE_UNCONFIGURED
    # Start-up parameters may change while unconfigured.
    assert hx.set_params(model_path=str(checkpoint))[0].successful
    assert _transition(hx, Transition.TRANSITION_CONFIGURE)
    assert _state(hx) == State.PRIMARY_STATE_INACTIVE
    assert hx.node.count_publishers("/depth") == 0            # nothing published while inactive
    refused = hx.set_params(model_path="/elsewhere.pt")[0]
    assert not refused.successful and "clean it up" in refused.reason
    assert _transition(hx, Transition.TRANSITION_ACTIVATE)
    assert hx.wait(lambda: hx.pub_image.get_subscription_count() > 0, 10)
    h = hx.send_until(["depth", "points"])
    assert hx.get("depth", h).encoding == "32FC1"
    assert _transition(hx, Transition.TRANSITION_DEACTIVATE)
    assert hx.wait(lambda: hx.node.count_publishers("/depth") == 0 and
                   hx.pub_image.get_subscription_count() == 0, 10)
    assert _transition(hx, Transition.TRANSITION_CLEANUP)
    assert _state(hx) == State.PRIMARY_STATE_UNCONFIGURED
    assert hx.set_params(model_path=str(checkpoint))[0].successful   # writable again
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    assert "Traceback" not in read_log(log), read_log(log)

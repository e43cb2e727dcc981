"""SIGINT and SIGTERM at any moment of a depth node's life end it cleanly: exit code 0, no
traceback, no "exception was never retrieved", no RCLError.

Each run starts `python -m lsmdepth_ros.ros.node` in its own process group and signals it after
a delay spread evenly from "the node's handlers are installed" (SIGTERM appears in the
process's caught-signal mask: before that, the interpreter itself is still starting and no
project code has run) to past the end of start-up, so runs land in the imports, the model
loading, the parameter and publisher set-up and steady spinning. Every third run signals the
whole process group twice, as a terminal's Ctrl-C followed by `ros2 launch` forwarding SIGINT.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsmdepth_ros.resources import params_file_path

RUNS = 20
PARALLEL = 2
BAD_OUTPUT = ("Traceback", "never retrieved", "RCLError", "KeyboardInterrupt")


@pytest.fixture(scope="module")
def checkpoint(random_checkpoint_factory):
    return random_checkpoint_factory(height=64, width=192, min_depth=0.1, max_depth=80.0)


def _start(checkpoint: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(1, 100)),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1",
               RCUTILS_LOGGING_BUFFERED_STREAM="0")
    cmd = [sys.executable, "-m", "lsmdepth_ros.ros.node", "--ros-args", "--params-file",
           str(params_file_path()), "-p", f"model_path:={checkpoint}", "-p", "num_threads:=1"]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _handles_sigterm(pid: int) -> bool:
    """SIGTERM is in the process's caught-signal mask (Python never catches it by default)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines()
                      if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _wait_handlers(proc: subprocess.Popen, timeout: float = 60.0) -> float:
    t0 = time.monotonic()
    while not _handles_sigterm(proc.pid):
        assert proc.poll() is None and time.monotonic() - t0 < timeout, "node never started"
        time.sleep(0.002)
    return time.monotonic()


def _startup_seconds(checkpoint: Path, tmp_path: Path) -> float:
    """Handlers installed -> model loaded and publishers up, measured once on this machine."""
    log = tmp_path / "probe.log"
    proc = _start(checkpoint, log)
    try:
        t0 = _wait_handlers(proc)
        while "network input" not in log.read_text():
            assert proc.poll() is None and time.monotonic() - t0 < 120, log.read_text()
            time.sleep(0.01)
        return time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


class _Run:
    """One node process: signalled `delay` seconds after its handlers are installed."""

    def __init__(self, index: int, delay: float, checkpoint: Path, folder: Path):
        self.index, self.delay = index, delay
        self.log = folder / f"run{index}.log"
        self.proc = _start(checkpoint, self.log)
        self.signal_at = _wait_handlers(self.proc) + delay
        self.signalled_at: float | None = None

    def step(self) -> bool:
        """Signal when due; True once the process has exited (killed after 30 s)."""
        now = time.monotonic()
        if self.signalled_at is None:
            if now >= self.signal_at:
                if self.index % 3 == 0:   # Ctrl-C in a terminal, then `ros2 launch` forwards it
                    os.killpg(self.proc.pid, signal.SIGINT)
                    time.sleep(0.05)
                    os.killpg(self.proc.pid, signal.SIGINT)
                else:
                    self.proc.send_signal(signal.SIGTERM if self.index % 2 else signal.SIGINT)
                self.signalled_at = now
            return False
        if self.proc.poll() is None and now - self.signalled_at > 30:
            self.proc.kill()
        return self.proc.poll() is not None

    def problem(self):
        text = self.log.read_text(errors="replace")
        if self.proc.returncode != 0 or any(b in text for b in BAD_OUTPUT):
            return (self.index, round(self.delay, 2), self.proc.returncode, text[-1500:])
        return None


def test_signals_at_any_moment_exit_cleanly(checkpoint, tmp_path):
    startup = _startup_seconds(checkpoint, tmp_path)
    # Spread over [0, 1.3 x start-up]: the last runs are signalled while spinning.
    pending = [(i, 1.3 * startup * i / (RUNS - 1)) for i in range(RUNS)]
    running: list[_Run] = []
    done: list[_Run] = []
    while pending or running:
        while pending and len(running) < PARALLEL:
            running.append(_Run(*pending.pop(0), checkpoint, tmp_path))
        for run in [r for r in running if r.step()]:
            running.remove(run)
            done.append(run)
        time.sleep(0.005)
    assert len(done) == RUNS
    bad = [p for p in (r.problem() for r in done) if p]
    assert not bad, f"start-up {startup:.1f} s; unclean exits: {bad}"


@pytest.fixture
def guard():
    """An installed SignalGuard; the process's handlers are restored afterwards."""
    from lsmdepth_ros.ros.process import SignalGuard

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGALRM)}
    try:
        yield SignalGuard().install()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _wait_for_the_retry() -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:   # the retry raises here, outside the deferring frame
        time.sleep(0.001)


def test_a_signal_inside_a_finaliser_is_retried_not_swallowed(guard):
    # Python prints "Exception ignored" for an exception raised in a __del__ (or importlib's
    # module-lock weakref callback) and carries on: the guard must defer such a signal.
    import gc

    from lsmdepth_ros.ros.process import Interrupted, _swallows_exceptions

    seen = {}

    class Finalised:
        def __del__(self):
            seen["inside"] = _swallows_exceptions(sys._getframe())

    Finalised()
    gc.collect()
    assert seen["inside"] is True
    assert _swallows_exceptions(sys._getframe()) is False

    with pytest.raises(Interrupted), guard.interruptible():
        class Signalling:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)   # lands inside the finaliser

        Signalling()
        gc.collect()
        _wait_for_the_retry()
    assert guard.requested.is_set()


def test_a_signal_inside_set_name_is_retried_not_wrapped(guard):
    # CI saw a signal land while torchvision's import created a class: Python wraps an
    # exception from a descriptor's __set_name__ in "RuntimeError: Error calling __set_name__",
    # a traceback and exit code 1 instead of a clean stop. The guard defers it.
    from lsmdepth_ros.ros.process import Interrupted

    with pytest.raises(Interrupted) as caught, guard.interruptible():
        class Named:
            def __set_name__(self, owner, name):
                os.kill(os.getpid(), signal.SIGINT)   # lands inside __set_name__
                time.sleep(0.05)

        class Owner:   # creating it calls __set_name__
            attribute = Named()

        _wait_for_the_retry()
    assert caught.type is Interrupted and guard.requested.is_set()

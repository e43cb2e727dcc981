"""Running a node as a process: clean exits on SIGINT / SIGTERM at any moment.

rclpy's own signal handlers shut the context down from under a running executor; that is how
`RCLError: failed to initialize wait set`, `Failed to create subscription` (a signal while the
model loads) and "exception was never retrieved: cannot use Destroyable" came about. Instead,
`SignalGuard` takes SIGINT and SIGTERM before anything heavy is imported, rclpy is initialised
without signal handlers, and a signal only *asks* for the stop: the spin loop notices within
`SPIN_STEP_S` and tears down in order (executor, then node, then context). Only the two slow
start-up steps (importing torch/rclpy, loading the model) are interrupted at once, by an
exception that `run_node` turns into exit code 0. Repeated signals (a terminal's Ctrl-C to the
process group followed by `ros2 launch` forwarding SIGINT) are harmless.

This module imports nothing heavy at the top: it runs before torch and rclpy are loaded.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable

RETRY_S = 0.02          # retry delay for a signal that landed where it cannot raise
SPIN_STEP_S = 0.1        # longest delay between a signal and the start of the teardown
EXIT_BAD_CONFIG = 2      # model or parameters unusable (the message says why)


class Interrupted(BaseException):
    """Raised by SignalGuard during an interruptible start-up step; not an error."""


class SignalGuard:
    """SIGINT/SIGTERM set `requested`; inside `interruptible()` the first one also raises."""

    def __init__(self):
        self.requested = threading.Event()
        self._interruptible = False

    def install(self) -> SignalGuard:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        first = not self.requested.is_set()
        self.requested.set()
        if first and self._interruptible:
            self._raise_when_safe(frame)

    def _raise_when_safe(self, frame) -> None:
        """Raise Interrupted unless the signal landed where Python would swallow or wrap the
        exception (`_DEFER_IN`); then retry from SIGALRM 20 ms later."""
        if self._interruptible and _swallows_exceptions(frame):
            signal.signal(signal.SIGALRM, lambda _s, f: self._raise_when_safe(f))
            signal.setitimer(signal.ITIMER_REAL, RETRY_S)
            return
        if self._interruptible:
            self._interruptible = False
            raise Interrupted("stop requested")

    @contextlib.contextmanager
    def interruptible(self):
        """Start-up work that may be abandoned mid-way (imports, model loading)."""
        if self.requested.is_set():
            raise Interrupted("stop requested")
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False
            signal.setitimer(signal.ITIMER_REAL, 0)   # no retry pending past this step


# Frames where Python does not let an exception through as it is: it swallows one raised in a
# finaliser or importlib's module-lock weakref callback ("Exception ignored in ..."), and wraps
# one raised in a descriptor's __set_name__ into a RuntimeError (a class body being created by
# an import, e.g. torch's `cached_property`s while torchvision loads).
_DEFER_IN = ("__del__", "__set_name__")


def _swallows_exceptions(frame) -> bool:
    while frame is not None:
        code = frame.f_code
        if code.co_name in _DEFER_IN or (code.co_name == "cb"
                                         and code.co_filename.startswith("<frozen importlib")):
            return True
        frame = frame.f_back
    return False


GUARD = SignalGuard()   # one per process: signals are process-wide


def run_node(load_node_class: Callable[[], type], name: str, args=None,
             guard: SignalGuard = GUARD) -> int:
    """Install the guard, import the node class, init rclpy, build the node, spin until a
    signal; returns the exit code (0 after a signal, EXIT_BAD_CONFIG when building the node
    raises ValueError: a bad model or parameter)."""
    guard.install()
    node = executor = rclpy = None
    try:
        with guard.interruptible():
            import rclpy
            from rclpy.executors import SingleThreadedExecutor
            from rclpy.signals import SignalHandlerOptions

            node_class = load_node_class()
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        node = node_class()           # loads the model inside guard.interruptible()
        if guard.requested.is_set():
            return 0
        # Callbacks only store messages (inference has its own thread), so one executor thread
        # is enough, and with it no callback is in flight once spin_once returns: a
        # multi-threaded executor's pool may still run one after shutdown() destroyed its guard
        # condition ("exception was never retrieved: cannot use Destroyable").
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not guard.requested.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_STEP_S)
        return 0
    except Interrupted:
        return 0
    except ValueError as exc:         # ModelLoadError is one; the message is for people
        if guard.requested.is_set():
            return 0                  # the failure came from being stopped
        _fatal(name, f"cannot start: {exc}")
        return EXIT_BAD_CONFIG
    finally:
        _teardown(executor, node, rclpy)
        # The interpreter resets Python-set handlers to the default at exit, so a late second
        # signal (launch forwarding Ctrl-C) would kill the exiting process (exit -2). Ignored
        # handlers are kept: from here on we are leaving anyway.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def _teardown(executor, node, rclpy) -> None:
    if executor is not None:
        executor.shutdown(timeout_sec=5.0)    # waits for callbacks already running
    if node is not None:
        stop = getattr(node, "stop", None)
        if stop is not None:
            stop()
        node.destroy_node()
    if rclpy is not None:
        rclpy.try_shutdown()


def _fatal(name: str, text: str) -> None:
    try:
        import rclpy.logging

        rclpy.logging.get_logger(name).fatal(text)
    except Exception:  # noqa: BLE001 -- logging must not hide the reason
        print(f"[FATAL] [{name}]: {text}", file=sys.stderr)

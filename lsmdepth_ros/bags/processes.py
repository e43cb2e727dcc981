"""Child processes that are always stopped: SIGINT first (a clean ROS shutdown), then kill."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path


class ProcessDied(RuntimeError):
    """A child process exited while it was still needed."""


class ManagedProcess:
    """A child process with its output in a log file, stopped gently and for sure."""

    def __init__(self, name: str, cmd: list[str], env: dict, log_path: Path) -> None:
        self.name = name
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # Own process group: a Ctrl-C in the terminal reaches only us; we stop the child in order.
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def check_alive(self) -> None:
        rc = self.proc.poll()
        if rc is not None:
            raise ProcessDied(f"the {self.name} exited early (code {rc}); its log "
                              f"{self.log_path} ends with:\n{self.tail()}")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT and wait; SIGTERM then SIGKILL if it does not finish. Returns the exit code."""
        try:
            if self.proc.poll() is None:
                for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0),
                                  (signal.SIGKILL, 3.0)):
                    self.proc.send_signal(sig)
                    try:
                        self.proc.wait(wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            return self.proc.wait(1.0)
        finally:
            self._log.close()

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

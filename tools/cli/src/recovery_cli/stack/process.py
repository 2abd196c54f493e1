"""One supervised child process: started with its own log file, probed until ready, stopped politely."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from recovery_cli.stack.readiness import Probe, ProbeResult

LOG_TAIL_LINES = 40


class StackError(RuntimeError):
    """The stack could not be started, probed or stopped; the message says which process and why."""


class ProcessFailed(StackError):
    """A process exited or never became ready; carries its log path and the last lines of its log."""

    def __init__(self, name: str, reason: str, log_path: Path, tail: str) -> None:
        self.name = name
        self.reason = reason
        self.log_path = log_path
        self.tail = tail
        # Other processes that failed at the same start (each reported in the message too).
        self.others: list[ProcessFailed] = []
        super().__init__(failure_report(name, reason, log_path, tail))

    @property
    def names(self) -> list[str]:
        return [self.name, *(other.name for other in self.others)]

    def with_others(self, others: list[ProcessFailed]) -> ProcessFailed:
        combined = ProcessFailed(self.name, self.reason, self.log_path, self.tail)
        combined.others = list(others)
        combined.args = ("\n\n".join(str(failure) for failure in (self, *others)),)
        return combined


def failure_report(name: str, reason: str, log_path: Path, tail: str) -> str:
    body = tail.rstrip() or "(the log is empty)"
    return (
        f"{name}: {reason}\n"
        f"log: {log_path}\n"
        f"--- last lines of {log_path.name} ---\n{body}\n--- end of {log_path.name} ---"
    )


@dataclass(frozen=True)
class ProcessSpec:
    """What to run and how to tell it is ready. `env` is laid over the supervisor's own environment."""

    name: str
    argv: tuple[str, ...]
    probe: Probe
    env: Mapping[str, str] = field(default_factory=dict)
    port: int | None = None
    url: str | None = None
    role: str = ""

    @classmethod
    def python_module(cls, name: str, module: str, *args: str, **fields: object) -> ProcessSpec:
        # sys.executable, not "python": the child must see the same virtual environment as its supervisor.
        return cls(name=name, argv=(sys.executable, "-m", module, *args), **fields)  # type: ignore[arg-type]


class ManagedProcess:
    """A child process in its own session (so signals reach its whole group, never our terminal's)."""

    def __init__(self, spec: ProcessSpec, log_path: Path, *, detach: bool = False) -> None:
        self.spec = spec
        self.log_path = log_path
        self.detach = detach
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self, *, fresh_log: bool = False) -> None:
        """Start the process; its output goes to the log, appended (a restart) or from scratch."""
        if self.is_running():
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.spec.env, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("wb" if fresh_log else "ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            log.write(f"=== {stamp} starting {self.name}: {' '.join(self.spec.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                # A stack owned by a test run or the demo dies with it, even if pytest is killed;
                # `recovery up` detaches on purpose so the stack outlives the command.
                # Linux delivers that signal when the *thread* that forked exits, not the process: a process
                # (re)started from a worker thread (the fault suite's chaos thread) would die with the thread.
                preexec_fn=None if self.detach or not _on_main_thread() else _die_with_parent,
            )

    def probe(self) -> ProbeResult:
        """Probe once; raises ProcessFailed when the process has exited (a crash is not 'not ready yet')."""
        if self._popen is None:
            raise StackError(f"{self.name} was never started")
        code = self._popen.poll()
        if code is not None:
            raise ProcessFailed(
                self.name,
                f"{describe_exit(code)} before it was ready ({self.spec.probe.describe()})",
                self.log_path,
                self.log_tail(),
            )
        return self.spec.probe.check()

    def not_ready_failure(self, waited: float, last: str) -> ProcessFailed:
        return ProcessFailed(
            self.name,
            f"not ready after {waited:.0f}s (waiting for {self.spec.probe.describe()}; last: {last})",
            self.log_path,
            self.log_tail(),
        )

    def wait_ready(self, timeout: float, interval: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = self.probe()
            if result.ready:
                return
            if time.monotonic() >= deadline:
                raise self.not_ready_failure(timeout, result.detail)
            time.sleep(interval)

    def terminate(self) -> None:
        """Send SIGTERM to the process group without waiting (`stop` waits)."""
        if self._popen is not None and self._popen.poll() is None:
            signal_group(self._popen.pid, signal.SIGTERM)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds; returns the exit code."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            signal_group(self._popen.pid, signal.SIGTERM)
            try:
                self._popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._note(f"did not stop within {grace:.0f}s of SIGTERM: SIGKILL")
        # The leader may be gone while a child it spawned lingers: the group gets SIGKILL either way.
        signal_group(self._popen.pid, signal.SIGKILL)
        return self._popen.wait()

    def kill(self) -> int | None:
        """SIGKILL at once, as a crash would: no shutdown code runs."""
        if self._popen is None:
            return None
        self._note("killed with SIGKILL")
        signal_group(self._popen.pid, signal.SIGKILL)
        return self._popen.wait()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)

    def _note(self, text: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        with contextlib.suppress(OSError), self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"=== {stamp} supervisor: {self.name} {text}\n")


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def signal_group(pid: int, signum: int) -> bool:
    """Signal the process group led by `pid`; False when nothing is left to signal."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 64 * 1024))
            text = log.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


_PR_SET_PDEATHSIG = 1


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    # Runs in the child between fork and exec. Linux only; elsewhere the stack's own teardown must suffice.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

"""The state file `recovery up` leaves in the run directory so `recovery down` and `status` find the stack."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recovery_cli.stack.process import signal_group

STATE_FILE = "stack.json"


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    role: str
    pid: int
    argv: list[str]
    log: str
    port: int | None = None
    url: str | None = None


@dataclass(frozen=True)
class StackState:
    started_at: str
    run_dir: str
    processes: list[ProcessRecord]
    settings: dict[str, Any] = field(default_factory=dict)

    def process(self, name: str) -> ProcessRecord | None:
        return next((record for record in self.processes if record.name == name), None)


def state_path(run_dir: Path) -> Path:
    return run_dir / STATE_FILE


def write_state(run_dir: Path, state: StackState) -> Path:
    path = state_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def read_state(run_dir: Path) -> StackState | None:
    path = state_path(run_dir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return StackState(
        started_at=raw["started_at"],
        run_dir=raw["run_dir"],
        processes=[ProcessRecord(**record) for record in raw["processes"]],
        settings=raw.get("settings", {}),
    )


def service_url(run_dir: Path, name: str, variable: str, default: str) -> str:
    """Where a command reaches a service: `variable` when set, else the URL of `name` in the stack `recovery up`
    runs from `run_dir`, else `default`."""
    configured = os.environ.get(variable)
    if configured:
        return configured
    state = read_state(run_dir)
    running = state.process(name) if state is not None else None
    return running.url if running is not None and running.url else default


def clear_state(run_dir: Path) -> None:
    state_path(run_dir).unlink(missing_ok=True)


def is_alive(record: ProcessRecord) -> bool:
    """True when `record.pid` still runs the command we started (a reused pid does not count)."""
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return _pid_exists(record.pid)
    # A zombie has an empty command line: it is gone for our purposes.
    return cmdline.split(b"\0")[:-1] == [part.encode() for part in record.argv]


def live_processes(state: StackState) -> list[ProcessRecord]:
    return [record for record in state.processes if is_alive(record)]


def stop_recorded(state: StackState, grace: float = 10.0, say: Callable[[str], None] = print) -> list[str]:
    """Stop every recorded process still running (services first, the database last).

    SIGTERM to each process group, then SIGKILL to whatever is left after `grace` seconds. Returns the names
    of the processes that had to be killed.
    """
    records = list(reversed(state.processes))
    killed: list[str] = []
    # The services first, so they do not spend their shutdown reconnecting to a database already gone.
    for batch in (
        [record for record in records if record.role != "database"],
        [record for record in records if record.role == "database"],
    ):
        running = [record for record in batch if is_alive(record)]
        for record in batch:
            if record not in running:
                say(f"{record.name:<20} not running (pid {record.pid})")
        for record in running:
            signal_group(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(is_alive(record) for record in running) and time.monotonic() < deadline:
            time.sleep(0.1)
        for record in running:
            if is_alive(record):
                signal_group(record.pid, signal.SIGKILL)
                killed.append(record.name)
                say(f"{record.name:<20} did not stop within {grace:.0f}s: killed (pid {record.pid})")
                _wait_gone(record, 5.0)
            else:
                say(f"{record.name:<20} stopped (pid {record.pid})")
    return killed


def _wait_gone(record: ProcessRecord, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while is_alive(record) and time.monotonic() < deadline:
        time.sleep(0.05)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

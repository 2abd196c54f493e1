"""The stack supervisor: starts the database, services and peers as processes, waits, restarts, stops."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from recovery_cli.stack.components import SECANTUSDB, Role, component, instance_name
from recovery_cli.stack.config import StackConfig
from recovery_cli.stack.infrastructure import ensure_rabbitmq, redact
from recovery_cli.stack.layout import StackLayout
from recovery_cli.stack.process import ManagedProcess, ProcessFailed, ProcessSpec, StackError
from recovery_cli.stack.readiness import free_ports, port_open
from recovery_cli.stack.state import (
    ProcessRecord,
    StackState,
    clear_state,
    live_processes,
    read_state,
    write_state,
)


def _quiet(_: str) -> None:
    pass


class Stack(StackLayout):
    """The processes of one running system, started from a `StackConfig` (what runs where: `StackLayout`).

    Usable as a context manager. Every process writes `<run_dir>/logs/<name>.log`; a process that exits or
    never becomes ready raises `ProcessFailed`, whose message names it and shows the end of its log.
    """

    def __init__(self, config: StackConfig, say: Callable[[str], None] = _quiet) -> None:
        super().__init__(config)
        self.say = say
        self._processes: dict[str, ManagedProcess] = {}
        self.started_rabbitmq = False

    def process(self, name: str) -> ManagedProcess:
        try:
            return self._processes[name]
        except KeyError:
            raise KeyError(f"no process {name!r} in this stack; it has {', '.join(self._processes)}") from None

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> Stack:
        config = self.config
        config.log_dir.mkdir(parents=True, exist_ok=True)
        self._refuse_if_already_running()
        self._refuse_busy_ports()
        self.started_rabbitmq = ensure_rabbitmq(config.rabbitmq_url, start=config.start_rabbitmq, say=self.say)
        try:
            if config.mongodb_url is None:
                self._launch(self._secantus_spec())
                self._wait([SECANTUSDB.name])
            names = [name for _, name in self._instances()]
            for comp, name in self._instances():
                self._launch(self._spec(comp, name))
            self._wait(names)
        except BaseException:
            self.stop()
            raise
        self._save_state()
        return self

    def stop(self) -> None:
        """SIGTERM everything (the database last), SIGKILL what is left after the grace period."""
        grace = self.config.stop_grace
        running = [process for process in self._processes.values() if process.spec.role != Role.DATABASE]
        database = [process for process in self._processes.values() if process.spec.role == Role.DATABASE]
        for batch in (running, database):
            for process in batch:
                process.terminate()
            deadline = time.monotonic() + grace
            for process in batch:
                process.stop(grace=max(0.1, deadline - time.monotonic()))
        if self._processes:
            self.say(f"stopped {len(self._processes)} processes; logs stay in {self.config.log_dir}")
        self._processes.clear()
        if (state := read_state(self.run_dir)) is not None and not live_processes(state):
            clear_state(self.run_dir)

    def kill(self, name: str) -> None:
        """SIGKILL one process, as a crash would; `start_process` or `restart` brings it back."""
        self.process(name).kill()

    def start_process(self, name: str) -> None:
        """Start a stopped or killed process again (same port, same log file) and wait until it is ready."""
        process = self.process(name)
        if process.is_running():
            raise StackError(f"{name} is still running (pid {process.pid})")
        process.start()
        self._wait([name])
        self._save_state()

    def restart(self, name: str, *, hard: bool = False) -> None:
        """Stop one process (SIGKILL when `hard`, else SIGTERM) and start it again, waiting until ready."""
        process = self.process(name)
        if hard:
            process.kill()
        else:
            process.stop(grace=self.config.stop_grace)
        self.start_process(name)

    def add_instance(self, component_name: str) -> str:
        """Start one more instance of a service on a free port; returns its name (e.g. `executor-3`)."""
        comp = component(component_name)
        index = len(self.instances(component_name)) + 1
        while instance_name(comp.name, index) in self._processes:
            index += 1
        name = instance_name(comp.name, index)
        self._ports[name] = free_ports(1, self.config.host)[0]
        self._extra_instances.append((comp, name))
        self._launch(self._spec(comp, name))
        self._wait([name])
        self._save_state()
        return name

    def is_ready(self, name: str) -> bool:
        process = self.process(name)
        return process.is_running() and process.spec.probe.check().ready

    def log_tails(self, lines: int = 40, roles: tuple[str, ...] | None = None) -> str:
        """The last lines of every process's log (of these roles only, if given), for a failure report."""
        parts = []
        for process in self._processes.values():
            if roles is not None and process.spec.role not in roles:
                continue
            status = "running" if process.is_running() else f"exited {process.returncode}"
            parts.append(f"===== {process.name} ({status}) {process.log_path}\n{process.log_tail(lines)}")
        return "\n".join(parts)

    def summary(self) -> list[str]:
        lines = []
        for process in self._processes.values():
            where = process.spec.url or (f"port {process.spec.port}" if process.spec.port else "")
            lines.append(f"{process.name:<20} pid {process.pid!s:<8} {where:<28} log {process.log_path}")
        return lines

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- inside ----------------------------------------------------------------------------------------

    def _launch(self, spec: ProcessSpec) -> None:
        process = self._processes.get(spec.name) or ManagedProcess(
            spec, self.log_path(spec.name), detach=self.config.detach
        )
        self._processes[spec.name] = process
        process.start(fresh_log=True)
        self.say(f"started {spec.name:<20} pid {process.pid!s:<8} log {process.log_path}")

    def _wait(self, names: list[str]) -> None:
        """Probe all of `names` together until each is ready; report every one that exited or timed out."""
        timeout = self.config.readiness_timeout
        started = time.monotonic()
        pending = {name: "not probed yet" for name in names}
        failures: list[ProcessFailed] = []
        while pending:
            for name in list(pending):
                process = self._processes[name]
                try:
                    result = process.probe()
                except ProcessFailed as failure:
                    failures.append(failure)
                    del pending[name]
                    continue
                if result.ready:
                    del pending[name]
                    self.say(f"ready   {name:<20} {process.spec.url or ''}")
                else:
                    pending[name] = result.detail
            if failures:
                # Processes that share a cause (no broker, a bad setting) tend to die together: say so.
                time.sleep(1.0)
                failures += self._exited_meanwhile(pending)
                raise failures[0].with_others(failures[1:])
            if pending and time.monotonic() - started >= timeout:
                waited = time.monotonic() - started
                late = [self._processes[name].not_ready_failure(waited, last) for name, last in pending.items()]
                raise late[0].with_others(late[1:])
            time.sleep(0.1)

    def _exited_meanwhile(self, pending: dict[str, str]) -> list[ProcessFailed]:
        exited = []
        for name in pending:
            try:
                self._processes[name].probe()
            except ProcessFailed as failure:
                exited.append(failure)
        return exited

    def _refuse_if_already_running(self) -> None:
        state = read_state(self.run_dir)
        if state is None:
            return
        alive = live_processes(state)
        if alive:
            listed = ", ".join(f"{record.name} (pid {record.pid})" for record in alive)
            raise StackError(
                f"a stack started from {self.run_dir} is still running: {listed}. Stop it first (`recovery down`)."
            )
        clear_state(self.run_dir)

    def _refuse_busy_ports(self) -> None:
        busy = [f"{name} port {port}" for name, port in self._ports.items() if port_open(self.config.host, port)]
        if busy:
            raise StackError(
                f"already in use on {self.config.host}: {', '.join(busy)}. Stop what listens there or choose "
                "other ports (`recovery up --port NAME=PORT`)."
            )

    def _save_state(self) -> None:
        state = StackState(
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            run_dir=str(self.run_dir),
            processes=[
                ProcessRecord(
                    name=process.name,
                    role=process.spec.role,
                    pid=process.pid or 0,
                    argv=list(process.spec.argv),
                    log=str(process.log_path),
                    port=process.spec.port,
                    url=process.spec.url,
                )
                for process in self._processes.values()
                if process.is_running()
            ],
            settings={
                "rabbitmq_url": redact(self.rabbitmq_url),
                "mongodb_url": self.mongodb_url,
                "mongodb_database": self.config.mongodb_database,
                "admin_api_key": self.config.admin_api_key,
                "time_scale": self.config.time_scale,
                "receiver_deliveries": str(self.receiver_log_path),
            },
        )
        write_state(self.run_dir, state)


@contextmanager
def running_stack(config: StackConfig, say: Callable[[str], None] = _quiet) -> Iterator[Stack]:
    stack = Stack(config, say)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()

"""The stack supervisor itself: start, readiness, crash reporting, kill and restart, `recovery up/down`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from recovery_cli.stack import (
    ProcessFailed,
    Stack,
    StackConfig,
    StackError,
    port_open,
    read_state,
)

PEERS = ("stripe-sandbox", "receiver")


def peer_stack(run_dir: Path, **changes: object) -> Stack:
    """SecantusDB (no MONGODB_URL given) and the two development peers, on free ports."""
    settings: dict[str, object] = {
        "run_dir": run_dir,
        "components": PEERS,
        "free_ports": True,
        "readiness_timeout": 60.0,
        "stop_grace": 5.0,
    }
    settings.update(changes)
    return Stack(StackConfig(**settings))  # type: ignore[arg-type]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child we have not reaped yet is a zombie: gone for every purpose but the process table.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def fake_package(root: Path, module: str, main_source: str) -> Path:
    """A package that shadows a real module on PYTHONPATH, so a real stack runs a misbehaving process."""
    folder = root.joinpath(*module.split("."))
    folder.mkdir(parents=True)
    for parent in [root.joinpath(*module.split(".")[: i + 1]) for i in range(len(module.split(".")))]:
        parent.joinpath("__init__.py").touch()
    folder.joinpath("__main__.py").write_text(main_source)
    return root


def test_starts_the_database_and_peers_ready_then_stops_them_all(tmp_path: Path) -> None:
    stack = peer_stack(tmp_path)
    with stack:
        assert stack.names == ["secantusdb", "stripe-sandbox", "receiver"]
        pids = {name: stack.process(name).pid for name in stack.names}
        assert all(pid and pid_alive(pid) for pid in pids.values())
        assert httpx.get(f"{stack.stripe_url}/healthz").status_code == 200
        assert httpx.get(f"{stack.receiver_url}/received").json() == []
        from pymongo import MongoClient

        with MongoClient(stack.mongodb_url, serverSelectionTimeoutMS=5000) as client:
            assert client.admin.command("ping")["ok"] == 1
        state = read_state(tmp_path)
        assert state is not None
        assert {record.name: record.pid for record in state.processes} == pids
        for name in stack.names:
            assert stack.log_path(name).is_file(), f"no log for {name}"
    assert not any(pid_alive(pid) for pid in pids.values() if pid)
    assert not port_open("127.0.0.1", stack.port("stripe-sandbox"))
    assert read_state(tmp_path) is None, "a stopped stack leaves no state file behind"


def test_a_killed_process_restarts_on_the_same_port_with_its_log_kept(tmp_path: Path) -> None:
    with peer_stack(tmp_path) as stack:
        sandbox = stack.process("stripe-sandbox")
        first_pid = sandbox.pid
        ledger_url = f"{stack.stripe_url}/_sandbox/ledger"
        assert httpx.get(ledger_url).status_code == 200

        stack.kill("stripe-sandbox")
        assert not sandbox.is_running()
        assert sandbox.returncode == -9
        assert not stack.is_ready("stripe-sandbox")

        stack.restart("stripe-sandbox")
        assert sandbox.pid != first_pid
        assert httpx.get(ledger_url).status_code == 200
        log = stack.log_path("stripe-sandbox").read_text()
        assert log.count("starting stripe-sandbox") == 2
        assert "killed with SIGKILL" in log
        state = read_state(tmp_path)
        assert state is not None
        assert state.process("stripe-sandbox").pid == sandbox.pid  # type: ignore[union-attr]


def test_a_graceful_restart_replaces_the_process(tmp_path: Path) -> None:
    with peer_stack(tmp_path, components=("receiver",)) as stack:
        first_pid = stack.process("receiver").pid
        stack.restart("receiver")
        assert stack.process("receiver").pid != first_pid
        assert stack.is_ready("receiver")


def test_a_process_that_exits_at_once_is_named_with_its_log_tail(tmp_path: Path) -> None:
    shadow = fake_package(
        tmp_path / "shadow",
        "recovery_sandbox.receiver",
        "import sys\nprint('receiver cannot start: port configuration missing', flush=True)\nsys.exit(3)\n",
    )
    stack = peer_stack(tmp_path / "run", component_env={"receiver": {"PYTHONPATH": str(shadow)}})
    with pytest.raises(ProcessFailed) as failure:
        stack.start()
    assert failure.value.name == "receiver"
    message = str(failure.value)
    assert "receiver: exited with code 3 before it was ready" in message
    assert "receiver cannot start: port configuration missing" in message
    assert str(stack.log_path("receiver")) in message
    # What did start is stopped again: a failed start leaves nothing running.
    for name in ("secantusdb", "stripe-sandbox"):
        assert not port_open("127.0.0.1", stack.port(name)), f"{name} still listens"


def test_a_process_that_never_gets_ready_times_out_with_its_log_tail(tmp_path: Path) -> None:
    shadow = fake_package(
        tmp_path / "shadow",
        "recovery_sandbox.stripe",
        "import time\nprint('waiting for a broker that never comes', flush=True)\ntime.sleep(600)\n",
    )
    stack = peer_stack(
        tmp_path / "run",
        components=("stripe-sandbox",),
        mongodb_url="mongodb://127.0.0.1:1/",
        readiness_timeout=3.0,
        component_env={"stripe-sandbox": {"PYTHONPATH": str(shadow)}},
    )
    started = time.monotonic()
    with pytest.raises(ProcessFailed) as failure:
        stack.start()
    assert time.monotonic() - started < 30
    message = str(failure.value)
    assert "stripe-sandbox: not ready after 3s" in message
    assert "/healthz" in message
    assert "waiting for a broker that never comes" in message


def test_a_busy_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = peer_stack(tmp_path, ports={"receiver": port})
        with pytest.raises(StackError, match=f"receiver port {port}"):
            stack.start()
    assert not list((tmp_path / "logs").glob("*.log")), "nothing was started"


def test_several_instances_of_a_service_get_their_own_port_and_identity(tmp_path: Path) -> None:
    stack = Stack(
        StackConfig(
            run_dir=tmp_path,
            components=("executor", "scheduler"),
            instances={"executor": 3},
            mongodb_url="mongodb://db.invalid/",
            free_ports=True,
        )
    )
    assert stack.names == ["executor", "executor-2", "executor-3", "scheduler"]
    assert stack.instances("executor") == ["executor", "executor-2", "executor-3"]
    ports = {stack.port(name) for name in stack.names}
    assert len(ports) == 4
    env = stack.service_env("executor-2")
    assert env["SERVICE_INSTANCE_ID"] == "executor-2"
    assert env["HTTP_PORT"] == str(stack.port("executor-2"))
    assert env["MONGODB_URL"] == "mongodb://db.invalid/"
    assert "STRIPE_API_BASE" not in env, "no sandbox in this stack, so the executor keeps its own default"


def test_the_services_get_the_documented_environment(tmp_path: Path) -> None:
    stack = Stack(StackConfig(run_dir=tmp_path, time_scale=1000, free_ports=True))
    env = stack.service_env("intake")
    assert env["TIME_SCALE"] == "1000.0"
    assert env["STRIPE_API_BASE"] == stack.stripe_url
    assert env["OUTBOUND_ALLOWED_CIDRS"] == "127.0.0.0/8,::1/128"
    assert env["ADMIN_API_KEY"] == "test_admin"
    assert env["MONGODB_URL"] == stack.mongodb_url
    assert env["MONGODB_URL"].endswith("/?directConnection=true")
    assert env["MONGODB_DATABASE"] == "recovery"
    assert env["RABBITMQ_URL"] == "amqp://guest:guest@127.0.0.1:5672/"


def recovery(*args: str, run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recovery_cli", *args, "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        # These tests start their own SecantusDB; a MONGODB_URL from the caller's shell must not change that.
        env={name: value for name, value in os.environ.items() if name != "MONGODB_URL"},
    )


def test_recovery_up_leaves_the_stack_running_and_recovery_down_stops_it(tmp_path: Path) -> None:
    up = recovery(
        "up",
        "--only", "stripe-sandbox", "--only", "receiver",
        "--port", "stripe-sandbox=0", "--port", "receiver=0", "--port", "secantusdb=0",
        "--mongodb-storage", str(tmp_path / "mongodb"),
        run_dir=tmp_path,
    )  # fmt: skip
    state = read_state(tmp_path)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "The stack is up" in up.stdout
        assert str(tmp_path / "logs" / "receiver.log") in up.stdout
        assert state is not None
        assert [record.name for record in state.processes] == ["secantusdb", "stripe-sandbox", "receiver"]
        # `recovery up` has exited; its processes have not.
        assert all(pid_alive(record.pid) for record in state.processes)
        status = recovery("status", run_dir=tmp_path)
        assert status.returncode == 0, status.stdout
        assert status.stdout.count(" ready ") == 3
        again = recovery("up", "--only", "receiver", "--port", "receiver=0", run_dir=tmp_path)
        assert again.returncode == 1
        assert "still running" in again.stderr
    finally:
        down = recovery("down", "--grace", "10", run_dir=tmp_path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(pid_alive(record.pid) for record in state.processes)
    assert read_state(tmp_path) is None
    assert recovery("status", run_dir=tmp_path).returncode == 3
    assert "nothing to stop" in recovery("down", run_dir=tmp_path).stdout

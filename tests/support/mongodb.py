"""A MongoDB for the test session: MONGODB_URL when set, else SecantusDB as its own process."""

from __future__ import annotations

import re
import uuid
import warnings
from pathlib import Path

from recovery_cli.stack import ManagedProcess, ProcessSpec, free_port, secantus_url
from recovery_cli.stack.layout import probe_for

SECANTUS_START_TIMEOUT = 60.0


class SecantusServer:
    """SecantusDB with an in-memory store on a free port. Its own process: in-process it would compete
    for the GIL with the code under test."""

    def __init__(self, log_dir: Path, host: str = "127.0.0.1") -> None:
        port = free_port(host)
        self.url = secantus_url(port, host)
        spec = ProcessSpec.python_module(
            "secantusdb",
            "secantus",
            "--host", host, "--port", str(port), "--storage-path", ":memory:",
            probe=probe_for("database", host, port),
            port=port,
            url=self.url,
            role="database",
        )  # fmt: skip
        self.process = ManagedProcess(spec, log_dir / "secantusdb.log")

    def start(self) -> SecantusServer:
        self.process.start(fresh_log=True)
        self.process.wait_ready(SECANTUS_START_TIMEOUT)
        return self

    def stop(self) -> None:
        self.process.stop(grace=10.0)


def database_name_for(test_name: str) -> str:
    """A database name of its own for one test: readable, unique, within MongoDB's 63 characters."""
    readable = re.sub(r"[^A-Za-z0-9_]+", "_", test_name).strip("_")[:40]
    return f"t_{readable}_{uuid.uuid4().hex[:8]}"


def drop_database(url: str, name: str) -> None:
    """Drop a test's database; a drop that does not finish within 30 s is given up with a warning (the databases
    live in the test session's own server: one left behind costs memory, not correctness). SecantusDB was seen to
    stall a drop while another test's stack held a transaction open."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, object]]
    try:
        with MongoClient(url, serverSelectionTimeoutMS=5000, socketTimeoutMS=30000) as client:
            client.drop_database(name)
    except PyMongoError as error:
        warnings.warn(f"test database {name} not dropped: {error}", stacklevel=2)

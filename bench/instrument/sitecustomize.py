"""Benchmark instrumentation loaded into a service process through PYTHONPATH, without touching its code.

Python imports `sitecustomize` at start-up from sys.path; the end-to-end benchmark puts this folder on the
services' PYTHONPATH and sets:
- BENCH_MONGO_MONITOR=1: a PyMongo command listener counts every command (one command = one round trip) in
  `bench_mongo_commands_total{command,collection}`, served on the service's own /metrics (the default registry);
- BENCH_PROFILE_DIR=DIR: SIGUSR1 starts a pyinstrument sampling profile of the event loop thread, SIGUSR2
  stops it and writes DIR/<service>-<pid>.txt (and .html).
"""

from __future__ import annotations

import os

if os.environ.get("BENCH_MONGO_MONITOR") == "1":
    from prometheus_client import Counter
    from pymongo import monitoring

    _COMMANDS = Counter("bench_mongo_commands", "MongoDB commands sent (round trips)", ["command", "collection"])

    class _CountCommands(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            # The command's first field names its collection (find, insert, update, delete, aggregate, ...).
            target = event.command.get(event.command_name)
            collection = target if isinstance(target, str) else ""
            _COMMANDS.labels(event.command_name, collection).inc()

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    # Registered before any client exists: every AsyncMongoClient built later reports to it.
    monitoring.register(_CountCommands())

if os.environ.get("BENCH_PROFILE_DIR"):
    import signal
    import sys
    from pathlib import Path

    _profile_dir = Path(os.environ["BENCH_PROFILE_DIR"])
    _profiler = None

    def _start_profile(signum: int, frame: object) -> None:
        global _profiler
        from pyinstrument import Profiler

        if _profiler is None:
            _profiler = Profiler(interval=0.001, async_mode="disabled")
            _profiler.start()

    def _stop_profile(signum: int, frame: object) -> None:
        global _profiler
        if _profiler is None:
            return
        profiler, _profiler = _profiler, None
        profiler.stop()
        name = os.environ.get("SERVICE_INSTANCE_ID") or Path(sys.argv[0]).stem
        _profile_dir.mkdir(parents=True, exist_ok=True)
        stem = _profile_dir / f"{name}-{os.getpid()}"
        stem.with_suffix(".txt").write_text(profiler.output_text(unicode=False, color=False, show_all=False))
        stem.with_suffix(".html").write_text(profiler.output_html())

    signal.signal(signal.SIGUSR1, _start_profile)
    signal.signal(signal.SIGUSR2, _stop_profile)

"""The test watchdog (support/watchdog.py) ends a test that hangs past pytest-timeout and shows where it hung, and
the worker pytest-xdist starts in the ended one's place chooses ports as it did (support/ports.py).

Each case runs a real pytest in a directory of its own: one test whose teardown blocks after pytest-timeout has
fired (the kind of hang that stalled a CI run until its 90 minutes), and one test that passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from recovery_cli.stack.readiness import PORT_RANGE_VARIABLE
from support.ports import SLOTS_VARIABLE
from support.watchdog import BUDGET_VARIABLE, GRACE_VARIABLE, HANGS_VARIABLE, STARTED_VARIABLE, hung_tests

SUPPORT = Path(__file__).resolve().parents[2]

HUNG_PROJECT = {
    "pytest.ini": "[pytest]\nasyncio_default_fixture_loop_scope = function\n",
    "conftest.py": 'pytest_plugins = ["support.watchdog"]\n',
    "test_hangs.py": textwrap.dedent(
        """
        import time

        import pytest


        @pytest.fixture
        def stuck_teardown():
            yield
            time.sleep(120)  # after pytest-timeout fired: nothing bounds it but the watchdog


        @pytest.mark.timeout(1)
        def test_stuck_after_its_timeout(stuck_teardown):
            time.sleep(5)
        """
    ),
    "test_fine.py": "def test_fine():\n    assert True\n",
}


SLOW_PROJECT = {
    "pytest.ini": HUNG_PROJECT["pytest.ini"],
    "conftest.py": HUNG_PROJECT["conftest.py"],
    "test_slow.py": textwrap.dedent(
        """
        import time


        def test_slow():
            time.sleep(3)


        def test_second():
            pass


        def test_third():
            pass
        """
    ),
}


# Each test notes its process, its port range and a port chosen from it (which fails where the range is empty).
RECORDING = textwrap.dedent(
    """
    import json
    import os

    from recovery_cli.stack.readiness import PORT_RANGE_VARIABLE, free_ports


    def record(test):
        line = {"test": test, "pid": os.getpid(), "range": os.environ[PORT_RANGE_VARIABLE], "port": free_ports(1)[0]}
        with open(os.environ["PORT_RECORDS"], "a") as records:
            records.write(json.dumps(line) + "\\n")
    """
)

CRASHING_WORKER_PROJECT = {
    "pytest.ini": HUNG_PROJECT["pytest.ini"],
    "conftest.py": 'pytest_plugins = ["support.watchdog", "support.ports"]\n',
    "recording.py": RECORDING,
    "test_a_hangs.py": textwrap.dedent(
        """
        import time

        import pytest

        from recording import record


        @pytest.fixture
        def stuck_teardown():
            yield
            time.sleep(120)


        @pytest.mark.timeout(1)
        def test_stuck_after_its_timeout(stuck_teardown):
            record("hung")
            time.sleep(5)


        def test_after_the_hang():
            record("after")
        """
    ),
    "test_b_beside.py": 'from recording import record\n\n\ndef test_beside():\n    record("beside")\n',
}


def _run(
    tmp_path: Path,
    *arguments: str,
    project: dict[str, str] = HUNG_PROJECT,
    budget: str = "600",
    started: float | None = None,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    for name, text in project.items():
        (tmp_path / name).write_text(text)
    hangs = tmp_path / "hangs"
    hangs.mkdir()
    environment = {
        **{
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PYTEST_")
            and key not in ("COLUMNS", PORT_RANGE_VARIABLE, SLOTS_VARIABLE, STARTED_VARIABLE)
        },
        "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
        GRACE_VARIABLE: "1",
        BUDGET_VARIABLE: budget,
        HANGS_VARIABLE: str(hangs),
        "PORT_RECORDS": str(tmp_path / "ports.jsonl"),
        **({STARTED_VARIABLE: str(started)} if started is not None else {}),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "timeout=0", *arguments],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=90,  # the teardown alone would take 120 s
    )
    return done, hangs


def test_a_worker_hung_past_its_timeout_is_ended_and_the_run_goes_on(tmp_path: Path) -> None:
    done, _ = _run(tmp_path, "-n", "2", "--dist", "loadfile")

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "crashed while running 'test_hangs.py::test_stuck_after_its_timeout'" in output, output
    # One crash: xdist says so once per worker it replaces (the summary's lines are cut to the terminal's width).
    assert output.count("replacing crashed worker") == 1, output
    # The worker started next is given the hung test again (its file was unfinished): it does not run it.
    assert "1 passed, 1 skipped" in output, output
    assert "a hung test's stacks (the watchdog ended its process)" in output, output
    assert "test_hangs.py::test_stuck_after_its_timeout ran past 2s" in output, output
    assert 'test_hangs.py", line 10 in stuck_teardown' in output, output


def test_the_worker_started_in_place_of_an_ended_one_chooses_ports_from_its_slice(tmp_path: Path) -> None:
    done, _ = _run(tmp_path, "-n", "2", "--dist", "loadfile", project=CRASHING_WORKER_PROJECT)

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert output.count("replacing crashed worker") == 1, output
    assert "2 passed, 1 skipped" in output, output
    records = {line["test"]: line for line in map(json.loads, (tmp_path / "ports.jsonl").read_text().splitlines())}
    hung, after, beside = records["hung"], records["after"], records["beside"]
    assert after["pid"] not in (hung["pid"], beside["pid"])  # a new worker
    assert after["range"] == hung["range"] != beside["range"], records
    for record in records.values():
        low, high = map(int, record["range"].split("-"))
        assert low <= record["port"] <= high, record


def test_without_workers_the_process_ends_and_its_stacks_stay_in_the_file(tmp_path: Path) -> None:
    done, hangs = _run(tmp_path, "test_hangs.py")

    assert done.returncode == 1, done.stdout + done.stderr
    assert f"hung tests' stacks go to: {hangs}" in done.stdout
    (report,) = hung_tests(hangs)
    assert report.startswith("test process ended by the watchdog: test_hangs.py::test_stuck_after_its_timeout")
    assert "in stuck_teardown" in report


@pytest.mark.parametrize("workers", [[], ["-n", "2", "--dist", "loadfile"]], ids=["one process", "workers"])
def test_past_the_runs_budget_no_further_test_starts_and_the_run_reports(tmp_path: Path, workers: list[str]) -> None:
    done, _ = _run(tmp_path, *workers, project=SLOW_PROJECT, budget="1")

    output = done.stdout + done.stderr
    assert done.returncode == 2, output  # interrupted
    assert "the run passed its budget of 1s (RECOVERY_TEST_RUN_BUDGET)" in output, output
    assert "1 passed" in output and "3 passed" not in output, output


def test_the_budget_counts_from_the_callers_start_when_it_gives_one(tmp_path: Path) -> None:
    # As .ci/run does: its installs and type check took 599 of the run's 600 s.
    done, _ = _run(tmp_path, project=SLOW_PROJECT, budget="600", started=time.time() - 599)

    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "the run passed its budget of 600s (RECOVERY_TEST_RUN_BUDGET)" in output, output
    assert "1 passed" in output and "3 passed" not in output, output

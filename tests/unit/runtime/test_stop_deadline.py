"""`StopDeadline` ends a process whose stop is stuck, and says what it was waiting for; a process that ends in
time is not kept waiting by it. Each case is a small Python process of its own (the deadline calls os._exit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from recovery_runtime.serving import OVERRAN_EXIT_CODE, awaiting

STUCK = textwrap.dedent(
    """
    import asyncio

    from recovery_runtime.serving import StopDeadline


    async def stubborn():
        while True:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                pass  # as a task stuck in a driver's lock: cancelled, it waits on


    async def main():
        asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
        StopDeadline({seconds}).arm()


    asyncio.run(main())  # cancels `stubborn` and waits for it to end
    """
)


def _run(seconds: float) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", STUCK.format(seconds=seconds)], capture_output=True, text=True, timeout=60
    )
    return done, time.monotonic() - began


def test_a_stop_stuck_past_the_deadline_ends_the_process_naming_what_it_waited_for() -> None:
    done, took = _run(0.5)

    assert done.returncode == OVERRAN_EXIT_CODE, done.stdout + done.stderr
    assert took < 30, took
    output = done.stdout + done.stderr
    assert "service.stop_overran" in output
    assert "stubborn: stubborn (<string>:10) > sleep (tasks.py:" in output, output


def test_a_process_that_ends_in_time_is_not_held_by_the_deadline() -> None:
    # asyncio.run returns at once when no task refuses its cancellation: the deadline's thread does not wait.
    script = STUCK.replace("pass  # as a task", "raise  # as a task")
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script.format(seconds=30)], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - began < 20
    assert "service.stop_overran" not in done.stdout + done.stderr


def test_awaiting_names_each_coroutine_in_the_chain_and_its_line() -> None:
    async def inner() -> None:
        await _forever()

    async def outer() -> None:
        await inner()

    coroutine = outer()
    coroutine.send(None)  # runs to the first suspension, in _forever
    try:
        chain = awaiting(coroutine).split(" > ")
    finally:
        coroutine.close()
    assert [link.split(" (")[0] for link in chain[:3]] == [
        "test_awaiting_names_each_coroutine_in_the_chain_and_its_line.<locals>.outer",
        "test_awaiting_names_each_coroutine_in_the_chain_and_its_line.<locals>.inner",
        "_forever",
    ]
    assert all("test_stop_deadline.py:" in link for link in chain[:3])


class _Suspend:
    def __await__(self):  # type: ignore[no-untyped-def]
        yield None


async def _forever() -> None:
    await _Suspend()

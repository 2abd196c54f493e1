"""How the stack chooses ports for the processes it starts (`recovery_cli.stack.readiness.free_ports`): below the
kernel's ephemeral range, within `RECOVERY_PORT_RANGE` when set (each test worker has a slice of its own), never a
port it handed out before, never one something listens on."""

from __future__ import annotations

import socket

import pytest

from recovery_cli.stack import readiness
from recovery_cli.stack.readiness import PORT_RANGE_VARIABLE, free_ports, port_range

RANGE = "31000-31009"
# A loopback address of these tests' own: the suite's stacks listen on 127.0.0.1, in these same ranges.
HOST = "127.0.0.3"


@pytest.fixture(autouse=True)
def fresh_chooser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "_HANDED_OUT", set())
    monkeypatch.setenv(PORT_RANGE_VARIABLE, RANGE)


def test_ports_come_from_the_given_range_and_are_not_handed_out_twice() -> None:
    first, second = free_ports(3, HOST), free_ports(2, HOST)

    assert all(31000 <= port <= 31009 for port in first + second)
    assert len(set(first + second)) == 5


def test_a_port_something_listens_on_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_RANGE_VARIABLE, "31010-31011")
    with socket.socket() as taken:
        taken.bind((HOST, 31010))
        taken.listen()
        assert free_ports(1, HOST) == [31011]
        with pytest.raises(OSError, match="no 1 free ports"):
            free_ports(1, HOST)  # 31011 was handed out, 31010 is taken


def test_the_memory_of_handed_out_ports_is_dropped_once_half_the_range_went() -> None:
    handed = free_ports(6, HOST)
    again = free_ports(4, HOST)  # past half of 10: the memory starts over, any free port may come back

    assert len(set(handed)) == 6 and len(again) == 4 and readiness._HANDED_OUT == set(again)


def test_a_range_that_says_nothing_usable_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_RANGE_VARIABLE, "high-low")
    with pytest.raises(ValueError, match=PORT_RANGE_VARIABLE):
        port_range()
    monkeypatch.setenv(PORT_RANGE_VARIABLE, "70000-70010")
    with pytest.raises(ValueError, match="no port below the ephemeral range"):
        port_range()

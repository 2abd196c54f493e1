"""Which vhosts count as left by a killed run: made by `vhost_name` with the prefix, older than the grace period,
and used by no connection; and which broker is allowed too few open files for the tests' vhosts."""

from __future__ import annotations

from recovery_cli.stack.vhosts import OPEN_FILES_FLOOR, abandoned, made_at, open_files_problem, vhost_name

NOW = 1_800_000_000.0


def test_a_name_carries_the_second_it_was_made() -> None:
    name = vhost_name("test-", "test_one[case 1]", now=NOW - 5)
    assert name.startswith("test-t1799999995-")
    assert made_at(name, "test-") == 1_799_999_995
    assert made_at(name, "recovery-demo-") is None
    assert made_at("test-0a1b2c3d-old-style", "test-") is None


def test_old_unconnected_vhosts_of_the_prefix_are_abandoned_and_nothing_else() -> None:
    old = vhost_name("test-", "killed", now=NOW - 3600)
    old_but_connected = vhost_name("test-", "long-module", now=NOW - 3600)
    young = vhost_name("test-", "just-made", now=NOW - 30)
    other_prefix = vhost_name("recovery-demo-", now=NOW - 3600)
    names = ["/", old, old_but_connected, young, other_prefix, "test-0a1b2c3d-unstamped"]
    assert abandoned(names, {old_but_connected, "/"}, "test-", NOW) == [old]


def test_a_broker_allowed_debians_default_1024_open_files_is_refused_with_what_to_do() -> None:
    problem = open_files_problem(1024, "amqp://guest:secret@127.0.0.1:5672/")
    assert problem is not None
    assert "may keep only 1024 files open" in problem
    assert "tools/local-rabbitmq ensure" in problem
    assert "secret" not in problem


def test_a_broker_at_or_over_the_floor_or_one_that_does_not_say_is_taken() -> None:
    url = "amqp://guest:guest@127.0.0.1:5672/"
    assert open_files_problem(OPEN_FILES_FLOOR, url) is None
    assert open_files_problem(20000, url) is None
    assert open_files_problem(None, url) is None

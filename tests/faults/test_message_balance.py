"""The fault suite's message balance on counters made up here: what it accepts as at-least-once surplus (a copy
consumed as a duplicate, a second copy of a message in a dead-letter queue) and what it reports."""

from __future__ import annotations

from invariants import MessageBalance

QUEUE = "intake.recovery-requested"  # the one queue bound to recovery.requested
# Counter keys as FaultRun.metrics reads them off the services' /metrics: "name{labels}".
PUBLISHED = 'recovery_messages_published_total{message_type="recovery.requested"}'
DEAD_LETTERED = f'recovery_messages_dead_lettered_total{{queue="{QUEUE}"}}'


def consumed(result: str) -> str:
    return f'recovery_messages_consumed_total{{queue="{QUEUE}",result="{result}"}}'


def balance(metrics: dict[str, float], letters: list[str], injected: int = 0) -> MessageBalance:
    return MessageBalance.of(metrics, {QUEUE: 0}, {QUEUE: [(i, "invalid message: x") for i in letters]}, injected)


def test_every_copy_ending_once_balances() -> None:
    tally = balance({PUBLISHED: 3, consumed("applied"): 2, consumed("rejected"): 1, DEAD_LETTERED: 1}, ["m3"])
    assert (tally.routed, tally.settled, tally.duplicates) == (3, 3, 0) and tally.problems() == []


def test_a_poison_the_service_could_not_dead_letter_is_counted_by_the_brokers_copy_alone() -> None:
    # The injected poison: the service's dead-letter publish failed, RabbitMQ dead-lettered it without a reason.
    tally = balance({}, ["poison"], injected=1)
    assert (tally.routed, tally.settled) == (1, 1) and tally.problems() == []


def test_a_second_dlq_copy_of_one_message_is_a_duplicate_and_an_unexplained_surplus_is_reported() -> None:
    # Dead-lettered, its acknowledgement lost in a restart, redelivered and dead-lettered again: two copies.
    twice = balance({PUBLISHED: 1, consumed("rejected"): 2, DEAD_LETTERED: 2}, ["m1", "m1"])
    assert (twice.routed, twice.settled, twice.duplicates) == (1, 2, 1) and twice.problems() == []
    # The same surplus with no second copy and no duplicate consumed: one copy counted twice.
    counted_twice = balance({PUBLISHED: 1, consumed("applied"): 2}, [])
    assert counted_twice.problems() == [
        "message balance: 1 copies routed, 2 settled (consumed + dead-lettered + queued), 0 duplicates"
    ]

"""The invariants every fault scenario is checked against (a violation is a line of text; none passes):

1. every recovery reached its kind's end (`succeeded`, `failed`; an invoice its billing system cancelled:
   `cancelled` when nothing was charged, else `succeeded`);
2. at most one charge per planned attempt (sandbox ledger entries per idempotency key), exactly one successful
   charge per recovered payment, none for a failed or cancelled one;
3. no charge after an accepted cancel: no ledger entry of the payment later than the moment intake answered the
   cancel with `cancelled`;
4. exactly one initial webhook event per (payment, event type), of the expected types only; the receiver got each
   with a 2xx and the dispatcher's record says `delivered` (none left `delivering` or `retry_scheduled` once the
   run is idle; an endpoint that never answers in time: the event failed for good, never 2xx), always under that
   one event id; every request of it signed: `X-Webhook-Signature-512` verifies under the merchant's key (the
   receiver's own check, none of the project's signing code);
5. webhooks of one payment in sequence: event n+1 of a payment reaches the receiver only after event n was
   answered 2xx (an endpoint that never answers in time: after event n's last attempt), and each carries
   `webhook-sequence` n in the payment's expected order;
6. record back once per recovered payment: the billing system's record-back URL got it with a 2xx, every request
   carrying the payment's one idempotency key (`record-back:<payment>`), none for a payment not recovered; where
   no strike could make the executor repeat the call (no kill, cut, restart or duplicate), exactly one request;
7. nothing unaccounted: outboxes empty, consumer queues drained, each DLQ holding exactly its injected poison
   message, and, where no process was killed, the message balance (`MessageBalance`).

A scenario that loses disputes adds `Disputes.lost_once` (disputes.py says what it checks). A scenario whose strikes
are all known to the harness may add `webhook_copies_explained` (`run.extra_invariants`):
at-least-once on the wire, each copy beyond the first explained by a request the dispatcher has no answer on record
for (recorded unanswered, or never recorded because a dispatcher was killed after it reached the receiver).
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from fault_harness import (
    CHARGED_OR_CANCELLED,
    RECORD_BACK_PATH,
    FaultRun,
    Recovery,
    delivered_ok,
    epoch,
    header,
    record_event_type,
    record_payment,
)

from recovery_runtime.topology import QUEUES
from recovery_sandbox.receiver.verification import verify_signature_512


def check(run: FaultRun, balance: bool) -> list[str]:
    """Every invariant on the run's end state; the violations found, also added to the suite's figures with the
    scenario's own (what it did, what was checked, its wall time)."""
    violations, figures = check_all(run, balance)
    run.figures.recoveries_checked += len(run.recoveries)
    run.figures.scenarios += 1
    run.figures.violations += [f"[{run.name}] {v}" for v in violations]
    run.figures.per_scenario[run.name] = {
        **figures,
        **run.tally,
        "violations": len(violations),
        "wall_seconds": round(time.monotonic() - run.started, 1),
    }
    return violations


def check_all(run: FaultRun, balance: bool) -> tuple[list[str], dict[str, Any]]:
    """The violations, and the scenario's figures (what was checked)."""
    ledger = run.ledger()
    deliveries = run.deliveries()
    webhooks = [d for d in deliveries if d.get("path") != RECORD_BACK_PATH]
    record_backs = [d for d in deliveries if d.get("path") == RECORD_BACK_PATH]
    events = run.initial_events()
    violations = [
        *outcomes(run, ledger),
        *charges(run, ledger),
        *no_charge_after_cancel(run, ledger),
        *webhooks_delivered(run, ledger, webhooks, events),
        *webhooks_signed(run, webhooks),
        *webhooks_in_sequence(run, ledger, webhooks),
        *recorded_back_once(run, ledger, record_backs),
        *(violation for extra in run.extra_invariants for violation in extra(run, ledger)),
    ]
    accounting, balanced = nothing_unaccounted(run, balance)
    violations += accounting
    mine = {r.payment_id for r in run.recoveries}
    figures: dict[str, Any] = {
        "recoveries": len(run.recoveries),
        "charges": sum(1 for e in ledger if (e.get("metadata") or {}).get("payment_id") in mine),
        "webhooks_received": len(webhooks),
        "webhook_events": len(events),
        "record_backs": len(record_backs),
    }
    if balanced is not None:
        figures["messages_balanced"] = balanced
    return violations, figures


def outcomes(run: FaultRun, ledger: list[dict[str, Any]]) -> list[str]:
    found = []
    for r in run.recoveries:
        status, wanted = run.status_of(r), expected_status(run, r, ledger)
        if status != wanted:
            found.append(f"{r.payment_id} ({r.kind}) ended {status!r}, expected {wanted!r}")
    return found


def expected_status(run: FaultRun, r: Recovery, ledger: list[dict[str, Any]]) -> str:
    if r.spec.status == CHARGED_OR_CANCELLED:
        return "succeeded" if run.successful_charges(r, ledger) else "cancelled"
    return r.spec.status


def charges(run: FaultRun, ledger: list[dict[str, Any]]) -> list[str]:
    found = []
    per_key = Counter(entry.get("idempotency_key") for entry in ledger)
    for key, count in per_key.items():
        if key is None:
            found.append(f"{count} charge(s) without an idempotency key")
        elif count > 1:
            found.append(f"{count} charges for one planned attempt ({key})")
    for r in run.recoveries:
        succeeded = run.successful_charges(r, ledger)
        wanted = {"succeeded": 1}.get(expected_status(run, r, ledger), 0)
        if len(succeeded) != wanted:
            found.append(f"{r.payment_id} ({r.kind}): {len(succeeded)} successful charge(s), expected {wanted}")
    return found


def no_charge_after_cancel(run: FaultRun, ledger: list[dict[str, Any]]) -> list[str]:
    found = []
    for r in run.recoveries:
        if not r.cancel_accepted or r.cancel_answered_at is None:
            continue
        late = [e for e in run.charges_of(r, ledger) if float(e["created_at"]) > r.cancel_answered_at]
        for entry in late:
            after = float(entry["created_at"]) - r.cancel_answered_at
            found.append(
                f"{r.payment_id}: charged ({entry['status']}, {entry['idempotency_key']}) {after * 1000:.0f} ms "
                "after intake had accepted the cancel"
            )
    return found


def webhooks_delivered(
    run: FaultRun, ledger: list[dict[str, Any]], webhooks: list[dict[str, Any]], events: list[dict[str, Any]]
) -> list[str]:
    found = []
    per_payment: dict[str, Counter[str]] = defaultdict(Counter)
    stored: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        key = (str(event.get("payment_id")), str(event.get("event_type")))
        per_payment[key[0]][key[1]] += 1
        stored[key] = event
    for r in run.recoveries:
        wanted = run.expected_events(r, ledger)
        counts = per_payment.get(r.payment_id, Counter())
        if dict(counts) != dict.fromkeys(wanted, 1):
            found.append(f"{r.payment_id} ({r.kind}): initial events {dict(counts)}, expected one each: {wanted}")
        mine = [w for w in webhooks if record_payment(w) == r.payment_id]
        answers = run.merchants[r.merchant].answers
        for event_type in wanted:
            of_type = [w for w in mine if record_event_type(w) == event_type]
            ok = [w for w in of_type if delivered_ok(w)]
            event = stored.get((r.payment_id, event_type), {})
            if answers and not ok:
                found.append(f"{r.payment_id} ({r.kind}): {event_type} never delivered with a 2xx")
            if answers and event.get("status") != "delivered":
                found.append(
                    f"{r.payment_id} ({r.kind}): {event_type} left {event.get('status')!r} in the dispatcher's "
                    "record, expected delivered"
                )
            if not answers and (ok or event.get("status") != "failed"):
                found.append(
                    f"{r.payment_id} ({r.kind}): {event_type} to an endpoint that never answers in time ended "
                    f"{event.get('status')!r} with {len(ok)} 2xx answer(s), expected failed with none"
                )
            ids = {str((w.get("json") or {}).get("event_id")) for w in of_type}
            if len(ids) > 1:
                found.append(f"{r.payment_id}: the merchant got {len(ids)} {event_type} events: {sorted(ids)}")
            if ids and str(event.get("event_id")) not in ids:
                found.append(f"{r.payment_id}: delivered {event_type} id {ids} is not the stored initial event")
        unexpected = {record_event_type(w) for w in mine} - set(wanted)
        if unexpected:
            found.append(f"{r.payment_id} ({r.kind}): unexpected events {sorted(map(str, unexpected))}")
    return found


def webhooks_signed(run: FaultRun, webhooks: list[dict[str, Any]]) -> list[str]:
    """Each request about a payment of the batch verifies under its merchant's `payment_response_hash_key`."""
    keys = {r.payment_id: run.merchants[r.merchant].setup.payment_response_hash_key for r in run.recoveries}
    found = []
    for w in webhooks:
        payment = record_payment(w)
        if payment not in keys:
            continue
        headers = {name.lower(): value for name, value in w.get("headers", [])}
        verified = verify_signature_512(keys[payment], str(w.get("body") or "").encode(), headers)
        if not verified.valid:
            found.append(f"{payment}: {record_event_type(w)} (receiver #{w['sequence']}) signature {verified.error}")
    return found


def webhooks_in_sequence(run: FaultRun, ledger: list[dict[str, Any]], webhooks: list[dict[str, Any]]) -> list[str]:
    """Receiver order is arrival order (`sequence`): event n+1 arrives only after event n was answered 2xx (to an
    endpoint that never answers in time: after event n's last attempt), and carries `webhook-sequence` n+1."""
    found = []
    for r in run.recoveries:
        wanted = run.expected_events(r, ledger)
        answers = run.merchants[r.merchant].answers
        mine = sorted((w for w in webhooks if record_payment(w) == r.payment_id), key=lambda w: int(w["sequence"]))
        for w in mine:
            event_type = record_event_type(w)
            position = wanted.index(event_type) + 1 if event_type in wanted else None
            number = header(w, "webhook-sequence")
            if position is not None and number != str(position):
                found.append(f"{r.payment_id}: {event_type} carried webhook-sequence {number}, expected {position}")
            if position is None or position == 1:
                continue
            earlier = [p for p in mine if record_event_type(p) == wanted[position - 2]]
            before = [p for p in earlier if p["sequence"] < w["sequence"]]
            in_order = any(delivered_ok(p) for p in before) if answers else bool(before) and before == earlier
            if not in_order:
                found.append(
                    f"{r.payment_id}: {event_type} (receiver #{w['sequence']}) came before "
                    f"{wanted[position - 2]} was {'answered 2xx' if answers else 'given up'}"
                )
    return found


def webhook_copies_explained(run: FaultRun, ledger: list[dict[str, Any]]) -> list[str]:
    """At-least-once on the wire, and no more copies than the faults explain: beyond its first, each 2xx the
    merchant gave an event follows a request of it the dispatcher has no answer on record for: an attempt it
    recorded without one (its timeout ran out first), or a request it never recorded at all, which only a kill of
    the dispatcher after the request reached the receiver explains (`FaultRun.kills`): killed with the request at
    the endpoint (the receiver answers it later, into a closed connection) or between the 2xx and its record.
    Requests and recorded attempts of an event are matched on `webhook-timestamp` (the one header that differs
    between attempts). Only where the harness knows every strike: a database outage between a 2xx and its record
    also makes a copy, and leaves no trace of it."""
    dispatcher_kills = [at for name, at in run.kills if name.startswith("webhook-dispatcher")]
    client, db = run.database()
    with client:
        attempts = list(db["webhook_events"].find({"request": {"$ne": None}}, {"initial_attempt_id": 1, **_ATTEMPT}))
    unanswered: Counter[str] = Counter()
    recorded: dict[str, Counter[str | None]] = defaultdict(Counter)
    for a in attempts:
        event_id = str(a["initial_attempt_id"])
        unanswered[event_id] += (a.get("response") or {}).get("status_code") is None
        recorded[event_id][header(a["request"], "webhook-timestamp")] += 1
    mine = {r.payment_id for r in run.recoveries}
    per_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for w in run.webhook_deliveries():
        if record_payment(w) in mine:
            per_event[str((w.get("json") or {}).get("event_id"))].append(w)
    found = []
    for event_id, requests in per_event.items():
        unrecorded = 0
        for timestamp, sent in _grouped(requests, "webhook-timestamp").items():
            missing = len(sent) - recorded[event_id][timestamp]
            before_a_kill = sum(1 for w in sent if any(epoch(w["received_at"]) <= at for at in dispatcher_kills))
            if missing > before_a_kill:
                found.append(
                    f"{record_payment(requests[0])}: {missing} request(s) of {record_event_type(requests[0])} "
                    f"(webhook-timestamp {timestamp}) have no attempt on record, and no dispatcher was killed "
                    f"after {before_a_kill} of them"
                )
            unrecorded += max(0, missing)
        copies = sum(1 for w in requests if delivered_ok(w))
        if copies > 1 + unanswered[event_id] + unrecorded:
            found.append(
                f"{record_payment(requests[0])}: {record_event_type(requests[0])} answered 2xx {copies} times, "
                f"but only {unanswered[event_id]} attempt(s) went unanswered and {unrecorded} request(s) were "
                "never recorded (a dispatcher killed with them at the endpoint or before their record)"
            )
    return found


# The fields of an attempt's record `webhook_copies_explained` reads.
_ATTEMPT = {"request.headers": 1, "response.status_code": 1}


def _grouped(requests: list[dict[str, Any]], name: str) -> dict[str | None, list[dict[str, Any]]]:
    """The receiver's requests by the value of their header `name`."""
    groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for w in requests:
        groups[header(w, name)].append(w)
    return groups


def recorded_back_once(run: FaultRun, ledger: list[dict[str, Any]], record_backs: list[dict[str, Any]]) -> list[str]:
    found = []
    per_key: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for d in record_backs:
        per_key[header(d, "idempotency-key")].append(d)
    known = {f"record-back:{r.payment_id}" for r in run.recoveries}
    for key in set(per_key) - known:
        found.append(f"record back under an idempotency key of no payment of the batch: {key!r}")
    for r in run.recorded_back_to_receiver():
        requests = per_key.get(f"record-back:{r.payment_id}", [])
        recovered = bool(run.successful_charges(r, ledger))
        accepted = [d for d in requests if delivered_ok(d)]
        if recovered and not accepted:
            found.append(f"{r.payment_id} ({r.kind}): recovered, never recorded back with a 2xx")
        if not recovered and requests:
            found.append(f"{r.payment_id} ({r.kind}): recorded back {len(requests)} time(s) but never recovered")
        if recovered and run.one_record_back_request and len(requests) != 1:
            found.append(f"{r.payment_id} ({r.kind}): {len(requests)} record-back requests, expected exactly one")
        references = {(d.get("json") or {}).get("merchant_reference_id") for d in requests}
        if requests and references != {r.reference}:
            found.append(f"{r.payment_id}: recorded back for invoice(s) {references}, expected {r.reference}")
    return found


def nothing_unaccounted(run: FaultRun, balance: bool) -> tuple[list[str], int | None]:
    found = []
    if leftovers := run.outbox_leftovers():
        found.append(f"outbox records never published: {leftovers}")
    if busy := {q: n for q, n in run.queue_depths().items() if n}:
        found.append(f"consumer queues not drained: {busy}")
    letters = run.dead_letters()
    for queue, held in letters.items():
        ids = {message_id for message_id, _ in held}
        poison = f"poison-{run.name}-{queue}"
        if ids - {poison}:
            found.append(f"{queue}.dlq holds messages other than the injected poison: {held}")
        if poison in set(run.poison_ids) and poison not in ids:
            found.append(f"{queue}.dlq lost the injected poison message")
        if any(not reason.startswith("invalid message") for message_id, reason in held if message_id == poison):
            found.append(f"{queue}.dlq: poison dead-lettered without the validation reason: {held}")
    if not balance:
        return found, None
    tally = MessageBalance.of(run.metrics(), run.queue_depths(), letters, len(run.poison_ids))
    found += tally.problems()
    run.figures.messages_balanced += int(tally.routed)
    return found, int(tally.routed)


@dataclass
class MessageBalance:
    """published = consumed + dead-lettered, counted per queue copy.

    - routed: every confirmed publish (`recovery_messages_published_total{message_type}`, both copies when
      duplicating) times the number of consumer queues bound to that type, plus the poison messages the test
      put straight into queues;
    - settled: deliveries that ended (`recovery_messages_consumed_total` with result applied, duplicate or
      rejected, counted once the dead letter is published; `failed` is not an end: the message goes back to its
      queue), plus what RabbitMQ dead-lettered itself (messages in a DLQ that no service put there: DLQ depth
      minus `recovery_messages_dead_lettered_total`), plus what still waits in a queue (zero once idle).
    Exact while every process keeps its counters (no kill -9). A publish whose confirm was lost in a broker
    restart is republished by the outbox relay and counted once while delivered twice, and a dead letter whose
    acknowledgement (or confirm) was lost is dead-lettered twice: that surplus must show up as duplicates
    (consumed as such, or a second copy of a message id in a DLQ), so the check is
    `routed <= settled <= routed + duplicates`.
    """

    routed: float
    settled: float
    duplicates: float

    @classmethod
    def of(
        cls,
        metrics: dict[str, float],
        depths: dict[str, int],
        letters: dict[str, list[tuple[str | None, str]]],
        injected: int,
    ) -> MessageBalance:
        fanout = Counter(q.message_type.value for q in QUEUES.values())
        routed = float(injected)
        settled = float(sum(depths.values()))
        duplicates = 0.0
        dead_lettered_by_services = 0.0
        for key, value in metrics.items():
            labels = dict(re.findall(r'(\w+)="([^"]*)"', key))
            if key.startswith("recovery_messages_published_total"):
                routed += value * fanout.get(labels.get("message_type", ""), 0)
            elif key.startswith("recovery_messages_consumed_total") and labels.get("result") in (
                "applied",
                "duplicate",
                "rejected",
            ):
                settled += value
                if labels["result"] == "duplicate":
                    duplicates += value
            elif key.startswith("recovery_messages_dead_lettered_total"):
                dead_lettered_by_services += value
        settled += sum(len(held) for held in letters.values()) - dead_lettered_by_services
        for held in letters.values():
            copies = Counter(message_id for message_id, _ in held)
            duplicates += sum(count - 1 for count in copies.values())
        return cls(routed, settled, duplicates)

    def problems(self) -> list[str]:
        if self.routed <= self.settled <= self.routed + self.duplicates:
            return []
        return [
            f"message balance: {self.routed:.0f} copies routed, {self.settled:.0f} settled "
            f"(consumed + dead-lettered + queued), {self.duplicates:.0f} duplicates"
        ]

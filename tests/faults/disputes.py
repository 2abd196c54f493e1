"""Disputes lost while a fault strikes. As each recovery of the batch succeeds and is recorded at its billing
system, its customer disputes the charge at the Stripe sandbox and the merchant accepts the loss at once: Stripe
sends `charge.dispute.created` and `charge.dispute.closed` side by side (in either order), signed with the
merchant's endpoint secret, to intake's payment connector door, delivers each again while it is not answered 2xx
(within seconds here: Stripe's hours would outlast the test), and the harness has the closing sent once more at once
(racing Stripe's own delivery) and both once after the strike. A scenario opts in with
`losing_disputes(during)`; optionally a second merchant, billed by the Chargebee sandbox, has one invoice recovered
in the batch, so that a lost dispute's refund record is checked where a billing system takes one (the main
merchant's `custombilling` account takes none).

What is checked (`Disputes.lost_once`, beside the suite's invariants, which count the `dispute_lost` webhook as one
more expected event of the payment: one initial event, delivered 2xx, in sequence after `payment_succeeded`):
- every recovered payment of the batch had a dispute lost on it;
- intake applied each dispute once: at most one of Stripe's deliveries of the closing answered `applied`, every 2xx
  answer `applied` or `duplicate`, at least one of them, the delivery after the strike `duplicate`; the same of the
  opening, whose delivery after the strike is `duplicate` too (its event applied already; an opening told by a
  new event after the loss: tests/unit/intake); the intent keeps it once,
  lost, having told the merchant `dispute_opened` then `dispute_lost`, or `dispute_lost` alone;
- the merchant's `dispute_lost` (and `dispute_opened`, when the dispatcher raised one: the suite's invariants expect
  it before the loss, in sequence, once) names the dispute and its amount (its signature:
  `invariants.webhooks_signed`);
- the refund record: none for a `custombilling` payment (its record back has no refund); for a Chargebee one, one
  record, accepted, and at the Chargebee sandbox exactly one payment recorded on the invoice and one refund of it,
  of the dispute's amount.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fault_harness import DISPUTE_LOST, DISPUTE_OPENED, SHORT_LADDER, FaultRun, Kind, Recovery, retrying
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from recovery_cli.billing_demo import ChargebeeScenario
from recovery_contracts.ids import idempotent_event_id
from support.disputes import close_dispute, listen_for_disputes

During = Callable[[FaultRun], contextlib.AbstractContextManager[Any]]

OPENED, CLOSED = "charge.dispute.created", "charge.dispute.closed"
# What intake may have told the merchant of a lost dispute, in order (the opening: unless the loss came first).
TOLD = ([DISPUTE_OPENED, DISPUTE_LOST], [DISPUTE_LOST])
CHARGEBEE = "chargebee"
TAKEN = ("applied", "duplicate")
# Stripe's delivery again of an event not answered 2xx: within seconds, over about four minutes.
REDELIVERY_SECONDS = [0.5, 1, 1, 2, 2, 3, 5, 5, 10, 10, 15, 20, 30, 30, 60, 60]
# How long the harness keeps waiting for recoveries to succeed and be recorded, to dispute them.
LOSING_SECONDS = 120.0
# How long the strike's end waits for Stripe's own deliveries to have been taken before replaying each event.
TAKEN_WAIT_SECONDS = 120.0
NO_ANSWER = "no answer"


@dataclass
class Outage:
    """A strike that takes a process down when a dispute waits for it: until the first outage, the disputes hold the
    ones ready to be lost, and set `waiting` while they hold any; the strike takes the process down and runs its
    restart inside `on()`, and the disputes held are lost meanwhile (later ones as they come)."""

    waiting: threading.Event = field(default_factory=threading.Event)
    now: threading.Event = field(default_factory=threading.Event)
    passed: threading.Event = field(default_factory=threading.Event)

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        self.now.set()
        try:
            yield
        finally:
            self.now.clear()
            self.passed.set()


def losing_disputes(during: During | None = None, *, chargebee: bool = False, outage: Outage | None = None) -> During:
    """`during`, with a dispute lost on each recovery of the batch as it succeeds (from the strike's start until each
    recovered one was disputed; with `outage`, those ready before its first outage held until it); `during` None:
    the fault strikes the whole run (a setting of the stack, say every message twice). With `chargebee`, a merchant
    billed by the Chargebee sandbox in the batch."""

    @contextlib.contextmanager
    def striking(run: FaultRun) -> Iterator[None]:
        disputes = Disputes(run, chargebee, outage, whole_run=during is None)
        disputes.start()
        with during(run) if during is not None else contextlib.nullcontext():
            yield
        disputes.finish()

    return striking


@dataclass
class LostDispute:
    recovery: Recovery
    dispute_id: str  # Stripe's
    amount: int
    door: str  # the URL of intake's door the merchant's Stripe endpoint posts to
    while_striking: bool
    in_outage: bool
    event_id: str = ""
    opened_event_id: str = ""
    # Intake's answers to the closing and to the opening delivered again once the strike was over.
    late_answer: str | None = None
    late_opening_answer: str | None = None


class Disputes:
    """The disputes of one run: `start()` before the strike, `finish()` after it; `lost_once` is the invariant."""

    def __init__(self, run: FaultRun, chargebee: bool, outage: Outage | None, whole_run: bool) -> None:
        self.run = run
        self.lost: list[LostDispute] = []
        self.errors: list[BaseException] = []
        self._doors: dict[str, str] = {}
        self._chargebee = ChargebeeScenario(run.scenario) if chargebee else None
        self._outage = outage
        self._whole_run = whole_run
        self._striking = True
        # Recoveries ready for their dispute, held until it may be lost; the extra deliveries sent meanwhile.
        self._ready: list[Recovery] = []
        self._sending: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._lose_as_they_succeed, daemon=True)

    def start(self) -> None:
        """Every merchant's Stripe endpoint, the Chargebee merchant's invoice, then the thread that disputes."""
        run, chargebee = self.run, self._chargebee
        stripe = run.stack.stripe_url
        httpx.post(f"{stripe}/_sandbox/webhooks/redelivery", json={"seconds": REDELIVERY_SECONDS}).raise_for_status()
        if chargebee is not None:
            setup = run.add_merchant(CHARGEBEE, f"/webhooks/{CHARGEBEE}")
            run.merchants[CHARGEBEE].billing = CHARGEBEE
            chargebee.connect(setup, retry_ladder_seconds=SHORT_LADDER)
        for name, merchant in run.merchants.items():
            self._doors[name] = retrying(
                lambda setup=merchant.setup: listen_for_disputes(run.stack, setup, (OPENED, CLOSED))
            )
        if chargebee is not None:
            self._chargebee_invoice(chargebee)
        run.extra_settled.append(self._refunds_settled)
        run.extra_settled.append(self._openings_counted)
        run.extra_invariants.append(self.lost_once)
        self._thread.start()

    def finish(self) -> None:
        """The strike is over: wait for the last disputes, then Stripe delivers each event once more."""
        self._striking = False
        self._thread.join(timeout=LOSING_SECONDS + 60)
        for sending in self._sending:
            sending.join(timeout=60)
        self._wait_until_taken()
        for dispute in self.lost:
            dispute.late_answer = retrying(lambda dispute=dispute: self._send_again(dispute, dispute.event_id))
            dispute.late_opening_answer = retrying(
                lambda dispute=dispute: self._send_again(dispute, dispute.opened_event_id)
            )
        book = self._book()
        answers = [a for d in self.lost for a in self._answers(d, book)]
        self.run.tally.update(
            disputes_lost=len(self.lost),
            disputes_lost_while_striking=sum(d.while_striking for d in self.lost),
            **({"disputes_lost_in_outage": sum(d.in_outage for d in self.lost)} if self._outage else {}),
            dispute_deliveries=len(answers),
            dispute_deliveries_unanswered_or_refused=sum(map(unanswered, answers)),
        )
        assert not self.errors, self.errors

    # ---- losing ---------------------------------------------------------------------------------------------

    def _chargebee_invoice(self, chargebee: ChargebeeScenario) -> None:
        """A failed invoice at the Chargebee sandbox, its `payment_failed` taken by intake: one more recovery."""
        invoice = chargebee.failed_invoice()
        answer = json.loads(chargebee.delivery("payment_failed", invoice["id"])["answer"])
        customer, payment_id = invoice["stripe_customer"], answer["payment_id"]
        self.run.recoveries.append(Recovery(Kind.IMMEDIATE, customer, "", payment_id, CHARGEBEE, invoice["id"]))

    def _lose_as_they_succeed(self) -> None:
        client: MongoClient[dict[str, Any]] = MongoClient(self.run.stack.mongodb_url, serverSelectionTimeoutMS=1000)
        deadline = time.monotonic() + LOSING_SECONDS
        with client:
            db = client[self.run.stack.config.mongodb_database]
            while time.monotonic() < deadline:
                try:
                    going = self._look(db)
                except PyMongoError:
                    going = True  # the database restarting: what is held may still be lost
                try:
                    if self._ready and self._may_lose():
                        for recovery in self._ready:
                            self._lose(recovery)
                        self._ready = []
                except BaseException as error:
                    self.errors.append(error)
                    return
                if self._outage is not None and self._ready:
                    self._outage.waiting.set()
                elif self._outage is not None:
                    self._outage.waiting.clear()
                if not going and not self._ready and not self._striking:
                    return
                time.sleep(0.25)

    def _look(self, db: Any) -> bool:
        """Each recovery whose intent succeeded and whose record back was accepted is ready for its dispute (a dispute
        comes weeks after the payment: never before the billing system holds it); whether any other recovery is
        still going (an intent says `failed` from the request on: the scheduler's recovery says whether it ended)."""
        held = {r.payment_id for r in self._ready}
        undisputed = {r.payment_id: r for r in list(self.run.recoveries) if not r.disputes and r.payment_id not in held}
        within = {"_id": {"$in": list(undisputed)}}
        paid = {d["_id"] for d in db["payment_intents"].find({**within, "status": "succeeded"}, {"_id": 1})}
        accepted = {d["_id"] for d in db["record_backs"].find({**within, "status": "accepted"}, {"_id": 1})}
        ended = {d["_id"] for d in db["recoveries"].find({**within, "status": {"$in": ["failed", "cancelled"]}})}
        going = False
        for payment_id, recovery in undisputed.items():
            if payment_id in paid and payment_id in accepted:
                self._ready.append(recovery)
            elif payment_id not in ended:
                going = True
        return going

    def _may_lose(self) -> bool:
        outage = self._outage
        return outage is None or not self._striking or outage.now.is_set() or outage.passed.is_set()

    def _lose(self, recovery: Recovery) -> None:
        charge = self.run.successful_charges(recovery)[0]  # a second one is invariant 2's to report
        closed = close_dispute(self.run.stack, charge["payment_intent"])
        in_outage = self._outage is not None and self._outage.now.is_set()
        door = self._doors[recovery.merchant]
        striking = self._striking or self._whole_run
        dispute = LostDispute(recovery, closed["id"], int(closed["amount"]), door, striking, in_outage)
        events = [e for e in self._book()["events"] if e["data"]["object"].get("id") == dispute.dispute_id]
        dispute.event_id = next(e["id"] for e in events if e["type"] == CLOSED)
        dispute.opened_event_id = next(e["id"] for e in events if e["type"] == OPENED)
        recovery.disputes.append(dispute.dispute_id)
        self.lost.append(dispute)
        # Delivered once more at once, beside Stripe's own delivery: intake takes two copies at the same moment.
        url = f"{self.run.stack.stripe_url}/_sandbox/events/{dispute.event_id}/resend"
        sending = threading.Thread(target=httpx.post, args=(url,), kwargs={"timeout": 30}, daemon=True)
        sending.start()
        self._sending.append(sending)

    def _wait_until_taken(self) -> None:
        """Until intake took (2xx) each lost dispute's closing and opening from Stripe's own deliveries, at most
        TAKEN_WAIT_SECONDS: one that was answered 5xx to the last (the database down) waits for Stripe's next
        delivery, over a minute later at the end of its schedule. The replay after it must then be a duplicate (a
        dispute still not taken by then is replayed anyway, and its `applied` is the violation it is)."""
        deadline = time.monotonic() + TAKEN_WAIT_SECONDS
        while time.monotonic() < deadline:
            book = self._book()
            if all(
                any(answer in TAKEN for answer in self._answers(d, book, event))
                for d in self.lost
                for event in (d.event_id, d.opened_event_id)
            ):
                return
            time.sleep(0.5)

    def _send_again(self, dispute: LostDispute, event_id: str) -> str:
        """Stripe delivers the event again (a replay): intake's answer at the dispute's door, once it answers."""
        httpx.post(f"{self.run.stack.stripe_url}/_sandbox/events/{event_id}/resend", timeout=30)
        last = self._answers(dispute, self._book(), event_id)[-1]
        assert last != NO_ANSWER and not last.startswith("HTTP 5"), f"{dispute.dispute_id}: intake answered {last}"
        return last

    # ---- looking --------------------------------------------------------------------------------------------

    def _book(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.run.stack.stripe_url}/_sandbox/events", timeout=10).json())

    def _answers(self, dispute: LostDispute, book: dict[str, Any], event_id: str | None = None) -> list[str]:
        """Intake's answers to the deliveries of the dispute's closing (or `event_id`) at its door, in order: a
        2xx's outcome (`applied`, `duplicate`, `ignored`), else `HTTP <status>` or `no answer`."""
        answers = []
        for d in book["deliveries"]:
            if d["event"] != (event_id or dispute.event_id) or d["url"] != dispute.door:
                continue
            if d.get("status") is None:
                answers.append(NO_ANSWER)
            elif 200 <= d["status"] < 300:
                answers.append(str(json.loads(d["answer"]).get("outcome")))
            else:
                answers.append(f"HTTP {d['status']}")
        return answers

    def _refunds(self, db: Any) -> dict[str, list[dict[str, Any]]]:
        """The executor's refund records (a lost dispute's record back) of the batch's payments, by payment."""
        ids = [d.recovery.payment_id for d in self.lost]
        found = defaultdict(list)
        for record in db["record_backs"].find({"payment_id": {"$in": ids}, "dispute_id": {"$ne": None}}):
            found[record["payment_id"]].append(record)
        return found

    def _refunds_settled(self) -> bool:
        """Each dispute on a payment billed by Chargebee has its refund record accepted."""
        expected = sum(1 for d in self.lost if d.recovery.merchant == CHARGEBEE)
        try:
            client, db = self.run.database()
            with client:
                refunds = self._refunds(db)
        except PyMongoError:
            return False
        return sum(r["status"] == "accepted" for records in refunds.values() for r in records) >= expected

    def _openings_counted(self) -> bool:
        """Each disputed recovery's `disputes_opened`: its disputes the dispatcher raised a `dispute_opened` for
        (claimed), by our dispute ids the intents keep. Read again at every look: the settling waits for them."""
        try:
            client, db = self.run.database()
            with client:
                opened, after_loss = self._opened_claims(db)
        except PyMongoError:
            return False
        for d in self.lost:
            d.recovery.disputes_opened = sum(1 for k in opened if k == (d.recovery.payment_id, d.dispute_id))
        self.run.tally.update(
            disputes_opened_told=sum(d.recovery.disputes_opened for d in self.lost),
            # Openings intake took after the loss (kept, nothing emitted), and ones the dispatcher dropped.
            disputes_opened_after_loss=after_loss,
            disputes_opened_overtaken=sum(1 for d in self.lost) - after_loss - len(opened),
        )
        return True

    def _opened_claims(self, db: Any) -> tuple[list[tuple[str, str]], int]:
        """(payment, Stripe's dispute id) of each `dispute_opened` the dispatcher claimed for a lost dispute; how
        many lost disputes the intents say were never told opened."""
        ids = [d.recovery.payment_id for d in self.lost]
        ours, never_opened = {}, 0
        for intent in db["payment_intents"].find({"_id": {"$in": ids}}, {"disputes": 1}):
            for kept in intent.get("disputes") or []:
                key = idempotent_event_id(kept["dispute_id"], DISPUTE_OPENED)
                ours[key] = (intent["_id"], kept["connector_dispute_id"])
                never_opened += DISPUTE_OPENED not in (kept.get("emitted") or [])
        claims = db["webhook_claims"].find({"payment_id": {"$in": ids}, "idempotent_event_id": {"$in": list(ours)}})
        return [ours[c["idempotent_event_id"]] for c in claims], never_opened

    def _chargebee_refunds(self, invoice_id: str) -> list[list[int]]:
        """Each successful payment the Chargebee sandbox holds against the invoice (the failed one that made the
        recovery is listed too): the amounts refunded of it."""
        assert self._chargebee is not None
        listed = self._chargebee._chargebee("GET", f"/api/v2/invoices/{invoice_id}/payments", None)["list"]
        paid = [p["transaction"] for p in listed if p["transaction"]["status"] == "success"]
        return [[r["txn_amount"] for r in p.get("linked_refunds") or []] for p in paid]

    # ---- the invariant -------------------------------------------------------------------------------------

    def lost_once(self, run: FaultRun, ledger: list[dict[str, Any]]) -> list[str]:
        found = [
            f"{r.payment_id} ({r.kind}): recovered, and no dispute was lost on it (the harness never got to it)"
            for r in run.recoveries
            if run.successful_charges(r, ledger) and not r.disputes
        ]
        book = self._book()
        client, db = run.database()
        with client:
            ids = [d.recovery.payment_id for d in self.lost]
            intents = {i["_id"]: i for i in db["payment_intents"].find({"_id": {"$in": ids}}, {"disputes": 1})}
            refunds = self._refunds(db)
        told_types = (DISPUTE_OPENED, DISPUTE_LOST)
        webhooks = [w for w in run.webhook_deliveries() if (w.get("json") or {}).get("event_type") in told_types]
        for d in self.lost:
            found += self._applied_once(d, book, intents.get(d.recovery.payment_id) or {})
            found += self._merchant_told(d, webhooks)
            found += self._refund_recorded(d, refunds.get(d.recovery.payment_id, []))
        return found

    def _applied_once(self, d: LostDispute, book: dict[str, Any], intent: dict[str, Any]) -> list[str]:
        """Non-2xx answers are the fault's (Stripe delivers again); every 2xx one takes the dispute, once at most."""
        found = []
        answers = self._answers(d, book)
        where = f"{d.recovery.payment_id}: dispute {d.dispute_id}"
        if answers.count("applied") > 1:
            found.append(f"{where} applied by intake {answers.count('applied')} times: {answers}")
        answered = [a for a in answers if not unanswered(a)]
        if not answered or set(answered) - set(TAKEN):
            found.append(f"{where}: intake's answers {answers}, expected `applied` (once at most) or `duplicate`")
        if d.late_answer != "duplicate":
            found.append(f"{where}: Stripe's delivery after the strike answered {d.late_answer!r}, expected duplicate")
        opening = self._answers(d, book, d.opened_event_id)
        if opening.count("applied") > 1 or not {a for a in opening if not unanswered(a)} <= set(TAKEN):
            found.append(f"{where}: intake's answers to its opening {opening}, expected `applied` once at most")
        if all(map(unanswered, opening)):
            found.append(f"{where}: its opening never answered 2xx: {opening}")
        if d.late_opening_answer != "duplicate":
            found.append(f"{where}: its opening delivered after the loss answered {d.late_opening_answer!r}")
        kept = [k for k in intent.get("disputes") or [] if k.get("connector_dispute_id") == d.dispute_id]
        if len(kept) != 1:
            found.append(f"{where}: the intent keeps it {len(kept)} times, expected once")
        elif (kept[0].get("status"), kept[0].get("emitted")) not in [(DISPUTE_LOST, told) for told in TOLD]:
            found.append(f"{where}: the intent keeps it {kept[0].get('status')}, told {kept[0].get('emitted')}")
        return found

    def _merchant_told(self, d: LostDispute, webhooks: list[dict[str, Any]]) -> list[str]:
        objects = [w["json"]["content"]["object"] for w in webhooks]
        mine = [o for o in objects if o.get("payment_id") == d.recovery.payment_id]
        wrong = [o for o in mine if (o.get("connector_dispute_id"), o.get("amount")) != (d.dispute_id, str(d.amount))]
        if wrong:
            return [f"{d.recovery.payment_id}: a dispute webhook names {wrong}, expected {d.dispute_id} for {d.amount}"]
        return []

    def _refund_recorded(self, d: LostDispute, records: list[dict[str, Any]]) -> list[str]:
        where = f"{d.recovery.payment_id}: dispute {d.dispute_id}"
        if self.run.merchants[d.recovery.merchant].billing != CHARGEBEE:
            # Hyperswitch's record-back body has no refund: no record at all (domain/dispute_refunds.py).
            return [f"{where}: {len(records)} refund record(s) of a custombilling payment"] if records else []
        found = []
        if [r["status"] for r in records] != ["accepted"]:
            found.append(f"{where}: refund records {[r['status'] for r in records]}, expected one accepted")
        refunded = self._chargebee_refunds(d.recovery.reference)
        if refunded != [[d.amount]]:
            found.append(
                f"{where}: payments at Chargebee refunded {refunded}, expected one payment, one refund of {d.amount}"
            )
        return found


def unanswered(answer: str) -> bool:
    """A delivery intake did not take (no answer, or not 2xx): Stripe delivers the event again."""
    return answer == NO_ANSWER or answer.startswith("HTTP ")

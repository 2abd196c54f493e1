"""In-memory stand-ins for intake's repositories, with the rules of the MongoDB ones (one intent per invoice,
applied message ids, outcomes that never overwrite a final status, versioned profiles and connector accounts),
and intake built around them for FastStream's TestRabbitBroker and FastAPI's test client."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpx

from recovery_contracts.payments import IntentStatus
from recovery_intake.app import build_service
from recovery_intake.dependencies import Document, IntakeAdapters, IntentExists, OutcomeRecorded
from recovery_intake.domain.api_keys import hash_api_key
from recovery_intake.domain.audit import EVERY_ENTRY, AuditEntry, AuditFilter
from recovery_intake.domain.card_backfill import SAVED_CARD_DAYS, SavedCard
from recovery_intake.domain.intent import FINAL, Intent, IntentChange
from recovery_intake.domain.webhook_secrets import new_whsec_secret
from recovery_intake.handlers.billing_events import TransactionReader
from recovery_intake.settings import IntakeSettings
from recovery_runtime.bus import AlreadyApplied
from recovery_runtime.secrets import SecretBox
from recovery_runtime.service import Service
from recovery_runtime.testing import FixedClock, InMemoryPaymentFences, InMemoryUnitOfWork, RecordingPublisher
from recovery_runtime.unit_of_work import Transaction

MERCHANT = "merchant_1"
PROFILE = "pro_1"
BILLING_ACCOUNT = "mca_billing_1"
PAYMENT_ACCOUNT = "mca_payment_1"
API_KEY = "snd_test_key"
ADMIN_KEY = "test_admin_key"
SETTINGS = IntakeSettings(admin_api_key=ADMIN_KEY, cell_id="12345", rate_limit_per_second=0)


def _replace_version(documents: dict[str, Document], doc: Document, expected_version: int) -> bool:
    """The repositories' compare-and-set on `version`."""
    stored = documents.get(doc["_id"])
    if stored is None or stored["version"] != expected_version:
        return False
    documents[doc["_id"]] = doc
    return True


def changed_concurrently(documents: dict[str, Document], doc_id: str, repository: Any) -> None:
    """`repository.save` finds `doc_id` saved meanwhile by another instance (its version one higher)."""
    stored, save = documents[doc_id], repository.save

    async def save_after_a_concurrent_change(doc: Document, expected_version: int, tx: Transaction) -> bool:
        documents[doc_id] = {**stored, "version": stored["version"] + 1}
        return bool(await save(doc, expected_version, tx))

    repository.save = save_after_a_concurrent_change


class FakeIntents:
    def __init__(self) -> None:
        self.intents: dict[str, Intent] = {}
        self.applied: dict[str, list[str]] = {}
        # Run before the next `add` checks for an existing intent: another instance's request that wins the race.
        self.before_next_add: Callable[[], None] | None = None

    def of_invoice(self, merchant_id: str, reference: str) -> Intent | None:
        return next(
            (i for i in self.intents.values() if (i.merchant_id, i.merchant_reference_id) == (merchant_id, reference)),
            None,
        )

    async def add(self, change: IntentChange, tx: Transaction, *, applied: str | None = None) -> None:
        if self.before_next_add is not None:
            race, self.before_next_add = self.before_next_add, None
            race()
        intent = change.intent
        if self.of_invoice(intent.merchant_id, intent.merchant_reference_id) is not None:
            raise IntentExists(intent.merchant_reference_id)
        self.intents[intent.payment_id] = intent
        self.applied[intent.payment_id] = [applied] if applied is not None else []
        for message in change.messages:
            tx.emit(message)
        if change.messages:
            tx.embed("payment_intents", intent.payment_id, intent.modified_at)

    async def by_reference(
        self, merchant_id: str, reference: str, tx: Transaction, *, applying: str | None = None
    ) -> Intent | None:
        intent = self.of_invoice(merchant_id, reference)
        if intent is not None and applying in self.applied[intent.payment_id]:
            raise AlreadyApplied(applying)
        return intent

    async def save(self, change: IntentChange, tx: Transaction, *, applied: str | None = None) -> None:
        self.intents[change.intent.payment_id] = change.intent
        if applied is not None:
            self.applied[change.intent.payment_id].append(applied)
        for message in change.messages:
            tx.emit(message)

    async def open_with_tokens(
        self, merchant_id: str, cards: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[str]]:
        found: dict[tuple[str, str], list[str]] = {}
        for i in self.intents.values():
            if i.merchant_id != merchant_id or i.status in FINAL:
                continue
            for token in i.snapshot.tokens:
                card = (str(i.snapshot.connector_customer_id), token.token)
                if card in cards:
                    found.setdefault(card, []).append(i.merchant_reference_id)
        return found

    async def get(self, merchant_id: str, payment_id: str, profile_id: str | None = None) -> Intent | None:
        intent = self.intents.get(payment_id)
        if intent is None or intent.merchant_id != merchant_id or profile_id not in (None, intent.profile_id):
            return None
        return intent

    async def record_outcome(
        self, payment_id: str, status: IntentStatus, payment_object: Document, now: datetime, applied: str
    ) -> OutcomeRecorded:
        intent = self.intents.get(payment_id)
        if intent is None:
            return OutcomeRecorded.UNKNOWN_INTENT
        if applied in self.applied[payment_id]:
            return OutcomeRecorded.DUPLICATE
        self.applied[payment_id].append(applied)
        changed = intent.with_outcome(status, payment_object, now)
        if changed is None:
            return OutcomeRecorded.KEPT
        self.intents[payment_id] = changed
        return OutcomeRecorded.APPLIED


class FakeMerchants:
    def __init__(self) -> None:
        self.merchants: dict[str, Document] = {}

    async def get(self, merchant_id: str) -> Document | None:
        return self.merchants.get(merchant_id)

    async def add(self, doc: Document) -> None:
        self.merchants[doc["_id"]] = doc


class FakeProfiles:
    def __init__(self) -> None:
        self.profiles: dict[str, Document] = {}

    async def get(self, merchant_id: str, profile_id: str, tx: Transaction | None = None) -> Document | None:
        doc = self.profiles.get(profile_id)
        return dict(doc) if doc is not None and doc["merchant_id"] == merchant_id else None

    async def add(self, doc: Document, tx: Transaction) -> None:
        self.profiles[doc["_id"]] = doc

    async def count(self, merchant_id: str) -> int:
        return sum(1 for p in self.profiles.values() if p["merchant_id"] == merchant_id)

    async def save(self, doc: Document, expected_version: int, tx: Transaction) -> bool:
        return _replace_version(self.profiles, doc, expected_version)

    async def with_secrets_to_retire(self, now: datetime, limit: int = 500) -> list[Document]:
        due = [p for p in self.profiles.values() if p.get("standard_webhooks_retire_at") is not None]
        return [p for p in due if p["standard_webhooks_retire_at"] <= now][:limit]


class FakeApiKeys:
    def __init__(self) -> None:
        self.keys: dict[str, Document] = {}
        # Every digest looked up: what the database would have been asked.
        self.lookups: list[str] = []

    async def by_digest(self, digest: str) -> Document | None:
        self.lookups.append(digest)
        return next((k for k in self.keys.values() if k["digest"] == digest), None)

    async def get(self, merchant_id: str, key_id: str) -> Document | None:
        key = self.keys.get(key_id)
        return key if key is not None and key["merchant_id"] == merchant_id else None

    async def active(self, merchant_id: str, limit: int, skip: int) -> list[Document]:
        mine = [k for k in self.keys.values() if k["merchant_id"] == merchant_id and not k["revoked"]]
        return sorted(mine, key=lambda k: k["created"], reverse=True)[skip : skip + limit]

    async def count_active(self, merchant_id: str, now: datetime) -> int:
        mine = [k for k in self.keys.values() if k["merchant_id"] == merchant_id and not k["revoked"]]
        return sum(1 for k in mine if k.get("expires_at") is None or k["expires_at"] > now)

    async def add(self, doc: Document) -> None:
        self.keys[doc["_id"]] = doc

    async def update(self, key: Document, changes: Document) -> Document | None:
        stored = await self.get(key["merchant_id"], key["_id"])
        if stored is None or stored["revoked"]:
            return None
        stored.update(changes)
        return stored

    async def revoke(self, merchant_id: str, key_id: str, now: datetime) -> list[str]:
        key = await self.get(merchant_id, key_id)
        if key is None or key["revoked"]:
            return []
        key.update(revoked=True, revoked_at=now)
        revoked, seen, frontier = [key_id], {key_id}, [key_id]
        while frontier:
            minted = [k for k in self.keys.values() if k.get("created_by_key") in frontier and k["_id"] not in seen]
            frontier = [k["_id"] for k in minted]
            seen.update(frontier)
            for k in minted:
                if not k["revoked"]:
                    k.update(revoked=True, revoked_at=now, revoked_with=key_id)
                    revoked.append(k["_id"])
        return revoked


class FakeConnectorAccounts:
    def __init__(self) -> None:
        self.accounts: dict[str, Document] = {}

    async def get(
        self, merchant_id: str, account_id: str, *, profile_id: str | None = None, tx: Transaction | None = None
    ) -> Document | None:
        account = self.accounts.get(account_id)
        if account is None or account["merchant_id"] != merchant_id or profile_id not in (None, account["profile_id"]):
            return None
        return account

    async def add(self, doc: Document, tx: Transaction) -> None:
        self.accounts[doc["_id"]] = doc

    async def save(self, doc: Document, expected_version: int, tx: Transaction) -> bool:
        return _replace_version(self.accounts, doc, expected_version)


class FakeSavedCards:
    """The MongoDB repository's rules: a card's fields merge over earlier uploads', a history given replaces the
    one kept, and a card is gone `SAVED_CARD_DAYS` after its latest upload (the TTL index)."""

    def __init__(self, clock: FixedClock) -> None:
        self.cards: dict[tuple[str, str, str], SavedCard] = {}
        self._clock = clock

    async def get(self, merchant_id: str, customer_id: str, token: str) -> SavedCard | None:
        card = self.cards.get((merchant_id, customer_id, token))
        if card is None or card.uploaded_at + timedelta(days=SAVED_CARD_DAYS) <= self._clock.now():
            return None
        return card

    async def save(self, merchant_id: str, cards: Sequence[SavedCard]) -> None:
        for card in cards:
            key = (merchant_id, card.customer_id, card.token)
            kept = self.cards.get(key)
            if kept is not None:
                prior = kept.prior_retries if card.prior_retries is None else card.prior_retries
                card = replace(card, card={**kept.card, **card.card}, prior_retries=prior)
            self.cards[key] = card

    async def of_customer(self, merchant_id: str, customer_id: str, limit: int) -> list[SavedCard]:
        found = [c for (m, customer, _), c in self.cards.items() if (m, customer) == (merchant_id, customer_id)]
        now = self._clock.now()
        kept = [card for card in found if card.uploaded_at + timedelta(days=SAVED_CARD_DAYS) > now]
        return sorted(kept, key=lambda card: card.token)[:limit]

    async def forget(self, merchant_id: str, customer_id: str, tokens: Collection[str]) -> None:
        for token in tokens:
            self.cards.pop((merchant_id, customer_id, token), None)


@dataclass
class Intake:
    """Intake on in-memory adapters, with a merchant, a profile, an API key and the two connector accounts a
    recovery needs (`tenant`), as `recovery demo` would have set them up."""

    service: Service
    adapters: IntakeAdapters
    publisher: RecordingPublisher
    intents: FakeIntents
    merchants: FakeMerchants
    profiles: FakeProfiles
    api_keys: FakeApiKeys
    connector_accounts: FakeConnectorAccounts
    unit_of_work: InMemoryUnitOfWork
    clock: FixedClock
    saved_cards: FakeSavedCards

    def headers(self) -> dict[str, str]:
        return {"api-key": API_KEY, "x-profile-id": PROFILE}


def http_client(svc: Intake, *, address: str = "127.0.0.1", headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """A client of intake's HTTP API over ASGI (no server), from the client address `address`."""
    transport = httpx.ASGITransport(app=svc.service.app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://intake", headers=headers)


class FakeAuditLog:
    """The audit trail's entries in memory, newest first as the MongoDB adapter pages them."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    async def page(
        self, merchant_id: str | None, limit: int, after: tuple[datetime, str] | None, where: AuditFilter = EVERY_ENTRY
    ) -> list[AuditEntry]:
        mine = sorted(
            (e for e in self.entries if e.actor.merchant_id == merchant_id and where.matches(e)),
            key=lambda e: (e.at, e.entry_id),
            reverse=True,
        )
        if after is not None:
            mine = [e for e in mine if (e.at, e.entry_id) < after]
        return mine[:limit]


def intake(*, recurly: TransactionReader | None = None, **settings: object) -> Intake:
    """`settings`: overrides of `SETTINGS`; `recurly`: the Recurly API its webhooks' transactions are read from
    (else the real client, through the egress policy)."""
    publisher = RecordingPublisher()
    intents, merchants, profiles = FakeIntents(), FakeMerchants(), FakeProfiles()
    api_keys, accounts = FakeApiKeys(), FakeConnectorAccounts()
    unit_of_work, clock = InMemoryUnitOfWork(publisher), FixedClock()
    saved_cards = FakeSavedCards(clock)
    adapters = IntakeAdapters(
        intents=intents,
        merchants=merchants,
        profiles=profiles,
        api_keys=api_keys,
        connector_accounts=accounts,
        unit_of_work=unit_of_work,
        clock=clock,
        saved_cards=saved_cards,
        payment_fences=InMemoryPaymentFences(),
        audit=FakeAuditLog(),
        publisher=publisher,
    )
    service = build_service(SETTINGS.model_copy(update=settings), adapters, recurly=recurly)
    built = Intake(
        service, adapters, publisher, intents, merchants, profiles, api_keys, accounts, unit_of_work, clock, saved_cards
    )
    _tenant(built)
    return built


def _tenant(built: Intake) -> None:
    now = built.clock.now()
    built.merchants.merchants[MERCHANT] = {"_id": MERCHANT, "merchant_name": "Test merchant", "created_at": now}
    built.profiles.profiles[PROFILE] = {
        "_id": PROFILE,
        "merchant_id": MERCHANT,
        "profile_name": "default",
        "revenue_recovery_retry_algorithm_type": "cascading",
        "standard_webhooks_secrets": [SecretBox.from_settings(SETTINGS).seal(new_whsec_secret())],
        "version": 1,
        "created_at": now,
    }
    # As stored before keys had scopes: no `scopes`, no `created_by_key`.
    built.api_keys.keys["key_1"] = {
        "_id": "key_1",
        "merchant_id": MERCHANT,
        "name": "first",
        "prefix": API_KEY[:12],
        "digest": hash_api_key(API_KEY, SETTINGS.api_key_hash_secret),
        "revoked": False,
        "created": now,
        "expiration": "never",
        "expires_at": None,
    }
    for account_id, kind, name in (
        (BILLING_ACCOUNT, "billing_processor", "chargebee"),
        (PAYMENT_ACCOUNT, "payment_processor", "stripe"),
    ):
        built.connector_accounts.accounts[account_id] = {
            "_id": account_id,
            "merchant_id": MERCHANT,
            "profile_id": PROFILE,
            "connector_type": kind,
            "connector_name": name,
            "disabled": False,
            "body": {},
        }

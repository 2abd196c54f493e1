"""The sandbox account's state: its collections behind one lock, the state file every mutation is written to before
it is answered, the saved results of idempotent requests, and the armed faults. The objects themselves are made in
customers.py and payment_intents.py (and, kept in the same state, disputes.py and files.py)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery_sandbox.stripe.errors import StripeError
from recovery_sandbox.stripe.faults import Fault, FaultBook

# Stripe keeps idempotency results for at least 24 hours; a key older than that starts afresh.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
STATE_FILE = "stripe-sandbox.json"

Response = tuple[int, dict[str, Any]]


def account_of(api_key: str) -> str:
    """Idempotency keys are scoped per account; the state file keeps a digest, never the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class IdempotencySlot:
    """Where the result of an idempotent request is saved, in the same commit as its effect."""

    scoped_key: str
    key: str
    fingerprint: str
    request_id: str


class AccountState:
    """All state behind one lock; every mutation is written to the state file before it is answered."""

    def __init__(self, state_dir: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._path = state_dir / STATE_FILE if state_dir is not None else None
        self.faults = FaultBook()
        self._in_flight: set[str] = set()
        self._reset_collections()
        if self._path is not None and self._path.exists():
            self._load()

    # ----- persistence -------------------------------------------------------------------------------

    def _reset_collections(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.card_numbers: dict[str, str] = {}  # pm id -> test card number: what a charge on it does
        # Payment methods detached from their customer: Stripe refuses to charge or attach them again.
        self.detached: list[str] = []
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        # Disputes on charges (disputes.py), by id.
        self.disputes: dict[str, dict[str, Any]] = {}
        # Uploaded files (files.py), by id: the File object, its owner and its bytes' SHA-256 (never the bytes).
        self.files: dict[str, dict[str, Any]] = {}
        self.ledger: list[dict[str, Any]] = []
        self.idempotency: dict[str, dict[str, Any]] = {}

    def _load(self) -> None:
        assert self._path is not None
        saved = json.loads(self._path.read_text())
        self.customers = saved["customers"]
        self.payment_methods = saved["payment_methods"]
        self.card_numbers = saved["card_numbers"]
        self.detached = saved.get("detached", [])
        self.payment_intents = saved["payment_intents"]
        self.charges = saved["charges"]
        self.disputes = saved.get("disputes", {})
        self.files = saved.get("files", {})
        self.ledger = saved["ledger"]
        self.idempotency = saved["idempotency"]

    def _persist(self) -> None:
        if self._path is None:
            return
        document = {
            "customers": self.customers,
            "payment_methods": self.payment_methods,
            "card_numbers": self.card_numbers,
            "detached": self.detached,
            "payment_intents": self.payment_intents,
            "charges": self.charges,
            "disputes": self.disputes,
            "files": self.files,
            "ledger": self.ledger,
            "idempotency": self.idempotency,
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump(document, fh)
            fh.flush()
            # Crash tests kill the sandbox right after a charge: the charge must be on disk before the answer.
            os.fsync(fh.fileno())
        os.replace(tmp, self._path)

    def reset(self) -> None:
        with self._lock:
            self._reset_collections()
            self.faults.clear()
            self._in_flight.clear()
            self._persist()

    def _commit(self, status: int, body: dict[str, Any], slot: IdempotencySlot | None) -> Response:
        if slot is not None:
            self.idempotency[slot.scoped_key] = {
                "fingerprint": slot.fingerprint,
                "status": status,
                "body": body,
                "created": self._clock(),
                "request_id": slot.request_id,
            }
        self._persist()
        return status, body

    # ----- idempotency -------------------------------------------------------------------------------

    def begin_idempotent(self, slot: IdempotencySlot) -> dict[str, Any] | None:
        """The saved result to replay, or None after marking the key in flight; raises on misuse."""
        with self._lock:
            saved = self.idempotency.get(slot.scoped_key)
            if saved is not None and saved["created"] < self._clock() - IDEMPOTENCY_TTL_SECONDS:
                del self.idempotency[slot.scoped_key]
                saved = None
            if saved is not None:
                if saved["fingerprint"] != slot.fingerprint:
                    raise StripeError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they "
                        f"were first used with. Try using a key other than '{slot.key}' if you meant to "
                        "execute a different request.",
                    )
                return saved
            if slot.scoped_key in self._in_flight:
                raise StripeError(
                    409,
                    "invalid_request_error",
                    "There is currently another in-progress request using this Stripe-Idempotency-Key. "
                    "Please try again later.",
                    code="idempotency_key_in_use",
                )
            self._in_flight.add(slot.scoped_key)
            return None

    def end_idempotent(self, slot: IdempotencySlot) -> None:
        with self._lock:
            self._in_flight.discard(slot.scoped_key)

    # ----- faults ------------------------------------------------------------------------------------

    def take_fault(self, *payment_methods: str | None) -> Fault | None:
        with self._lock:
            return self.faults.take(*payment_methods)

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.add(fault)

    def armed_faults(self) -> list[Fault]:
        with self._lock:
            return self.faults.list()

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

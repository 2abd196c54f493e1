"""The sealed values the services store (recovery_cli.sealed_fields): counted per master key id, and re-sealed under
the active key for a master-key rotation (docs/security.md, "Master-key rotation").

A re-seal is read, then write: `plan_reseal` reads every document holding sealed values and re-seals in memory
each value not under the active key (the plaintext never leaves the process); `apply_reseal` writes each document
back with a compare-and-set on its `_id` and the sealed values it read. A service that wrote the document in
between (a new value is sealed with a fresh nonce, so it never equals the one read) wins: the document is counted
as changed meanwhile and left to the next run. Nothing else of a document changes, its version neither: the
plaintexts are the same, so a consumer's copy need not hear of it.

Messages awaiting publish (`outbox_*` collections, the `outbox` field of documents that embed them) and dead letters
carry sealed values too. They are counted, not rewritten: an outbox record is published and removed by its service
within seconds (a relay may be publishing it at that moment), and a message in RabbitMQ cannot be changed in place;
a dead letter leaves when replayed (its consumer then stores what it carries: run the re-seal again) or purged.

The dispatcher's attempt records (`webhook_events`) hold no sealed value, but their request headers held the custom
header values in plaintext until the dispatcher masked them as it records them
(`recovery_dispatcher.domain.outgoing_webhook.recorded_headers`): `mask_recorded_headers` masks those of the records
written before, by the same rule, with the same compare-and-set; the census counts the records still unmasked.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pymongo.database import Database

from recovery_cli.sealed_fields import SEALED_FIELDS, Holds, SealedField, fields_by_collection
from recovery_dispatcher.domain.outgoing_webhook import recorded_headers
from recovery_runtime.secrets import KEY_ID_PATTERN, PREFIX, SecretBox, SecretUnreadable, is_sealed
from recovery_runtime.unit_of_work import OUTBOX_FIELD, embedded_outbox_index

Document = dict[str, Any]

NOT_SEALED = "not sealed"
OUTBOX_PREFIX = "outbox_"
_SEALED_IN_TEXT = re.compile(rf"{re.escape(PREFIX)}({KEY_ID_PATTERN}):".encode())


def key_id_of(value: str) -> str:
    """The master key id a stored string is sealed under, or NOT_SEALED."""
    return value.split(":", 3)[2] if is_sealed(value) else NOT_SEALED


def stored_at(doc: Document, sealed: SealedField) -> Any:
    """What `doc` holds at `sealed.path` (None when absent)."""
    return _at_path(doc, sealed.path)


def _at_path(doc: Document, path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def stored_values(doc: Document, sealed: SealedField) -> list[str]:
    """The strings at `sealed.path` in `doc`: none, one, or each of the list's or of the dict's values (as
    `sealed.holds` says)."""
    return [item for item in _items(stored_at(doc, sealed), sealed.holds) if isinstance(item, str)]


def _items(value: Any, holds: Holds) -> list[Any]:
    if holds is Holds.LIST and isinstance(value, list):
        return value
    if holds is Holds.DICT_VALUES and isinstance(value, dict):
        return list(value.values())
    return [value]


def key_ids_in_body(body: bytes) -> Counter[str]:
    """Sealed values in a message body (JSON), per key id."""
    return Counter(match.decode() for match in _SEALED_IN_TEXT.findall(body))


# ---- counting --------------------------------------------------------------------------------------------------


@dataclass
class Census:
    """Sealed values per key id: `stored` per field (NOT_SEALED: a plain string where a sealed value belongs),
    `awaiting` per place that is not rewritten (an outbox collection, an embedded outbox, a dead-letter queue)."""

    stored: dict[SealedField, Counter[str]]
    awaiting: dict[str, Counter[str]] = field(default_factory=dict)
    # Attempt records whose request headers hold custom values unmasked (None: not scanned).
    unmasked_headers: HeaderScan | None = None

    def outside(self, active_key_id: str) -> Counter[str]:
        """How many values are sealed under each key id other than the active one, everywhere."""
        total: Counter[str] = Counter()
        for counts in (*self.stored.values(), *self.awaiting.values()):
            total.update(other_keys(counts, active_key_id))
        return total


def other_keys(counts: Counter[str], active_key_id: str) -> Counter[str]:
    """The values of `counts` sealed under a key id other than the active one (plain strings aside)."""
    return Counter({key_id: n for key_id, n in counts.items() if key_id not in (active_key_id, NOT_SEALED)})


def take_census(db: Database[Document], *, recorded: bool = True) -> Census:
    """`recorded`: also count the attempt records whose request headers hold custom values unmasked (a scan of
    `webhook_events`, the largest collection)."""
    stored: dict[SealedField, Counter[str]] = {sealed: Counter() for sealed in SEALED_FIELDS}
    for collection, fields in fields_by_collection().items():
        for doc in db[collection].find({}, _projection(fields)):
            for sealed in fields:
                stored[sealed].update(key_id_of(value) for value in stored_values(doc, sealed))
    headers = mask_recorded_headers(db, dry_run=True) if recorded else None
    return Census(stored, awaiting_publish(db), headers)


def awaiting_publish(db: Database[Document]) -> dict[str, Counter[str]]:
    """Sealed values per key id in the messages the services have not published yet, per outbox."""
    places: dict[str, Counter[str]] = {}
    # A collection whose documents embed outgoing messages carries the index the outbox relay scans them by.
    embedded_index = embedded_outbox_index("any").name
    for name in sorted(db.list_collection_names(filter={"type": "collection"})):
        if name.startswith(OUTBOX_PREFIX):
            places[name] = _in_bodies(doc.get("body") for doc in db[name].find({}, {"body": 1}))
        elif any(index["name"] == embedded_index for index in db[name].list_indexes()):
            holders = db[name].find({f"{OUTBOX_FIELD}.created_at": {"$exists": True}}, {OUTBOX_FIELD: 1})
            bodies = (message.get("body") for holder in holders for message in holder.get(OUTBOX_FIELD) or ())
            places[f"{name}.{OUTBOX_FIELD}"] = _in_bodies(bodies)
    return places


def _in_bodies(bodies: Iterable[Any]) -> Counter[str]:
    total: Counter[str] = Counter()
    for body in bodies:
        if isinstance(body, bytes | str):
            total.update(key_ids_in_body(body.encode() if isinstance(body, str) else body))
    return total


# ---- re-sealing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rewrite:
    """One document's sealed fields as read (`before`, the compare-and-set's filter) and re-sealed (`after`)."""

    collection: str
    doc_id: Any
    before: Document
    after: Document
    values: int


@dataclass
class ResealPlan:
    rewrites: list[Rewrite] = field(default_factory=list)
    # Values that cannot be opened, so nothing may be written: (field name, key id) -> count.
    unknown_keys: Counter[tuple[str, str]] = field(default_factory=Counter)
    unreadable: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def blocked(self) -> bool:
        return bool(self.unknown_keys or self.unreadable)


@dataclass
class CollectionOutcome:
    documents: int = 0
    values: int = 0
    # Documents a service wrote between the read and the compare-and-set: left as the service wrote them.
    changed_meanwhile: int = 0

    def count(self, rewrite: Rewrite, *, written: bool) -> None:
        if written:
            self.documents += 1
            self.values += rewrite.values
        else:
            self.changed_meanwhile += 1


def plan_reseal(db: Database[Document], box: SecretBox) -> ResealPlan:
    """Every stored value not under `box`'s active key, re-sealed under it in memory (nothing is written)."""
    plan = ResealPlan()
    for collection, fields in fields_by_collection().items():
        for doc in db[collection].find({}, _projection(fields)):
            rewrite = _rewrite(collection, doc, fields, box, plan)
            if rewrite is not None:
                plan.rewrites.append(rewrite)
    return plan


def apply_reseal(db: Database[Document], plan: ResealPlan) -> dict[str, CollectionOutcome]:
    """Write each planned document by compare-and-set (per collection: what was re-sealed, what changed meanwhile)."""
    if plan.blocked:
        raise ValueError("a plan with values that cannot be opened is never applied")
    outcomes = {collection: CollectionOutcome() for collection in fields_by_collection()}
    for rewrite in plan.rewrites:
        outcomes[rewrite.collection].count(rewrite, written=compare_and_set(db, rewrite))
    return outcomes


def compare_and_set(db: Database[Document], rewrite: Rewrite) -> bool:
    """Write `rewrite.after` if the document still holds `rewrite.before` (False: it changed meanwhile, unwritten)."""
    # `$eq`: the value read is matched as a value; a dict of header values given plainly would be read as operators
    # were a header name to begin with `$`.
    unchanged = {path: {"$eq": value} for path, value in rewrite.before.items()}
    written = db[rewrite.collection].update_one({"_id": rewrite.doc_id, **unchanged}, {"$set": rewrite.after})
    return written.matched_count == 1


def planned_by_collection(plan: ResealPlan) -> dict[str, CollectionOutcome]:
    """What `apply_reseal` would write, in its terms (a dry run)."""
    outcomes = {collection: CollectionOutcome() for collection in fields_by_collection()}
    for rewrite in plan.rewrites:
        outcomes[rewrite.collection].count(rewrite, written=True)
    return outcomes


def _rewrite(
    collection: str, doc: Document, fields: Iterable[SealedField], box: SecretBox, plan: ResealPlan
) -> Rewrite | None:
    before: Document = {}
    after: Document = {}
    count = 0
    for sealed in fields:
        stored = stored_at(doc, sealed)
        resealed = _with_items(stored, sealed.holds, functools.partial(_resealed, sealed=sealed, box=box, plan=plan))
        changed = sum(
            1
            for old, new in zip(_items(stored, sealed.holds), _items(resealed, sealed.holds), strict=True)
            if old != new
        )
        if changed:
            # The whole field as read (a list, a dict of name -> value) is the compare-and-set's condition.
            before[sealed.path] = stored
            after[sealed.path] = resealed
            count += changed
    return Rewrite(collection, doc["_id"], before, after, count) if count else None


def _with_items(stored: Any, holds: Holds, reseal: Callable[[str], str]) -> Any:
    """`stored` with each of its strings passed through `reseal`, in the same shape (the dict's names kept)."""

    def one(item: Any) -> Any:
        return reseal(item) if isinstance(item, str) else item

    if holds is Holds.LIST and isinstance(stored, list):
        return [one(item) for item in stored]
    if holds is Holds.DICT_VALUES and isinstance(stored, dict):
        return {name: one(item) for name, item in stored.items()}
    return one(stored)


def _resealed(value: str, sealed: SealedField, box: SecretBox, plan: ResealPlan) -> str:
    key_id = key_id_of(value)
    if key_id in (box.active_key_id, NOT_SEALED):
        return value
    if key_id not in box.keys:
        plan.unknown_keys[(sealed.name, key_id)] += 1
        return value
    try:
        return box.reseal(value)
    except SecretUnreadable:
        plan.unreadable[(sealed.name, key_id)] += 1
        return value


def _projection(fields: Iterable[SealedField]) -> dict[str, int]:
    return {sealed.path: 1 for sealed in fields}


# ---- recorded request headers ------------------------------------------------------------------------------------

RECORDS = "webhook_events"
# An attempt's request headers as its record keeps them: [[name, value], ...] (event_documents.attempt_fields); an
# initial record whose event was not attempted yet has `request: null`.
RECORDED_HEADERS = "request.headers"
RECORDS_BATCH = 1000


@dataclass
class HeaderScan(CollectionOutcome):
    """`webhook_events` scanned for custom header values recorded unmasked: `documents` and `values` are the records
    and values masked (or, in a dry run and in the census, still unmasked), of `read` records."""

    read: int = 0
    # Records whose request headers are not a list of [name, value] strings: left as they are, reported.
    other_shape: int = 0


def mask_recorded_headers(
    db: Database[Document], *, dry_run: bool = False, batch_size: int = RECORDS_BATCH
) -> HeaderScan:
    """Mask the custom header values the attempt records hold unmasked, record by record by compare-and-set on the
    headers read (`dry_run`: count them, write nothing)."""
    scan = HeaderScan()
    for rewrite in unmasked_records(db, scan, batch_size):
        scan.count(rewrite, written=dry_run or compare_and_set(db, rewrite))
    return scan


def unmasked_records(db: Database[Document], scan: HeaderScan, batch_size: int = RECORDS_BATCH) -> Iterator[Rewrite]:
    """Each record whose request headers hold a custom value unmasked, with its headers as read and as
    `recorded_headers` masks them; `scan` counts the records read and those of another shape.

    `webhook_events` has no secondary index: the records are read in `_id` order, a batch per query (no cursor is
    held open meanwhile), the request headers only."""
    after: Any = None
    while True:
        query = {} if after is None else {"_id": {"$gt": after}}
        batch = list(db[RECORDS].find(query, {RECORDED_HEADERS: 1}).sort("_id", 1).limit(batch_size))
        for doc in batch:
            scan.read += 1
            stored = _at_path(doc, RECORDED_HEADERS)
            pairs = _header_pairs(stored)
            if pairs is None:
                if stored is not None:
                    scan.other_shape += 1
                continue
            masked = [list(pair) for pair in recorded_headers(pairs)]
            values = sum(1 for old, new in zip(pairs, masked, strict=True) if old[1] != new[1])
            if values:
                yield Rewrite(RECORDS, doc["_id"], {RECORDED_HEADERS: stored}, {RECORDED_HEADERS: masked}, values)
        if len(batch) < batch_size:
            return
        after = batch[-1]["_id"]


def _header_pairs(stored: Any) -> list[tuple[str, str]] | None:
    """Recorded headers as (name, value) pairs, or None when they are absent or of another shape."""
    if not isinstance(stored, list):
        return None
    pairs = []
    for pair in stored:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
            return None
        pairs.append((pair[0], pair[1]))
    return pairs

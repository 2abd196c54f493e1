"""MongoDB client and index declarations: indexes live in code and are created at start-up."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

# MongoDB's IndexNotFound (also answered for a collection that does not exist: NamespaceNotFound).
INDEX_NOT_FOUND = 27
NAMESPACE_NOT_FOUND = 26


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: Sequence[tuple[str, int]]
    name: str
    unique: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    # An index earlier versions created and this one no longer uses: dropped at start-up if present (every
    # index costs each insert; keys are ignored).
    retired: bool = False


def connect(url: str, *, app_name: str) -> AsyncMongoClient[dict[str, Any]]:
    """Every write is acknowledged by a majority of the replica set (`w="majority"`, which overrides a `w` in the
    URL): an attempt's claim, an outbox record or a timer that a failover could roll back would let a charge or a
    message happen twice or never. MongoDB's implicit default is the same on most replica sets; this makes it
    hold on every deployment (arbiters, older servers, a URL that says otherwise)."""
    return AsyncMongoClient(
        url,
        appname=app_name,
        w="majority",
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        retryWrites=True,
        uuidRepresentation="standard",
    )


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]], specs: Iterable[IndexSpec]) -> None:
    for spec in specs:
        if spec.retired:
            try:
                await db[spec.collection].drop_index(spec.name)
            except OperationFailure as error:
                if error.code not in (INDEX_NOT_FOUND, NAMESPACE_NOT_FOUND):
                    raise
            continue
        await db[spec.collection].create_index(list(spec.keys), name=spec.name, unique=spec.unique, **spec.options)


def within(field: str, bounds: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The clauses of `field`'s bounds for an `$and`, one clause per bound: `(comparison, value)` pairs, each of
    `eq`, `lt`, `lte`, `gt`, `gte` (a value that is None is no bound; no bound, no clause). MongoDB plans them on an
    index as the one range they make. Written apart rather than as one operator document because SecantusDB, the
    tests' stand-in, leaves out the documents equal to a `$gte` bound when it plans that document alone on a compound
    index whose key is descending before a further key (as the audit trail's `(merchant_id, at desc, _id desc)`);
    the `$and` form it reads right."""
    return [{field: {f"${comparison}": value}} for comparison, value in bounds if value is not None]

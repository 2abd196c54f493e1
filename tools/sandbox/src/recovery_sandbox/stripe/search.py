"""The subset of Stripe's Search Query Language the sandbox understands, for `/v1/payment_intents/search`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from recovery_sandbox.stripe.errors import StripeError, invalid_request

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<neg>-)?
        (?P<field>metadata\[(?P<mq>['"])(?P<mkey>(?:\\.|(?!(?P=mq)).)*)(?P=mq)\]|[a-z_]+)
        (?P<op>>=|<=|:|>|<|~)
        (?:(?P<q>['"])(?P<sval>(?:\\.|(?!(?P=q)).)*)(?P=q)|(?P<num>-?\d+))
      | (?P<conj>AND|OR)
    )\s*""",
    re.VERBOSE,
)

# The fields Stripe documents as searchable on PaymentIntents.
_STRING_FIELDS = {"currency", "customer", "status"}
_NUMBER_FIELDS = {"amount", "created"}


@dataclass(frozen=True)
class Clause:
    field: str
    metadata_key: str | None
    op: str
    value: str | int
    negated: bool

    def matches(self, obj: Mapping[str, Any]) -> bool:
        if self.metadata_key is not None:
            actual: Any = (obj.get("metadata") or {}).get(self.metadata_key)
        else:
            actual = obj.get(self.field)
        result = _compare(actual, self.op, self.value)
        return not result if self.negated else result


def _compare(actual: Any, op: str, expected: str | int) -> bool:
    if actual is None:
        return False
    if op == ":":
        return str(actual) == str(expected)
    if op == "~":
        return str(expected) in str(actual)
    try:
        a, e = int(actual), int(expected)
    except (TypeError, ValueError):
        return False
    return {">": a > e, "<": a < e, ">=": a >= e, "<=": a <= e}[op]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _query_error(query: str, detail: str) -> StripeError:
    return invalid_request(f"Invalid search query: {query!r}. {detail}", param="query")


def parse_query(query: str) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over PaymentIntent objects; raises Stripe's 400 for what it does not understand."""
    if not query.strip():
        raise _query_error(query, "The query must not be empty.")
    clauses: list[Clause] = []
    conjunctions: set[str] = set()
    pos = 0
    expect_clause = True
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None or match.end() == pos:
            raise _query_error(query, f"Could not parse the query at position {pos}.")
        pos = match.end()
        if match.group("conj"):
            if expect_clause:
                raise _query_error(query, "A conjunction must sit between two clauses.")
            conjunctions.add(match.group("conj"))
            expect_clause = True
            continue
        if not expect_clause:
            raise _query_error(query, "Clauses must be joined with AND or OR.")
        clauses.append(_clause(query, match))
        expect_clause = False
    if expect_clause:
        raise _query_error(query, "The query ends with a conjunction.")
    if len(conjunctions) > 1:
        # Stripe's rule too: a query may use AND or OR, not both.
        raise _query_error(query, "AND and OR cannot be combined in one query.")
    if conjunctions == {"OR"}:
        return lambda obj: any(c.matches(obj) for c in clauses)
    return lambda obj: all(c.matches(obj) for c in clauses)


def _clause(query: str, match: re.Match[str]) -> Clause:
    field = match.group("field")
    op = match.group("op")
    metadata_key = _unescape(match.group("mkey")) if match.group("mkey") is not None else None
    string_value = match.group("sval")
    value: str | int
    if metadata_key is not None:
        field = "metadata"
        if string_value is None or op not in (":", "~"):
            raise _query_error(query, "Metadata values must be quoted strings compared with ':'.")
        value = _unescape(string_value)
    elif field in _STRING_FIELDS:
        if string_value is None or op not in (":", "~"):
            raise _query_error(query, f"Field `{field}` takes a quoted string compared with ':'.")
        value = _unescape(string_value)
    elif field in _NUMBER_FIELDS:
        raw = match.group("num") if match.group("num") is not None else string_value
        try:
            value = int(raw or "")
        except ValueError as exc:
            raise _query_error(query, f"Field `{field}` takes a number.") from exc
        if op == "~":
            raise _query_error(query, f"Field `{field}` cannot be compared with '~'.")
    else:
        raise _query_error(query, f"Field `{field}` is an unsupported search field for resource payment_intents.")
    return Clause(field, metadata_key, op, value, bool(match.group("neg")))

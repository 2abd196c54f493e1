"""`recovery secrets status|reseal|mask-recorded-headers`: which master key seals each stored secret, and re-sealing
them all under the active one (docs/security.md, "Master-key rotation"); masking the custom header values that attempt
records written before the dispatcher masked them still hold (docs/security.md, "Secrets at rest")."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

from recovery_cli.commands.options import (
    Subcommands,
    add_database,
    add_rabbitmq_url,
    fail,
    positive_int,
    rabbitmq_url,
)
from recovery_cli.stack.infrastructure import redact

if TYPE_CHECKING:
    from pymongo import MongoClient

    from recovery_cli.secrets_at_rest import Census, CollectionOutcome, HeaderScan, ResealPlan
    from recovery_runtime.secrets import SecretBox

# status: some value (stored, awaiting publish, dead-lettered) is sealed under a key other than the active one;
# reseal, mask-recorded-headers: some document changed between its read and its write (a service wrote it): run again.
NOT_DONE = 3
MASK_COMMAND = "recovery secrets mask-recorded-headers"


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "secrets",
        help="sealed secrets at rest: count them per master key id, re-seal them under the active key; mask the "
        "custom header values older webhook attempt records hold",
        description="Master keys as the services read them: SECRETS_MASTER_KEYS / SECRETS_ACTIVE_KEY_ID (or "
        "SECRETS_MASTER_KEY / SECRETS_MASTER_KEY_ID). docs/security.md, 'Master-key rotation'.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    status = actions.add_parser(
        "status",
        help="sealed values per master key id, per field, in outboxes (and dead letters); exit 3 while any value "
        "is under a key other than the active one",
    )
    add_database(status)
    status.add_argument(
        "--dead-letters", action="store_true", help="also count the dead-letter queues' messages (RABBITMQ_URL)"
    )
    add_rabbitmq_url(status)
    status.add_argument(
        "--no-recorded-headers",
        dest="recorded_headers",
        action="store_false",
        help="do not scan webhook_events for custom header values recorded unmasked (it reads every record)",
    )
    status.add_argument("--json", action="store_true", help="the counts as one JSON object")
    status.set_defaults(handler=handle_status)

    reseal = actions.add_parser(
        "reseal",
        help="re-seal every stored value not under the active key (compare-and-set per document; safe to run "
        "again, and while the services run); exit 3 when a document changed meanwhile",
    )
    add_database(reseal)
    reseal.add_argument("--dry-run", action="store_true", help="count what would be re-sealed, write nothing")
    reseal.set_defaults(handler=handle_reseal)

    mask = actions.add_parser(
        "mask-recorded-headers",
        help="mask the custom header values in webhook attempt records (webhook_events) written before the "
        "dispatcher masked them, as it masks them now (compare-and-set per record; safe to run again, and while the "
        "services run; needs no master key); exit 3 when a record changed meanwhile",
    )
    add_database(mask)
    mask.add_argument("--dry-run", action="store_true", help="count what would be masked, write nothing")
    mask.add_argument("--batch-size", type=positive_int, default=None, help="records read per query (default 1000)")
    mask.set_defaults(handler=handle_mask_recorded_headers)


def handle_status(args: argparse.Namespace) -> int:
    from recovery_cli.secrets_at_rest import take_census

    box = _master_keys()
    if box is None:
        return 1
    client = _client(args)
    try:
        census = take_census(client[args.database], recorded=args.recorded_headers)
    except Exception as error:
        return fail(f"cannot read MongoDB database {args.database!r}: {error}")
    finally:
        client.close()
    if args.dead_letters:
        url = rabbitmq_url(args)
        try:
            census.awaiting.update(_in_dead_letters(url))
        except Exception as error:
            return fail(f"cannot read the dead letters at {redact(url)}: {type(error).__name__}: {error}")
    print(json.dumps(census_json(census, box)) if args.json else render_census(census, box))
    return NOT_DONE if census.outside(box.active_key_id) else 0


def handle_reseal(args: argparse.Namespace) -> int:
    from recovery_cli.secrets_at_rest import (
        apply_reseal,
        awaiting_publish,
        other_keys,
        plan_reseal,
        planned_by_collection,
    )

    box = _master_keys()
    if box is None:
        return 1
    client = _client(args)
    db = client[args.database]
    try:
        plan = plan_reseal(db, box)
        if plan.blocked:
            return fail(refusal(plan, box))
        outcomes = planned_by_collection(plan) if args.dry_run else apply_reseal(db, plan)
        awaiting = awaiting_publish(db)
    except Exception as error:
        return fail(f"re-seal failed in MongoDB database {args.database!r}: {type(error).__name__}: {error}")
    finally:
        client.close()
    print(render_outcomes(outcomes, box, dry_run=args.dry_run))
    left = {place: n for place, counts in awaiting.items() if (n := other_keys(counts, box.active_key_id).total())}
    if left:
        places = ", ".join(f"{place}: {n}" for place, n in left.items())
        print(
            f"not re-sealed: {sum(left.values())} value(s) under other keys in messages awaiting publish ({places}); "
            "they leave when their service publishes them: check with `recovery secrets status`"
        )
    return NOT_DONE if any(o.changed_meanwhile for o in outcomes.values()) else 0


def handle_mask_recorded_headers(args: argparse.Namespace) -> int:
    from recovery_cli.secrets_at_rest import RECORDS_BATCH, mask_recorded_headers

    client = _client(args)
    try:
        scan = mask_recorded_headers(
            client[args.database], dry_run=args.dry_run, batch_size=args.batch_size or RECORDS_BATCH
        )
    except Exception as error:
        return fail(f"masking failed in MongoDB database {args.database!r}: {type(error).__name__}: {error}")
    finally:
        client.close()
    print(render_mask(scan, dry_run=args.dry_run))
    return NOT_DONE if scan.changed_meanwhile else 0


def render_mask(scan: HeaderScan, *, dry_run: bool) -> str:
    verb = "would mask" if dry_run else "masked"
    lines = [
        f"{'dry run: ' if dry_run else ''}masking custom header values in the webhook attempt records' request headers",
        f"webhook_events           {verb} {scan.values} value(s) in {scan.documents} record(s) of {scan.read} read",
    ]
    if scan.changed_meanwhile:
        lines.append(f"{scan.changed_meanwhile} record(s) changed meanwhile, left as written: run again")
    if scan.other_shape:
        lines.append(f"{scan.other_shape} record(s) with request headers not [name, value] pairs, left as they are")
    return "\n".join(lines)


def render_census(census: Census, box: SecretBox) -> str:
    active = box.active_key_id
    width = max(len(name) for name in (*(s.name for s in census.stored), *census.awaiting))
    lines = [f"master keys: {_keys(box)}"]
    for sealed, counts in census.stored.items():
        lines.append(f"{sealed.name:<{width}}  {sealed.owner:<18}  {_counts(counts, active)}")
    if census.awaiting:
        lines.append("not rewritten (messages awaiting publish, dead letters): they leave when published or replayed")
        lines += [f"{place:<{width + 20}}  {_counts(counts, active)}" for place, counts in census.awaiting.items()]
    outside = census.outside(active)
    if outside:
        lines.append(
            f"{outside.total()} value(s) under keys other than {active} ({_counts(outside, active)}): "
            "run `recovery secrets reseal`, then this again"
        )
    else:
        lines.append(f"every sealed value found is under the active key {active}")
    if census.unmasked_headers is not None:
        lines.append(_unmasked_line(census.unmasked_headers))
    return "\n".join(lines)


def _unmasked_line(scan: HeaderScan) -> str:
    if not scan.documents:
        line = f"webhook_events: no custom header value recorded unmasked ({scan.read} record(s) read)"
    else:
        line = (
            f"webhook_events: {scan.values} custom header value(s) recorded unmasked in {scan.documents} record(s) "
            f"of {scan.read}: run `{MASK_COMMAND}`"
        )
    if scan.other_shape:
        line += f"; {scan.other_shape} record(s) with request headers of another shape"
    return line


def census_json(census: Census, box: SecretBox) -> dict[str, Any]:
    return {
        "active_key_id": box.active_key_id,
        "configured_key_ids": list(box.keys),
        "stored": {sealed.name: dict(counts) for sealed, counts in census.stored.items()},
        "awaiting": {place: dict(counts) for place, counts in census.awaiting.items()},
        "outside_active_key": dict(census.outside(box.active_key_id)),
        "unmasked_recorded_headers": None
        if (scan := census.unmasked_headers) is None
        else {"records": scan.documents, "values": scan.values, "read": scan.read, "other_shape": scan.other_shape},
    }


def render_outcomes(outcomes: dict[str, CollectionOutcome], box: SecretBox, *, dry_run: bool) -> str:
    verb = "would re-seal" if dry_run else "re-sealed"
    lines = [f"{'dry run: ' if dry_run else ''}re-sealing under the active key; master keys: {_keys(box)}"]
    for collection, outcome in outcomes.items():
        line = f"{collection:<24} {verb} {outcome.values} value(s) in {outcome.documents} document(s)"
        if outcome.changed_meanwhile:
            line += f"; {outcome.changed_meanwhile} document(s) changed meanwhile"
        lines.append(line)
    values, documents = sum(o.values for o in outcomes.values()), sum(o.documents for o in outcomes.values())
    lines.append(f"in all: {verb} {values} value(s) in {documents} document(s)")
    changed = sum(o.changed_meanwhile for o in outcomes.values())
    if changed:
        lines.append(f"{changed} document(s) changed meanwhile (a service wrote them), left as written: run again")
    return "\n".join(lines)


def refusal(plan: ResealPlan, box: SecretBox) -> str:
    lines = ["cannot re-seal: nothing was changed"]
    if plan.unknown_keys:
        lines.append(f"sealed under master key ids that are not configured (configured: {_keys(box)}):")
        lines += _per_key_id(plan.unknown_keys)
        lines.append("add those keys to SECRETS_MASTER_KEYS (id:base64,...) as the services have them, and run again")
    if plan.unreadable:
        lines.append("sealed under a configured key id but not decrypting (another key under that id, or altered):")
        lines += _per_key_id(plan.unreadable)
    return "\n".join(lines)


def _per_key_id(found: Counter[tuple[str, str]]) -> list[str]:
    fields: dict[str, list[str]] = {}
    for (name, key_id), n in sorted(found.items()):
        fields.setdefault(key_id, []).append(f"{name}: {n}")
    return [f"  {key_id}: {', '.join(where)}" for key_id, where in sorted(fields.items())]


def _counts(counts: Counter[str], active: str) -> str:
    present = {key_id: n for key_id, n in counts.items() if n}
    if not present:
        return "-"
    order = sorted(present, key=lambda key_id: (key_id != active, key_id))
    return ", ".join(f"{key_id}: {present[key_id]}" for key_id in order)


def _keys(box: SecretBox) -> str:
    return ", ".join(f"{key_id} (active)" if key_id == box.active_key_id else key_id for key_id in box.keys)


def _master_keys() -> SecretBox | None:
    # Imported here: `recovery` starts every command's parser, and only this command needs them.
    from recovery_runtime.secrets import SecretBox
    from recovery_runtime.settings import ServiceSettings

    try:
        # Its warnings (a development key, a key that is not base64) to stderr: stdout is the report (`--json`).
        with contextlib.redirect_stdout(sys.stderr):
            return SecretBox.from_settings(ServiceSettings())
    except (ValueError, RuntimeError) as error:
        fail(f"cannot read the master keys (SECRETS_MASTER_KEYS, SECRETS_ACTIVE_KEY_ID) as the services do: {error}")
        return None


def _client(args: argparse.Namespace) -> MongoClient[dict[str, Any]]:
    from pymongo import MongoClient

    # Majority writes: a re-sealed value a failover rolled back would be under the old key again.
    return MongoClient(args.mongodb_url, appname="recovery-secrets", serverSelectionTimeoutMS=5000, w="majority")


def _in_dead_letters(url: str) -> dict[str, Counter[str]]:
    import asyncio

    from recovery_cli.secrets_at_rest import key_ids_in_body
    from recovery_runtime.dead_letters import DeadLetters

    places: dict[str, Counter[str]] = {}
    for letter in asyncio.run(DeadLetters(url).list()):
        places.setdefault(letter.dead_letter_queue, Counter()).update(key_ids_in_body(letter.body))
    return places or {"dead-letter queues (empty)": Counter()}

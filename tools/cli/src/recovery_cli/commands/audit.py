"""`recovery audit`: who did what through the API and the console, newest first (intake's `GET /v2/audit-events`)."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime

from recovery_cli.commands.options import Subcommands, add_run_dir, fail, positive_int, run_dir

KEY_VARIABLES = ("RECOVERY_API_KEY", "ADMIN_API_KEY")


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "audit",
        help="show the audit trail: who did what through the API and the console, newest first",
        description="The merchant's audit trail (a key with the read_only or management scope, or the admin key "
        "with --merchant), or with the admin key and no --merchant the platform's own: creating merchant accounts, "
        "the console's operator pages. Each line: when, done/refused/failed, who, what, on which ids, the route.",
    )
    parser.add_argument("--merchant", help="the merchant whose trail to read (needed with the admin key)")
    parser.add_argument("--key-id", help="only this API key's entries (its console sessions' too)")
    parser.add_argument("--refused", action="store_true", help="only the refused or failed entries (answer 400+)")
    parser.add_argument(
        "--payment", help="only the entries on this payment (its cancel, webhook retries, disputes, ...)"
    )
    parser.add_argument(
        "--since",
        type=_moment,
        help="only entries from this time on: ISO 8601 (UTC if no offset: 2026-12-01, 2026-12-01T09:30) or an age "
        "before now (30m, 12h, 7d)",
    )
    parser.add_argument(
        "--until", type=_last_moment, help="only entries up to this time, as --since (a date: to its end)"
    )
    parser.add_argument("--limit", type=positive_int, default=20, help="how many of the newest entries (default 20)")
    parser.add_argument(
        "--intake-url",
        help="default: $INTAKE_URL, else the intake of the running `recovery up` stack, else http://127.0.0.1:8080",
    )
    parser.add_argument(
        "--api-key",
        help="default: $RECOVERY_API_KEY, else $ADMIN_API_KEY (the local stack's admin key when neither is set)",
    )
    add_run_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the entries as the API gives them")
    parser.set_defaults(handler=handle)


def _moment(text: str, *, day_ends: bool = False) -> datetime:
    from recovery_cli.audit_trail import moment_of

    try:
        return moment_of(text, datetime.now(UTC), day_ends=day_ends)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _last_moment(text: str) -> datetime:
    return _moment(text, day_ends=True)


def handle(args: argparse.Namespace) -> int:
    # Imported here: `recovery` starts every command's parser, and only this command needs these.
    from recovery_cli.audit_trail import AuditTrail, AuditTrailUnread, TrailQuery, intake_url, render_json, render_text
    from recovery_cli.stack import DEFAULT_ADMIN_API_KEY

    api_key = args.api_key or next(
        (os.environ[name] for name in KEY_VARIABLES if os.environ.get(name)), DEFAULT_ADMIN_API_KEY
    )
    if args.since and args.until and args.since > args.until:
        return fail(f"--since ({args.since.isoformat()}) is later than --until ({args.until.isoformat()})")
    query = TrailQuery(
        merchant_id=args.merchant,
        key_id=args.key_id,
        refused=args.refused,
        payment_id=args.payment,
        since=args.since,
        until=args.until,
        limit=args.limit,
    )
    trail = AuditTrail(args.intake_url or intake_url(run_dir(args)), api_key)
    try:
        answers = trail.read(query)
    except AuditTrailUnread as error:
        return fail(f"cannot read the audit trail: {error}")
    print(render_json(answers) if args.json else render_text(answers, query))
    return 0

"""`recovery verify`: does a received webhook carry a valid signature? Exit 0 when it does, 1 with the reason."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

from recovery_cli.commands.options import Subcommands, fail
from recovery_cli.verify import verify_webhook


def _header(text: str) -> tuple[str, str]:
    name, separator, value = text.partition(":")
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "verify",
        help="verify a webhook's X-Webhook-Signature-512 (hash key) and/or Standard Webhooks signature (whsec)",
        description=(
            "Verify the raw body of a received webhook. With --hash-key: X-Webhook-Signature-512 (from --signature "
            "or a --header). With --whsec: the webhook-id, webhook-timestamp and webhook-signature headers. "
            "Exit 0 when every check passes, 1 otherwise."
        ),
    )
    parser.add_argument(
        "--body", type=Path, required=True, help="file holding the body exactly as received ('-': stdin)"
    )
    parser.add_argument("--hash-key", help="the profile's payment_response_hash_key")
    parser.add_argument("--signature", help="the X-Webhook-Signature-512 value (hex)")
    parser.add_argument("--whsec", help="the profile's Standard Webhooks secret (whsec_...)")
    parser.add_argument(
        "--header", type=_header, action="append", default=[], metavar="'NAME: VALUE'", help="a received header"
    )
    parser.add_argument(
        "--tolerance", type=float, default=300.0, help="seconds a webhook-timestamp may be off (default 300)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.hash_key is None and args.whsec is None:
        return fail("nothing to verify with: give --hash-key and/or --whsec")
    body = sys.stdin.buffer.read() if str(args.body) == "-" else args.body.read_bytes()
    checks = verify_webhook(
        body,
        hash_key=args.hash_key,
        signature_hex=args.signature,
        whsec_secret=args.whsec,
        headers=dict(args.header),
        tolerance=timedelta(seconds=args.tolerance),
    )
    for check in checks:
        print(f"{check.scheme}: {'verified' if check.passed else 'FAILED'} ({check.reason})")
    return 0 if all(check.passed for check in checks) else 1

"""`recovery dead-letters list|show|replay`: what the dead-letter queues hold, and sending it back.

The runbook is in docs/operations.md ("Dead letters runbook") and docs/guarantees.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING

from recovery_cli.commands.options import Subcommands, broker_command, rabbitmq_url
from recovery_cli.stack.infrastructure import redact

if TYPE_CHECKING:
    from recovery_runtime.dead_letters import DeadLetter, DeadLetters, Selection

NOTHING_SELECTED = 2


def register(subcommands: Subcommands) -> None:
    actions = broker_command(
        subcommands,
        "dead-letters",
        help="list, show and replay messages in the dead-letter queues (RABBITMQ_URL)",
        description="Dead letters of every consumer queue (<queue>.dlq). Reading never removes a message; "
        "replay removes it only after the broker confirmed the republished original.",
    )

    listing = actions.add_parser("list", help="one line per dead letter, with its reason")
    _add_selection(listing)
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    listing.set_defaults(handler=handle_list)

    show = actions.add_parser("show", help="one dead letter in full: headers, reason, body")
    show.add_argument("which", help="a message id, or a position (1-based) in the --queue's dead-letter queue")
    show.add_argument("--queue", action="append", default=[], help="consumer queue (or its .dlq)")
    show.set_defaults(handler=handle_show)

    replay = actions.add_parser(
        "replay",
        help="republish dead letters to their original exchange and routing key (safe to run twice)",
    )
    replay.add_argument("which", nargs="?", help="a message id, or a position in the --queue's dead-letter queue")
    _add_selection(replay)
    replay.add_argument("--all", action="store_true", help="every dead letter that matches the filters")
    replay.add_argument("--dry-run", action="store_true", help="say what would be replayed, change nothing")
    replay.set_defaults(handler=handle_replay)


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queue", action="append", default=[], help="consumer queue (or its .dlq); repeatable; default: all"
    )
    parser.add_argument("--message-id", action="append", default=[], help="repeatable")
    parser.add_argument("--reason-contains", default=None, help="case-insensitive substring of the reason")


def _client(args: argparse.Namespace) -> DeadLetters:
    # Imported here: `recovery` starts every command's parser, and only this command needs the broker client.
    from recovery_runtime.dead_letters import DeadLetters

    return DeadLetters(rabbitmq_url(args))


def _selection(args: argparse.Namespace, which: str | None = None) -> Selection:
    from recovery_runtime.dead_letters import Selection

    positions: tuple[int, ...] = ()
    message_ids = tuple(getattr(args, "message_id", []) or [])
    if which:
        if which.isdigit():
            if len(args.queue) != 1:
                raise ValueError("a position needs exactly one --queue (positions are per dead-letter queue)")
            positions = (int(which),)
        else:
            message_ids += (which,)
    return Selection(
        queues=tuple(args.queue),
        message_ids=message_ids,
        positions=positions,
        reason_contains=getattr(args, "reason_contains", None),
    )


def handle_list(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        letters = asyncio.run(client.list(_selection(args)))
    except Exception as error:
        return _failed(client, error)
    if args.json:
        for letter in letters:
            print(json.dumps(letter.summary()))
        return 0
    if not letters:
        print("no dead letters")
        return 0
    for letter in letters:
        print(_line(letter))
    print(f"{len(letters)} dead letter(s)")
    return 0


def handle_show(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        letters = asyncio.run(client.list(_selection(args, args.which)))
    except Exception as error:
        return _failed(client, error)
    if not letters:
        print(f"no dead letter {args.which}")
        return NOTHING_SELECTED
    for letter in letters:
        print(json.dumps(letter.detail(), indent=2, default=str))
    return 0


def handle_replay(args: argparse.Namespace) -> int:
    if not args.which and not args.all and not args.message_id and not args.reason_contains:
        print("say what to replay: a message id or position, --message-id, --reason-contains, or --all")
        return NOTHING_SELECTED
    client = _client(args)
    try:
        selection = _selection(args, args.which)
        if args.dry_run:
            letters = asyncio.run(client.list(selection))
            for letter in letters:
                print("would replay " + _line(letter))
            print(f"{len(letters)} dead letter(s) would be replayed")
            return 0
        report = asyncio.run(client.replay(selection, say=print))
    except Exception as error:
        return _failed(client, error)
    print(f"{len(report.replayed)} replayed, {len(report.failed)} not replayed (still in their dead-letter queue)")
    if not report.replayed and not report.failed:
        print("nothing matched: already replayed, or no such dead letter")
    return 1 if report.failed else 0


def _line(letter: DeadLetter) -> str:
    return (
        f"{letter.dead_letter_queue:<40} #{letter.position:<4} {letter.message_id or '-':<38} "
        f"{letter.message_type or '-':<26} {letter.reason[:160]}"
    )


def _failed(client: DeadLetters, error: Exception) -> int:
    print(f"dead-letters failed against {redact(client.url)}: {type(error).__name__}: {error}")
    return 1

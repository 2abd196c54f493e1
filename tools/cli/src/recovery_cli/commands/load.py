"""`recovery load`: drive a running stack with recoveries at a rate and a mix of outcomes; report what came back."""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

from recovery_cli.commands.options import Subcommands, add_run_dir, fail, run_dir
from recovery_cli.load import LoadDriver, Mix
from recovery_cli.seed_scenario import SANDBOX_SECRET_KEY, Endpoints
from recovery_cli.stack import DEFAULT_ADMIN_API_KEY, read_state


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "load",
        help="send recoveries to a running stack at a rate with a mix of outcomes",
        description="Sets up a merchant of its own (custom retry ladder), a customer and card per recovery at the "
        "Stripe sandbox, then POSTs /v2/payments/recovery at --rate for --duration seconds. Reports accepted, "
        "errors and POST latency; with a receiver, also the webhooks that came back. URLs not given are read "
        "from the stack `recovery up` recorded in the run directory.",
    )
    add_run_dir(parser)
    parser.add_argument("--rate", type=float, required=True, help="recoveries per second (open loop)")
    parser.add_argument("--duration", type=float, required=True, help="seconds to send for")
    parser.add_argument(
        "--mix",
        type=Mix.parse,
        default=Mix.parse("success=100"),
        help="outcome weights: success (approved), soft (insufficient funds), hard (stolen card), "
        "timeout (charged, answer held back past the executor's timeout); default success=100",
    )
    parser.add_argument("--intake-url", default=None)
    parser.add_argument("--stripe-url", default=None, help="the Stripe sandbox the executor charges")
    parser.add_argument("--receiver-url", default=None, help="a sandbox receiver: webhooks go there and are counted")
    parser.add_argument("--admin-api-key", default=None)
    parser.add_argument("--sandbox-secret-key", default=SANDBOX_SECRET_KEY)
    parser.add_argument("--retry-ladder", default="1", help="seconds between retries, comma-separated (default 1)")
    parser.add_argument("--concurrency", type=int, default=64, help="most POSTs in flight at once")
    parser.add_argument(
        "--timeout-seconds", type=float, default=35.0, help="how long the sandbox holds a `timeout` answer back"
    )
    parser.add_argument(
        "--wait-webhooks", type=float, default=0.0, help="after sending, wait up to this long for webhooks"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    urls: dict[str, str | None] = {}
    admin_key = args.admin_api_key
    if not (args.intake_url and args.stripe_url):
        state = read_state(run_dir(args))
        if state is not None:
            urls = {record.name: record.url for record in state.processes}
            admin_key = admin_key or str(state.settings.get("admin_api_key") or "")
    intake = args.intake_url or urls.get("intake")
    stripe = args.stripe_url or urls.get("stripe-sandbox")
    receiver = args.receiver_url or urls.get("receiver") or ""
    if not intake or not stripe:
        return fail("no stack to drive: pass --intake-url and --stripe-url, or start one with `recovery up`")
    try:
        ladder = tuple(int(step) for step in args.retry_ladder.split(",") if step.strip())
    except ValueError:
        return fail(f"--retry-ladder: expected seconds like 1,60,300; got {args.retry_ladder!r}")
    endpoints = Endpoints(str(intake), str(stripe), str(receiver), admin_key or DEFAULT_ADMIN_API_KEY)
    return asyncio.run(_run(args, endpoints, ladder))


async def _run(args: argparse.Namespace, endpoints: Endpoints, ladder: tuple[int, ...]) -> int:
    async with LoadDriver(endpoints, sandbox_secret_key=args.sandbox_secret_key, connections=args.concurrency) as load:
        await asyncio.to_thread(load.prepare_merchant, ladder)
        outcomes = args.mix.draw(max(1, round(args.rate * args.duration)))
        print(f"preparing {len(outcomes)} customers and cards at {endpoints.stripe_url}")
        cards = await load.cards(outcomes, timeout_seconds=args.timeout_seconds)
        since = 0
        if endpoints.receiver_url:
            since = max((int(d.get("sequence", 0)) for d in await load.received()), default=0)
        print(f"sending {len(cards)} recoveries at {args.rate:g}/s to {endpoints.intake_url}")
        report = await load.send(cards, rate=args.rate, concurrency=args.concurrency)
        for line in report.lines():
            print(line)
        if endpoints.receiver_url and args.wait_webhooks > 0:
            accepted = {s.payment_id for s in report.accepted if s.payment_id}
            found = await load.wait_for_webhooks(accepted, args.wait_webhooks, since=since)
            kinds = Counter(str((d.get("json") or {}).get("event_type")) for d in found.values())
            verified = sum(1 for d in found.values() if (d.get("signature_512") or {}).get("valid") is True)
            print(f"webhooks for {len(found)}/{len(accepted)} payments ({dict(kinds)}); {verified} signature-verified")
    return 0 if not report.errors else 1

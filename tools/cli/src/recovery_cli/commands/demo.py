"""`recovery demo`: start the stack, replay the seed's scenario through the HTTP API, stop the stack."""

from __future__ import annotations

import argparse
from pathlib import Path

from recovery_cli import demo
from recovery_cli.commands.options import Subcommands, add_run_dir, fail, run_dir
from recovery_cli.seed_scenario import Endpoints
from recovery_cli.stack import StackConfig, read_state


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "demo",
        help="replay the seed's scenario end to end and show the signed webhook",
        description="Start everything that is missing (RabbitMQ, the database when MONGODB_URL is unset, "
        "the services, the Stripe sandbox, a receiver), replay the seed's scenario through the HTTP API, "
        "print the webhook the receiver got and whether its X-Webhook-Signature-512 verified, stop. "
        "Exit 0 on success.",
    )
    add_run_dir(parser)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=demo.DEMO_TIME_SCALE,
        help=f"schedule seconds per wall-clock second (default {demo.DEMO_TIME_SCALE:g}: +60 s takes 60 ms)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the webhook")
    parser.add_argument(
        "--billing",
        choices=("custombilling", "stripebilling", "chargebee", "recurly"),
        default="custombilling",
        help="custombilling: the seed's POST /v2/payments/recovery; stripebilling: a failed invoice at the Stripe "
        "sandbox, its signed invoice.payment_failed webhook, and the invoice marked paid at Stripe after the retry; "
        "chargebee: the same with Chargebee's payment_failed (basic auth) and record_payment; recurly: the same "
        "with Recurly's signed payment.failed (the transaction read at Recurly) and mark_successful",
    )
    parser.add_argument("--readiness-timeout", type=float, default=90.0, help="seconds to wait for the stack")
    parser.add_argument(
        "--shared-vhost",
        action="store_true",
        help="use RABBITMQ_URL's virtual host as it is instead of a private one for the run",
    )
    parser.add_argument(
        "--use-running",
        action="store_true",
        help="replay against the stack `recovery up` started instead of starting one",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    directory = run_dir(args)
    if args.use_running:
        return _against_running(args, directory)
    config = StackConfig.from_environment(
        directory / "demo",
        time_scale=args.time_scale,
        # Free ports: the demo runs beside a `recovery up` stack, or anything else on 8080.
        free_ports=True,
        # The demo's customer and card live in this stack's sandbox, so the executor must charge there.
        stripe_api_base=None,
        readiness_timeout=args.readiness_timeout,
        start_rabbitmq=True,
    )
    return demo.run_demo(config, timeout=args.timeout, private_vhost=not args.shared_vhost, billing=args.billing)


def _against_running(args: argparse.Namespace, directory: Path) -> int:
    state = read_state(directory)
    if state is None:
        return fail(f"--use-running: no stack recorded in {directory} (start one with `recovery up`)")
    urls = {record.name: record.url for record in state.processes}
    missing = [name for name in ("intake", "stripe-sandbox", "receiver") if not urls.get(name)]
    if missing:
        return fail(f"--use-running: the recorded stack has no {', '.join(missing)}")
    endpoints = Endpoints(
        intake_url=str(urls["intake"]),
        stripe_url=str(urls["stripe-sandbox"]),
        receiver_url=str(urls["receiver"]),
        admin_api_key=str(state.settings.get("admin_api_key", "test_admin")),
    )
    return demo.run_against(endpoints, timeout=args.timeout, billing=args.billing)

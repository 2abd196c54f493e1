"""`recovery demo`: start the stack, replay the seed's scenario (or a billing system's) through it, report what
the merchant received, stop the stack."""

from __future__ import annotations

import json
from collections.abc import Callable

from recovery_cli.seed_scenario import (
    Endpoints,
    ScenarioFailed,
    ScenarioOutcome,
    SeedScenario,
)
from recovery_cli.stack import Stack, StackConfig, StackError, ensure_rabbitmq
from recovery_cli.stack.infrastructure import redact
from recovery_cli.stack.vhosts import VhostUnavailable, VirtualHosts, vhost_name

DEMO_TIME_SCALE = 1000.0
DEMO_VHOST_PREFIX = "recovery-demo-"


def report_outcome(outcome: ScenarioOutcome, say: Callable[[str], None] = print) -> bool:
    """Prints the webhook as received and its verification; True when the scenario succeeded."""
    webhook = outcome.webhook
    say("==> the webhook body as the merchant received it:")
    try:
        say(json.dumps(json.loads(webhook.body_text), indent=2))
    except ValueError:
        say(webhook.body_text)
    verified = webhook.signature_verified
    if verified:
        say("signature verified")
    else:
        reason = webhook.signature_512.get("error") or "no verification result"
        say(f"X-Webhook-Signature-512 NOT verified by the receiver: {reason}")
    standard = webhook.standard_webhooks
    if standard.get("present"):
        say(f"Standard Webhooks headers: valid={standard.get('valid')}")
    charges = outcome.charges
    succeeded = [charge for charge in charges if charge.get("status") == "succeeded"]
    say(f"Stripe sandbox ledger for {outcome.customer_id}: {len(charges)} charge(s), {len(succeeded)} succeeded")
    status = outcome.payment.get("status")
    say(f"payment {outcome.payment_id}: status {status}")
    return verified and status == "succeeded"


def run_demo(
    config: StackConfig,
    say: Callable[[str], None] = print,
    timeout: float = 60.0,
    *,
    private_vhost: bool = True,
    billing: str = "custombilling",
) -> int:
    """Start the stack, replay the scenario, stop the stack. 0 on success.

    With `private_vhost` the stack gets a RabbitMQ virtual host of its own for the run: a stack already on the
    broker (`recovery up`, a colleague's tests) consumes from the same fixed queue names and would otherwise
    take the demo's messages.
    """
    try:
        ensure_rabbitmq(config.rabbitmq_url, start=config.start_rabbitmq, say=say)
    except StackError as error:
        say(f"demo failed: {error}")
        return 1
    vhosts, vhost = None, None
    if private_vhost:
        vhosts, vhost = VirtualHosts(config.rabbitmq_url), vhost_name(DEMO_VHOST_PREFIX)
        try:
            for left in vhosts.remove_abandoned(DEMO_VHOST_PREFIX):
                say(f"==> removed virtual host {left}, left by a demo that was killed")
            config = config.with_changes(rabbitmq_url=vhosts.create(vhost))
            say(f"==> RabbitMQ virtual host {vhost} for this run (deleted at the end)")
        except VhostUnavailable as error:
            say(f"note: no private virtual host ({error}); sharing {redact(config.rabbitmq_url)}")
            vhosts = None
    try:
        return _run_stack_and_scenario(config, say, timeout, billing)
    finally:
        if vhosts is not None and vhost is not None:
            vhosts.delete(vhost)


def _run_stack_and_scenario(config: StackConfig, say: Callable[[str], None], timeout: float, billing: str) -> int:
    stack = Stack(config, say)
    try:
        failure = _start_and_replay(stack, say, timeout, billing)
        if failure is not None:
            # The services' logs say why; the peers' access logs only repeat the polling.
            say(stack.log_tails(25, roles=("service",)))
    finally:
        stack.stop()
    if failure is None:
        return 0
    say(f"demo failed: {failure}")
    say(f"every process's log: {config.log_dir}")
    return 1


def _start_and_replay(stack: Stack, say: Callable[[str], None], timeout: float, billing: str) -> str | None:
    """None on success, else why the demo failed."""
    say(f"==> starting the stack (time scale {stack.config.time_scale:g}); logs in {stack.config.log_dir}")
    try:
        stack.start()
    except StackError as error:
        return f"the stack did not start: {error}"
    if billing != "custombilling":
        return _replay_billing(Endpoints.of(stack), say, timeout, billing)
    scenario_run = SeedScenario(Endpoints.of(stack), say)
    try:
        outcome = scenario_run.run(timeout=timeout)
    except ScenarioFailed as error:
        return str(error)
    finally:
        scenario_run.close()
    if report_outcome(outcome, say):
        return None
    return "the webhook arrived but the scenario did not end as the seed says (see above)"


def _replay_billing(endpoints: Endpoints, say: Callable[[str], None], timeout: float, billing: str) -> str | None:
    """The scenario fed by a billing system's webhooks instead of `POST /v2/payments/recovery`."""
    from recovery_cli import billing_demo, billing_recurly  # only a billing system's replay needs them

    if billing == "chargebee":
        return billing_demo.replay(billing_demo.ChargebeeScenario, endpoints, say, timeout)
    if billing == "recurly":
        return billing_demo.replay(billing_recurly.RecurlyScenario, endpoints, say, timeout)
    return billing_demo.replay(billing_demo.StripeBillingScenario, endpoints, say, timeout)


def run_against(
    endpoints: Endpoints, say: Callable[[str], None] = print, timeout: float = 60.0, billing: str = "custombilling"
) -> int:
    """Replay the scenario against a stack that is already running (`recovery up`)."""
    if billing != "custombilling":
        failure = _replay_billing(endpoints, say, timeout, billing)
        if failure is not None:
            say(f"demo failed: {failure}")
        return 0 if failure is None else 1
    scenario_run = SeedScenario(endpoints, say)
    try:
        outcome = scenario_run.run(timeout=timeout)
    except ScenarioFailed as error:
        say(f"demo failed: {error}")
        return 1
    finally:
        scenario_run.close()
    return 0 if report_outcome(outcome, say) else 1

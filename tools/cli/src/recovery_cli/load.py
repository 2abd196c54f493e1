"""Load for any running stack: a merchant of its own, customers at the Stripe sandbox, recoveries at a rate.

`recovery load` and the end-to-end benchmark (bench/end_to_end.py) drive the stack through its public HTTP
API only, so the same load runs against `recovery up`, compose or a deployment with a Stripe sandbox.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiohttp
import httpx

from recovery_cli import scenario
from recovery_cli.seed_scenario import SANDBOX_SECRET_KEY, Endpoints, MerchantSetup, SeedScenario


class Outcome(StrEnum):
    """What the payment processor does with the retry: the card decides (Stripe's test cards)."""

    SUCCESS = "success"  # approved at once
    SOFT = "soft"  # insufficient funds: retried along the ladder, then failed
    HARD = "hard"  # stolen card: never retried
    TIMEOUT = "timeout"  # charged, but the answer is held back past the executor's timeout (PSYNC settles it)


CARD_FOR = {
    Outcome.SUCCESS: "pm_card_visa",
    Outcome.SOFT: "pm_card_chargeDeclinedInsufficientFunds",
    Outcome.HARD: "pm_card_chargeDeclinedStolenCard",
    Outcome.TIMEOUT: "pm_card_visa",
}


@dataclass(frozen=True)
class Mix:
    """Weights per outcome, e.g. `success=70,soft=10,hard=10,timeout=10`."""

    weights: dict[Outcome, int]

    @classmethod
    def parse(cls, text: str) -> Mix:
        weights: dict[Outcome, int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            try:
                weights[Outcome(name.strip())] = int(value)
            except ValueError:
                known = ", ".join(o.value for o in Outcome)
                raise ValueError(f"bad mix entry {part!r}: expected NAME=WEIGHT with NAME one of {known}") from None
        if not weights or sum(weights.values()) <= 0 or min(weights.values()) < 0:
            raise ValueError(f"mix {text!r} has no positive weight")
        return cls(weights)

    def draw(self, count: int, seed: int = 7) -> list[Outcome]:
        """`count` outcomes in these proportions (exact up to rounding), shuffled."""
        total = sum(self.weights.values())
        drawn = [o for o, w in self.weights.items() for _ in range(round(count * w / total))]
        drawn = (drawn + [max(self.weights, key=self.weights.__getitem__)] * count)[:count]
        random.Random(seed).shuffle(drawn)
        return drawn


@dataclass(frozen=True)
class Card:
    outcome: Outcome
    customer_id: str
    payment_method_id: str


@dataclass
class Sent:
    """One POST /v2/payments/recovery: when it left, how long the answer took, what it said."""

    card: Card
    reference: str
    sent_at: float  # time.time()
    seconds: float = 0.0
    status: int = 0
    payment_id: str | None = None
    error: str | None = None


@dataclass
class LoadReport:
    requested_rate: float | None
    sent: list[Sent] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def accepted(self) -> list[Sent]:
        return [s for s in self.sent if s.payment_id is not None]

    @property
    def errors(self) -> Counter[str]:
        return Counter(s.error or str(s.status) for s in self.sent if s.payment_id is None)

    @property
    def achieved_rate(self) -> float:
        elapsed = self.finished - self.started
        return len(self.sent) / elapsed if elapsed > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        values = sorted(s.seconds * 1000 for s in self.accepted)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]

    def lines(self) -> list[str]:
        by_outcome = Counter(s.card.outcome.value for s in self.accepted)
        rate = f"{self.requested_rate:g}/s requested, " if self.requested_rate else ""
        lines = [
            f"sent {len(self.sent)} in {self.finished - self.started:.1f}s ({rate}{self.achieved_rate:.1f}/s achieved)",
            f"accepted {len(self.accepted)} ({', '.join(f'{k} {v}' for k, v in sorted(by_outcome.items()))})",
            f"errors {sum(self.errors.values())}" + (f": {dict(self.errors)}" if self.errors else ""),
        ]
        if self.accepted:
            mean = statistics.fmean(s.seconds * 1000 for s in self.accepted)
            lines.append(
                f"POST latency ms: p50 {self.latency_ms(50):.0f}, p95 {self.latency_ms(95):.0f}, "
                f"p99 {self.latency_ms(99):.0f}, mean {mean:.0f}"
            )
        return lines


class LoadDriver:
    """Sets up a merchant and its customers, then sends recoveries at a rate (or as fast as allowed)."""

    def __init__(
        self,
        endpoints: Endpoints,
        *,
        sandbox_secret_key: str = SANDBOX_SECRET_KEY,
        say: Callable[[str], None] = print,
        connections: int = 64,
    ) -> None:
        self.endpoints = endpoints
        self.secret = sandbox_secret_key
        self.say = say
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self.setup: MerchantSetup | None = None

    async def __aenter__(self) -> LoadDriver:
        # aiohttp, not httpx's default transport: the generator must not be what limits the rate.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use `async with LoadDriver(...)`"
        return self._session

    # ---- a merchant of the load's own ------------------------------------------------------------------

    def prepare_merchant(self, retry_ladder_seconds: Sequence[int] | None = (1,)) -> MerchantSetup:
        """The seed's steps 1-4 with the billing account's ladder replaced (seconds of business time)."""
        steps = SeedScenario(self.endpoints, say=lambda _: None, sandbox_secret_key=self.secret)
        try:
            merchant_id = steps.create_merchant(f"load_{uuid.uuid4().hex[:8]}")
            profile = steps.create_profile(merchant_id)
            hash_key, whsec = profile["payment_response_hash_key"], profile.get("standard_webhooks_secret")
            if self.endpoints.receiver_url:
                steps.configure_receiver(hash_key, whsec)
            api_key = steps.create_api_key(merchant_id)
            headers = {"api-key": api_key, "x-merchant-id": merchant_id, "x-profile-id": profile["id"]}
            payment = scenario.seed_body(
                scenario.PAYMENT_CONNECTOR_ACCOUNT, api_key=self.secret, profile_id=profile["id"]
            )
            payment_mca = self._post_sync(steps.http, "/v2/connector-accounts", payment, headers)["id"]
            billing = scenario.seed_body(
                scenario.BILLING_CONNECTOR_ACCOUNT, payment_mca=payment_mca, profile_id=profile["id"]
            )
            if retry_ladder_seconds:
                billing["feature_metadata"]["revenue_recovery"]["retry_ladder_seconds"] = list(retry_ladder_seconds)
            billing_mca = self._post_sync(steps.http, "/v2/connector-accounts", billing, headers)["id"]
            steps.switch_to_cascading(merchant_id, profile["id"])
        finally:
            steps.close()
        self.setup = MerchantSetup(
            merchant_id=merchant_id,
            profile_id=str(profile["id"]),
            api_key=api_key,
            payment_response_hash_key=hash_key,
            standard_webhooks_secret=whsec,
            payment_mca=str(payment_mca),
            billing_mca=str(billing_mca),
        )
        self.say(f"merchant {merchant_id}, profile {profile['id']}, ladder {list(retry_ladder_seconds or [])}")
        return self.setup

    def _post_sync(self, http: httpx.Client, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
        answer = http.post(f"{self.endpoints.intake_url}{path}", json=body, headers=headers)
        if answer.status_code >= 300:
            raise RuntimeError(f"POST {path} answered {answer.status_code}: {answer.text[:500]}")
        return dict(answer.json())

    # ---- customers with cards at the Stripe sandbox ----------------------------------------------------

    async def cards(
        self, outcomes: Sequence[Outcome], concurrency: int = 32, timeout_seconds: float = 35.0
    ) -> list[Card]:
        """A customer and an attached card per recovery: network budgets count attempts per card."""
        auth = {"Authorization": f"Bearer {self.secret}"}
        stripe = self.endpoints.stripe_url
        slots = asyncio.Semaphore(concurrency)

        async def form(path: str, data: dict[str, str]) -> dict[str, Any]:
            async with self.session.post(f"{stripe}{path}", data=data, headers=auth) as answer:
                body = await answer.json(content_type=None)
                if answer.status >= 300:
                    raise RuntimeError(f"sandbox POST {path} answered {answer.status}: {body}")
                return dict(body)

        async def one(outcome: Outcome) -> Card:
            async with slots:
                customer = await form("/v1/customers", {"description": f"load {outcome.value}"})
                card = await form(f"/v1/payment_methods/{CARD_FOR[outcome]}/attach", {"customer": customer["id"]})
                if outcome is Outcome.TIMEOUT:
                    fault = {"payment_method": card["id"], "mode": "timeout_after_charge", "seconds": timeout_seconds}
                    async with self.session.post(f"{stripe}/_sandbox/faults", json=fault) as answer:
                        if answer.status >= 300:
                            raise RuntimeError(f"sandbox refused the fault: {await answer.text()}")
                return Card(outcome, str(customer["id"]), str(card["id"]))

        return list(await asyncio.gather(*(one(o) for o in outcomes)))

    # ---- recoveries ------------------------------------------------------------------------------------

    def recovery_body(self, card: Card, reference: str) -> dict[str, Any]:
        assert self.setup is not None, "prepare_merchant first"
        body = scenario.seed_body(
            scenario.RECOVERY_REQUEST,
            customer_id_from_stripe=card.customer_id,
            payment_method_id_from_stripe=card.payment_method_id,
            billing_mca=self.setup.billing_mca,
            payment_mca=self.setup.payment_mca,
        )
        body["merchant_reference_id"] = reference
        return dict(body)

    async def send(self, cards: Sequence[Card], *, rate: float | None = None, concurrency: int = 32) -> LoadReport:
        """POST one recovery per card: at `rate` per second (open loop), or as fast as `concurrency` allows."""
        assert self.setup is not None, "prepare_merchant first"
        report = LoadReport(requested_rate=rate)
        url = f"{self.endpoints.intake_url}/v2/payments/recovery"
        headers = self.setup.headers()
        slots = asyncio.Semaphore(concurrency)
        run = uuid.uuid4().hex[:8]

        async def post(index: int, card: Card) -> None:
            async with slots:
                sent = Sent(card, f"load_{run}_{index}", time.time())
                report.sent.append(sent)
                started = time.perf_counter()
                try:
                    async with self.session.post(
                        url, json=self.recovery_body(card, sent.reference), headers=headers
                    ) as answer:
                        body = await answer.json(content_type=None)
                        sent.status = answer.status
                        if answer.status < 300 and isinstance(body, dict):
                            sent.payment_id = str(body["id"])
                        else:
                            sent.error = f"{answer.status} {str(body)[:120]}"
                except (aiohttp.ClientError, TimeoutError) as error:
                    sent.error = type(error).__name__
                sent.seconds = time.perf_counter() - started

        report.started = time.time()
        tasks = []
        begin = time.perf_counter()
        for index, card in enumerate(cards):
            if rate:
                delay = begin + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(index, card)))
        await asyncio.gather(*tasks)
        report.finished = time.time()
        return report

    # ---- what the merchant received --------------------------------------------------------------------

    async def received(self, since: int = 0) -> list[dict[str, Any]]:
        """Deliveries the sandbox receiver recorded after sequence `since` (receiver URL required)."""
        async with self.session.get(f"{self.endpoints.receiver_url}/received", params={"since": since}) as answer:
            return list(await answer.json())

    async def wait_for_webhooks(
        self, payment_ids: set[str], within: float, since: int = 0, poll: float = 0.2
    ) -> dict[str, dict[str, Any]]:
        """The first delivery per payment id in `payment_ids`, waiting up to `within` seconds for all."""
        found: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + within
        while len(found) < len(payment_ids) and time.monotonic() < deadline:
            for delivery in await self.received(since):
                since = max(since, int(delivery.get("sequence", 0)))
                try:
                    payment_id = str(delivery["json"]["content"]["object"]["id"])
                except (KeyError, TypeError):
                    continue
                if payment_id in payment_ids and payment_id not in found:
                    found[payment_id] = delivery
            if len(found) < len(payment_ids):
                await asyncio.sleep(poll)
        return found

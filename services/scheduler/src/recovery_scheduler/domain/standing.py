"""Where each saved token stands in a recovery: declines seen, budget use, and whether it may be charged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .budgets import CardUse, NetworkBudget, budget_for
from .config import RetryConfig
from .declines import DeclineAssessment, DeclineClass
from .model import AttemptOutcome, RecoveryView, TokenState


@dataclass(frozen=True)
class DeclineSeen:
    at: datetime
    assessment: DeclineAssessment


@dataclass(frozen=True)
class TokenStanding:
    token: TokenState
    index: int
    budget: NetworkBudget
    # Every authorization that counts for the network budget on this card.
    budget_uses: tuple[CardUse, ...]
    # This system's attempts on the token (plus the billing system's on the primary).
    retries: int
    declines: tuple[DeclineSeen, ...]
    hard_declined: bool
    blocked_by: DeclineClass | None  # customer or fix: no off-session retry
    capped: bool  # a "few retries" decline has used its retries

    @property
    def usable(self) -> bool:
        return not self.hard_declined and self.blocked_by is None and not self.capped

    @property
    def last_decline(self) -> DeclineSeen | None:
        return self.declines[-1] if self.declines else None

    @property
    def network_floor(self) -> datetime | None:
        """The time the wait advised on the last decline allows the next attempt: the network's (Mastercard's MAC)
        or the processor's own (`PROCESSOR_RULES`), which every algorithm obeys."""
        last = self.last_decline
        if last is None or last.assessment.network_wait is None:
            return None
        return last.at + last.assessment.network_wait

    @property
    def merchant_floor(self) -> datetime | None:
        """The merchant's word on the card's next try (`TokenState.not_before`), which every algorithm obeys."""
        return self.token.not_before

    def held_to(self, at: datetime) -> datetime | None:
        """The merchant's word when it held a try on the card back to `at` (the try would have been sooner without
        it), else None."""
        held = self.merchant_floor
        return None if held is None or at > held else held

    def merchant_note(self, at: datetime) -> str:
        """What a reason says of the merchant's word when it held a try on the card back to `at`, else nothing."""
        held = self.held_to(at)
        if held is None:
            return ""
        return f"; not before {held.isoformat()}, as the merchant asked for card {self.token.token}"

    @property
    def floor_source(self) -> str:
        """Who advised the floor, as a reason says it (the last decline's source)."""
        last = self.last_decline
        return last.assessment.source if last is not None else ""

    def why_unusable(self) -> str:
        if self.hard_declined:
            source = self._never_source()
            return f"token {self.token.token} hard-declined" + (f" ({source})" if source else "")
        if self.blocked_by is not None:
            blocked = f"token {self.token.token} needs {self.blocked_by.value} action before an off-session retry"
            source = next(
                (d.assessment.source for d in reversed(self.declines) if d.assessment.decline_class is self.blocked_by),
                None,
            )
            return blocked + (f" ({source})" if source else "")
        return f"token {self.token.token} used its retries for this decline"

    def _never_source(self) -> str | None:
        return next(
            (d.assessment.source for d in self.declines if d.assessment.decline_class is DeclineClass.NEVER),
            self.token.hard_declined_in,
        )


def _billing_declines(view: RecoveryView, token: TokenState) -> list[DeclineSeen]:
    if view.first_codes.empty:
        return []
    return [DeclineSeen(view.billing_failed_at, view.first_codes.assessment(token.card_network))]


def _is_capped(declines: Sequence[DeclineSeen]) -> bool:
    for seen in declines:
        rule, cap = seen.assessment.rule, seen.assessment.retry_cap
        if rule is not None and cap is not None:
            if sum(1 for d in declines if d.assessment.rule is rule) > cap:
                return True
    return False


def _blocked_by(token: TokenState, declines: Sequence[DeclineSeen]) -> DeclineClass | None:
    for seen in reversed(declines):
        cls = seen.assessment.decline_class
        if cls is DeclineClass.CUSTOMER:
            return cls
        if cls is DeclineClass.FIX and (token.card_updated_at is None or token.card_updated_at <= seen.at):
            return cls
    return None


def token_standings(view: RecoveryView, config: RetryConfig) -> tuple[TokenStanding, ...]:
    standings = []
    for index, token in enumerate(view.tokens):
        primary = index == 0
        own = [a for a in view.attempts if a.token == token.token]
        declines = _billing_declines(view, token) if primary else []
        for attempt in own:
            if attempt.outcome is AttemptOutcome.DECLINED:
                declines.append(DeclineSeen(attempt.at, attempt.codes.assessment(token.card_network)))
            elif attempt.outcome is AttemptOutcome.ERROR:
                declines.append(DeclineSeen(attempt.at, attempt.codes.error_assessment()))
        # The billing system's attempts hit the primary card; placed at its last failure (conservative:
        # they stay inside every window as long as any of them could). The card's retries before this system (the
        # merchant's backfill) count beside them, though they may include some of them: counting both is the
        # conservative side of the networks' rules. They are not this invoice's retries (`retries`,
        # `max_retry_count`), and no decline codes are known of them.
        billing_count = max(view.billing_retry_count, 1) if primary else 0
        budget_uses = (
            tuple(CardUse(a.at, declined=a.outcome is not AttemptOutcome.SUCCEEDED) for a in own)
            + (CardUse(view.billing_failed_at),) * billing_count
            + token.other_uses
            + token.prior_uses
        )
        standings.append(
            TokenStanding(
                token=token,
                index=index,
                budget=budget_for(token.card_network, config.budgets, config.unknown_network_budget),
                budget_uses=budget_uses,
                retries=len(own) + (view.billing_retry_count if primary else 0),
                declines=tuple(declines),
                hard_declined=token.hard_declined
                or any(d.assessment.decline_class is DeclineClass.NEVER for d in declines),
                blocked_by=_blocked_by(token, declines),
                capped=_is_capped(declines),
            )
        )
    return tuple(standings)


def current_token_index(view: RecoveryView) -> int:
    """The token of the last attempt, or the primary."""
    if view.attempts:
        last = view.attempts[-1].token
        for index, token in enumerate(view.tokens):
            if token.token == last:
                return index
    return 0

"""Smart's cadence per kind of decline: how long to wait after each decline of a token, how many retries the kind
is worth, and whether to aim at the customer's daytime or paydays. Data, with the reason for each row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .declines import DeclineAssessment, DeclineClass

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Cadence:
    """`waits[n]`: smart's wait after the token's (n+1)-th decline (the last wait repeats); at most `max_retries`
    retries of ours on the token while its declines are of this kind. A decline rule's own wait and any network
    advice wait stay floors."""

    name: str
    waits: tuple[timedelta, ...]
    max_retries: int
    daytime: bool  # aim at the customer's daytime (the customer's funds or risk checks are the cause)
    payday: bool  # after the early retries, aim at the customer's paydays
    why: str

    def wait_after(self, declines: int) -> timedelta:
        return self.waits[min(max(declines, 1), len(self.waits)) - 1]


# Issuer or processor trouble clears within hours: retry soon, backing off, few enough to stay far from budgets.
TECHNICAL = Cadence(
    "technical",
    (HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR, DAY, 2 * DAY, 4 * DAY),
    7,
    daytime=False,
    payday=False,
    why="issuer or processor trouble clears within hours (recovery-rules.md: retry soon), backing off",
)
# Generic soft declines (do not honor, call issuer, velocity, risk): front-loaded, a day apart for the first week
# (the decline table's one-day floor; a day apart, the issuer's 24-hour velocity counters never see a burst), then
# spreading out so that the last retry falls near the end of the retry window: most causes clear in days, some in
# weeks. 14 retries and the billing system's failure stay under Visa's 20 per 30 days with room for other invoices.
GENERIC = Cadence(
    "soft",
    (DAY, DAY, DAY, DAY, DAY, DAY, DAY, 2 * DAY, 2 * DAY, 3 * DAY, 3 * DAY, 4 * DAY, 4 * DAY),
    14,
    daytime=True,
    payday=False,
    why="soft decline: front-loaded a day apart, then spread over the retry window",
)
# Insufficient funds: daily for the first week like any soft decline (funds often come back within days: a
# transfer, a top-up), in the customer's daytime, then on each payday morning (Stripe, Chargebee: retry near
# paydays), and at least every four days between paydays (`PAYDAY_GAP`; irregular incomes: gig work, benefits).
INSUFFICIENT_FUNDS = Cadence(
    "insufficient_funds",
    (DAY,) * 7,
    14,
    daytime=True,
    payday=True,
    why="insufficient funds: a week of daily daytime retries, then payday mornings",
)
PAYDAY_GAP = 4 * DAY


def cadence_for(assessment: DeclineAssessment) -> Cadence:
    if assessment.decline_class is DeclineClass.TECHNICAL:
        return TECHNICAL
    if assessment.payday:
        return INSUFFICIENT_FUNDS
    return GENERIC

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
    retries of ours on the token while its declines are of this kind. Any network advice wait stays a floor; the
    decline rule's own wait too when `rule_wait_floor` (otherwise the cadence replaces it)."""

    name: str
    waits: tuple[timedelta, ...]
    max_retries: int
    daytime: bool  # aim at the customer's daytime (the customer's funds or risk checks are the cause)
    payday: bool  # after the early retries, aim at the customer's paydays
    why: str
    rule_wait_floor: bool = True

    def wait_after(self, declines: int) -> timedelta:
        return self.waits[min(max(declines, 1), len(self.waits)) - 1]


# The first days after a soft decline hold most of what is ever recovered, and all of it when customers move on
# quickly: a retry soon after the failure is often approved (a transient issuer or risk verdict, a top-up after
# the customer's failed-payment email). So the first retries come 4 hours apart in the customer's daytime (about
# three a day for two days), then 12 hours, then a day apart: spaced, so that once the cause clears few recent
# declines are on the card when the issuer scores the retry.
FIRST_DAYS = (4 * HOUR,) * 6 + (12 * HOUR,) * 2 + (DAY,) * 3

# Issuer or processor trouble clears within hours: retry soon, backing off, few enough to stay far from budgets.
TECHNICAL = Cadence(
    "technical",
    (HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR, DAY, 2 * DAY, 4 * DAY),
    7,
    daytime=False,
    payday=False,
    why="issuer or processor trouble clears within hours (recovery-rules.md: retry soon), backing off",
)
# Generic soft declines that give no reason (05 do not honor, generic_decline, card_declined, an unknown code):
# the first days dense (`FIRST_DAYS`), then a sparse tail (3 days, then every 5) to the cap: a generic decline
# still open after two weeks rarely clears. The decline table's one-day wait is the class default, not a rule of
# the code, so the cadence replaces it.
GENERIC = Cadence(
    "soft",
    (*FIRST_DAYS, 3 * DAY, 5 * DAY),
    15,
    daytime=True,
    payday=False,
    why="generic soft decline: dense first days, then a sparse tail",
    rule_wait_floor=False,
)
# Soft declines with a specific cause that does not clear within hours (61/65 velocity limits: >= 24 h; 59/62/78
# risk holds: days; 01/02 refer to issuer; 03, 13): a day apart for the first week (the rule's own wait stays a
# floor; a day apart, the issuer's 24-hour velocity counters never see a burst), then spreading to the end of the
# retry window.
SPECIFIC_SOFT = Cadence(
    "specific soft",
    (DAY, DAY, DAY, DAY, DAY, DAY, DAY, 2 * DAY, 2 * DAY, 3 * DAY, 3 * DAY, 4 * DAY, 4 * DAY),
    14,
    daytime=True,
    payday=False,
    why="soft decline with a specific cause: a day apart for a week, then spread over the retry window",
)
# Insufficient funds: the dense first days (funds often come back within days: a transfer, a top-up), in the
# customer's daytime, then on each payday morning (Stripe, Chargebee: retry near paydays), and at least a week
# after the last retry when paydays are further apart (`PAYDAY_GAP`; irregular incomes: gig work, benefits).
# 15 retries and the billing system's failure stay under Visa's 20 per 30 days with room for other invoices.
INSUFFICIENT_FUNDS = Cadence(
    "insufficient_funds",
    FIRST_DAYS,
    15,
    daytime=True,
    payday=True,
    why="insufficient funds: dense first days in the customer's daytime, then payday mornings",
    rule_wait_floor=False,
)
PAYDAY_GAP = 7 * DAY


def cadence_for(assessment: DeclineAssessment) -> Cadence:
    if assessment.decline_class is DeclineClass.TECHNICAL:
        return TECHNICAL
    if assessment.payday:
        return INSUFFICIENT_FUNDS
    if assessment.rule is None or assessment.rule.generic:
        return GENERIC
    return SPECIFIC_SOFT

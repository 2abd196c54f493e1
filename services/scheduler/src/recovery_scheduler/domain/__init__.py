"""The scheduler's domain, pure: the `Recovery` aggregate (recovery.py) and the retry planner it asks
(`decide_next`): which token to charge when, within decline classes and card-network budgets."""

from .budgets import (
    DEFAULT_NETWORK_BUDGETS,
    UNKNOWN_NETWORK_BUDGET,
    NetworkBudget,
    RetryLimit,
    budget_for,
)
from .config import HYPERSWITCH_CASCADING_LADDER, RetryConfig
from .declines import (
    DECLINE_RULES,
    MASTERCARD_ADVICE_RULES,
    STRIPE_ADVICE_RULES,
    DeclineAssessment,
    DeclineClass,
    DeclineRule,
    assess_decline,
)
from .model import (
    Algorithm,
    AttemptOutcome,
    AttemptRecord,
    AwaitBillingSystem,
    BusinessStatus,
    Decision,
    EndOutcome,
    EndRecovery,
    Observe,
    Recheck,
    RecoveryView,
    ScheduleAttempt,
    TokenState,
)
from .networks import CardNetwork, normalize_card_network
from .planner import decide_next, next_payday_slot, paydays

__all__ = [
    "DECLINE_RULES",
    "DEFAULT_NETWORK_BUDGETS",
    "HYPERSWITCH_CASCADING_LADDER",
    "MASTERCARD_ADVICE_RULES",
    "STRIPE_ADVICE_RULES",
    "UNKNOWN_NETWORK_BUDGET",
    "Algorithm",
    "AttemptOutcome",
    "AttemptRecord",
    "AwaitBillingSystem",
    "BusinessStatus",
    "CardNetwork",
    "Decision",
    "DeclineAssessment",
    "DeclineClass",
    "DeclineRule",
    "EndOutcome",
    "EndRecovery",
    "NetworkBudget",
    "Observe",
    "Recheck",
    "RecoveryView",
    "RetryConfig",
    "RetryLimit",
    "ScheduleAttempt",
    "TokenState",
    "assess_decline",
    "budget_for",
    "decide_next",
    "next_payday_slot",
    "normalize_card_network",
    "paydays",
]

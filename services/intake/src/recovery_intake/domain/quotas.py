"""How much configuration one merchant may hold: API keys and profiles are capped per merchant (settings)."""

from __future__ import annotations

from recovery_contracts.api.errors import ApiError

from .rejection import Rejection


def check_quota(merchant_id: str, held: int, cap: int, *, what: str, setting: str, remedy: str) -> None:
    """Refuses one more of `what` when the merchant holds `cap` already (`held` counted just before)."""
    if held >= cap:
        raise Rejection(
            ApiError.PRECONDITION_FAILED,
            message=f"merchant {merchant_id} has {held} {what}, the most allowed ({setting}={cap}): {remedy}",
        )

"""Standard Webhooks secret rotation: the new secret first, the previous ones signing until the overlap ends."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from recovery_contracts.verification import WHSEC_PREFIX

# The new secret plus at most two previous ones: a signature header stays small however often one rotates.
MAX_SECRETS = 3


def new_whsec_secret() -> str:
    """`whsec_` + base64 of 32 random bytes, as the Standard Webhooks specification has it."""
    return WHSEC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class SecretSet:
    """A profile's secrets, newest first (stored sealed); `retire_at`: when all but the first stop signing."""

    secrets: tuple[str, ...]
    retire_at: datetime | None = None

    def rotated(self, new_secret: str, now: datetime, overlap: timedelta) -> SecretSet:
        if overlap <= timedelta(0):
            return SecretSet((new_secret,))
        kept = (new_secret, *self.secrets)[:MAX_SECRETS]
        return SecretSet(kept, now + overlap if len(kept) > 1 else None)

    def due(self, now: datetime) -> bool:
        return self.retire_at is not None and self.retire_at <= now

    def retired(self) -> SecretSet:
        return SecretSet(self.secrets[:1])

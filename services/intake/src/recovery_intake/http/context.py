"""What the routes need, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from recovery_intake.adapters.repository import IntakeRepository
from recovery_intake.handlers import RecoveryIntake
from recovery_intake.http.auth import Authenticator
from recovery_intake.settings import IntakeSettings
from recovery_intake.webhook_secrets import WebhookSecretRotation
from recovery_runtime.clock import Clock
from recovery_runtime.secrets import SecretBox
from recovery_runtime.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class ApiContext:
    settings: IntakeSettings
    repository: IntakeRepository
    auth: Authenticator
    store: UnitOfWork
    clock: Clock
    recovery: RecoveryIntake
    box: SecretBox
    webhook_secrets: WebhookSecretRotation

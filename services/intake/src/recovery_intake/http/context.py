"""What the routes need, built once by the composition root: the handlers for changes, the adapters for reads."""

from __future__ import annotations

from dataclasses import dataclass

from recovery_intake.dependencies import IntakeAdapters
from recovery_intake.handlers.api_keys import ApiKeyIssuer
from recovery_intake.handlers.connector_accounts import ConnectorAccountSetup
from recovery_intake.handlers.dispute_answers import DisputeAnswers
from recovery_intake.handlers.merchants import MerchantOnboarding
from recovery_intake.handlers.profiles import ProfileSettings
from recovery_intake.handlers.recovery import RecoveryIntake
from recovery_intake.handlers.secret_rotation import SecretRotation
from recovery_intake.http.auth import Authenticator
from recovery_intake.settings import IntakeSettings
from recovery_runtime.secrets import SecretBox


@dataclass(frozen=True)
class ApiContext:
    settings: IntakeSettings
    auth: Authenticator
    box: SecretBox
    stored: IntakeAdapters
    recovery: RecoveryIntake
    merchants: MerchantOnboarding
    profiles: ProfileSettings
    secret_rotation: SecretRotation
    api_keys: ApiKeyIssuer
    connector_accounts: ConnectorAccountSetup
    disputes: DisputeAnswers

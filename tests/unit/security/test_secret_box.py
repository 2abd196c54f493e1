"""Secrets at rest: sealing with AES-GCM under a configured master key, key ids for rotation, production refusal."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recovery_intake.settings import IntakeSettings
from recovery_runtime.secrets import (
    DEVELOPMENT_KEY_ID,
    InsecureConfiguration,
    SecretBox,
    SecretUnreadable,
    generate_master_key,
    is_sealed,
)
from recovery_runtime.settings import ServiceSettings

KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()


def box(**settings: object) -> SecretBox:
    return SecretBox.from_settings(ServiceSettings(**settings))


@given(st.text(max_size=300))
def test_what_is_sealed_opens_to_the_same_text_and_never_shows_it(plaintext: str) -> None:
    sealer = box(secrets_master_key=KEY_A)
    sealed = sealer.seal(plaintext)
    assert is_sealed(sealed) and sealed.startswith("enc:v1:main:")
    assert sealer.open(sealed) == plaintext
    # The ciphertext never carries the plaintext (the fixed `enc:v1:main:` prefix aside: "enc:" is in it;
    # from 8 characters a chance match in the random base64 is about 1 in 10^12).
    if len(plaintext) >= 8:
        assert plaintext not in sealed.removeprefix("enc:v1:main:")


def test_sealing_twice_gives_different_ciphertexts() -> None:
    sealer = box(secrets_master_key=KEY_A)
    assert sealer.seal("sk_test_x") != sealer.seal("sk_test_x")


def test_an_altered_or_relabelled_value_does_not_open() -> None:
    sealer = box(secrets_master_keys=f"k1:{KEY_A},k2:{KEY_B}", secrets_active_key_id="k1")
    sealed = sealer.seal("whsec_secret")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    relabelled = sealed.replace("enc:v1:k1:", "enc:v1:k2:")
    for bad in (tampered, relabelled, "whsec_plaintext", "enc:v1:k9:abcd"):
        with pytest.raises(SecretUnreadable):
            sealer.open(bad)


def test_open_if_sealed_opens_a_sealed_value_and_passes_plaintext_from_before_sealing_through() -> None:
    sealer = box(secrets_master_key=KEY_A)
    assert sealer.open_if_sealed(sealer.seal("Bearer token")) == "Bearer token"
    assert sealer.open_if_sealed("Bearer token") == "Bearer token"
    with pytest.raises(SecretUnreadable):
        sealer.open_if_sealed(box(secrets_master_key=KEY_B).seal("x"))  # sealed under another key: never sent as is


def test_rotation_keeps_old_values_readable_and_reseals_under_the_new_key() -> None:
    old = box(secrets_master_key=KEY_A, secrets_master_key_id="k1")
    sealed = old.seal("hash-key")
    rotated = box(secrets_master_keys=f"k2:{KEY_B},k1:{KEY_A}")
    assert rotated.active_key_id == "k2"
    assert rotated.open(sealed) == "hash-key"
    resealed = rotated.reseal(sealed)
    assert resealed.startswith("enc:v1:k2:") and rotated.open(resealed) == "hash-key"
    with pytest.raises(SecretUnreadable):
        box(secrets_master_key=KEY_B, secrets_master_key_id="k2").open(sealed)


def test_development_falls_back_to_an_obviously_dev_only_key() -> None:
    assert box().active_key_id == DEVELOPMENT_KEY_ID
    # A passphrase (compose's development default) is stretched outside production.
    assert (
        box(secrets_master_key="development-only-secrets-master-key").open(
            box(secrets_master_key="development-only-secrets-master-key").seal("x")
        )
        == "x"
    )


PRODUCTION = {
    "api_key_environment": "prd",
    "internal_api_token": "a-real-internal-token-0123456789",
    "rabbitmq_url": "amqp://intake:s3cret@rabbitmq:5672/",
}


def test_production_refuses_to_start_without_a_master_key_or_with_development_defaults() -> None:
    with pytest.raises(InsecureConfiguration, match="SECRETS_MASTER_KEY"):
        SecretBox.from_settings(ServiceSettings(**PRODUCTION))
    with pytest.raises(ValueError, match="INTERNAL_API_TOKEN"):
        ServiceSettings(**{**PRODUCTION, "internal_api_token": "development-only-internal-token"})
    with pytest.raises(ValueError, match="RABBITMQ_URL"):
        ServiceSettings(**{**PRODUCTION, "rabbitmq_url": "amqp://guest:guest@127.0.0.1:5672/"})
    with pytest.raises(ValueError, match="ADMIN_API_KEY"):
        IntakeSettings(**PRODUCTION)
    settings = IntakeSettings(
        **PRODUCTION,
        secrets_master_key=generate_master_key(),
        admin_api_key=os.urandom(24).hex(),
        api_key_hash_secret=os.urandom(24).hex(),
    )
    assert settings.is_production and settings.http_allowed_hosts == frozenset()
    assert SecretBox.from_settings(settings).active_key_id == "main"


@pytest.mark.parametrize("development_key", ["test_admin", "development-admin-key"])
def test_production_refuses_the_development_admin_keys_by_name(development_key: str) -> None:
    real = {"secrets_master_key": generate_master_key(), "api_key_hash_secret": os.urandom(24).hex()}
    with pytest.raises(ValueError, match=f"ADMIN_API_KEY is '{development_key}', a development key"):
        IntakeSettings(**PRODUCTION, **real, admin_api_key=development_key)
    # Outside production they are what development runs with.
    assert IntakeSettings(admin_api_key=development_key).production_problems()
    with pytest.raises(ValueError, match="ADMIN_API_KEY is shorter than 32 characters"):
        IntakeSettings(**PRODUCTION, **real, admin_api_key="a-real-but-short-key")


def test_production_accepts_only_a_real_32_byte_key() -> None:
    with pytest.raises(InsecureConfiguration):
        SecretBox.from_settings(ServiceSettings(**PRODUCTION, secrets_master_key="a passphrase"))

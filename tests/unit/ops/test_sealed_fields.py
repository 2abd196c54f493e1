"""`recovery_cli.sealed_fields` names every field intake seals: a secret it missed would stay under an old master
key after `recovery secrets reseal`, and dropping that key would make it unreadable. (The consumers' copies and
everything the running services write: tests/integration/ops/test_secrets_command.py.)"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from recovery_cli.sealed_fields import Holds, SealedField
from recovery_cli.secrets_at_rest import NOT_SEALED, key_id_of, key_ids_in_body, stored_values
from recovery_contracts.api.connector_accounts import ConnectorAuth
from recovery_intake.domain.profiles import changed_profile, new_profile, secrets_of, with_secrets
from recovery_intake.domain.sealed_fields import CONNECTOR_SECRET_FIELDS, seal_connector_body, seal_profile_secrets
from recovery_runtime.secrets import SecretBox
from support.sealed_values import as_listed, listed_paths, sealed_paths

BOX = SecretBox({"unit": b"k" * 32}, "unit")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_every_secret_of_a_profile_is_listed() -> None:
    fields = {
        "profile_name": "default",
        "payment_response_hash_key": "hash-key",
        "webhook_details": {"webhook_url": "https://merchant.example/hooks", "webhook_password": "password"},
        "outgoing_webhook_custom_http_headers": {"Authorization": "Bearer token", "X-Tenant": "tenant-7"},
    }
    created = new_profile(
        fields, profile_id="pro_1", merchant_id="m_1", webhook_secret="whsec_x", seal=BOX.seal, now=NOW
    ).profile
    two_secrets = secrets_of(created).rotated(BOX.seal("whsec_y"), NOW, timedelta(hours=1))
    rotated = with_secrets(created, two_secrets, NOW).profile
    changes = seal_profile_secrets({"payment_response_hash_key": "another", "profile_name": "renamed"}, BOX.seal)
    changed = changed_profile(rotated, changes, seal=BOX.seal, now=NOW).profile
    # A profile stored before header values were sealed: its next change seals them.
    legacy = {**rotated, "outgoing_webhook_custom_http_headers": {"Authorization": "Bearer token"}}
    resealed = changed_profile(legacy, changes, seal=BOX.seal, now=NOW).profile
    for doc in (created, rotated, changed, resealed):
        assert as_listed(sealed_paths(doc), "profiles") == listed_paths("profiles")
    assert "outgoing_webhook_custom_http_headers.*" in listed_paths("profiles")


@pytest.mark.parametrize("variant", get_args(get_args(ConnectorAuth)[0]), ids=lambda v: v.__name__)
def test_every_credential_of_every_connector_auth_type_is_sealed_where_the_list_says(variant: type[Any]) -> None:
    auth_type = get_args(variant.model_fields["auth_type"].annotation)[0]
    credentials = {name: f"secret-{name}" for name in variant.model_fields if name != "auth_type"}
    body = {
        "connector_name": "stripe",
        "connector_account_details": {"auth_type": auth_type, **credentials},
        "connector_webhook_details": {"merchant_secret": "user", "additional_secret": "password"},
    }
    stored = {"body": seal_connector_body(body, BOX.seal)}
    found = sealed_paths(stored)
    assert found == {f"body.connector_account_details.{name}" for name in credentials} | {
        "body.connector_webhook_details.merchant_secret",
        "body.connector_webhook_details.additional_secret",
    }
    assert found <= listed_paths("connector_accounts")


def test_the_connector_fields_are_intakes_own_list() -> None:
    intakes = {f"body.{block}.{name}" for block, names in CONNECTOR_SECRET_FIELDS.items() for name in names}
    assert listed_paths("connector_accounts") == intakes


def test_values_are_read_at_their_path_one_a_list_or_a_dicts_values() -> None:
    doc = {
        "a": {"b": "enc:v1:old:AAAA"},
        "l": ["enc:v1:new:BB", "plain", 3],
        "d": {"Authorization": "enc:v1:old:CC", "X-Tenant": "plain", "n": None},
        "n": None,
    }
    assert stored_values(doc, SealedField("c", "a.b", "x")) == ["enc:v1:old:AAAA"]
    assert stored_values(doc, SealedField("c", "l", "x", Holds.LIST)) == ["enc:v1:new:BB", "plain"]
    assert stored_values(doc, SealedField("c", "d", "x", Holds.DICT_VALUES)) == ["enc:v1:old:CC", "plain"]
    assert stored_values(doc, SealedField("c", "n", "x", Holds.DICT_VALUES)) == []
    assert SealedField("c", "d", "x", Holds.DICT_VALUES).name == "c.d.*"
    assert stored_values(doc, SealedField("c", "n", "x")) == []
    assert stored_values(doc, SealedField("c", "a.missing.deeper", "x")) == []
    assert [key_id_of(v) for v in ("enc:v1:old:AAAA", "plain", "enc:v1:bad id:AA")] == ["old", NOT_SEALED, NOT_SEALED]


def test_sealed_values_in_a_message_body_are_counted_per_key_id() -> None:
    token = base64.urlsafe_b64encode(b"x" * 20).decode().rstrip("=")
    body = f'{{"hash_key":"enc:v1:old:{token}","secrets":["enc:v1:old:{token}","enc:v1:new:{token}"]}}'.encode()
    assert key_ids_in_body(body) == {"old": 2, "new": 1}
    assert key_ids_in_body(b'{"note":"no secret"}') == {}

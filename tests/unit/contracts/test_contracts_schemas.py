"""The checked-in JSON Schemas are exactly what the models generate (the CI drift check), and they validate
the seed's bodies as the models do."""

from __future__ import annotations

import json

import jsonschema
import pytest
from contracts_seed import load_seed

from recovery_contracts import schemas

pytestmark = pytest.mark.unit


def test_generated_schemas_equal_the_checked_in_files(tmp_path):
    schemas.generate(tmp_path)

    generated = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*.json")}
    checked_in = {
        p.relative_to(schemas.DEFAULT_DIR).as_posix(): p.read_text() for p in schemas.DEFAULT_DIR.rglob("*.json")
    }
    assert sorted(generated) == sorted(checked_in)
    drifted = [path for path in generated if generated[path] != checked_in[path]]
    assert not drifted, f"run `uv run python -m recovery_contracts.schemas --write`: {drifted}"


def test_check_command_reports_a_drifted_file(tmp_path, capsys):
    schemas.generate(tmp_path)
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 0

    (tmp_path / "http" / "RecoveryPaymentsCreate.json").write_text("{}\n")
    (tmp_path / "http" / "Gone.json").write_text("{}\n")

    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "http/RecoveryPaymentsCreate.json" in err and "http/Gone.json" in err


def test_generation_is_deterministic():
    assert schemas.render() == schemas.render()


@pytest.mark.parametrize(
    ("schema", "seed"),
    [
        ("http/RecoveryPaymentsCreate.json", "recovery-request.json"),
        ("http/ConnectorAccountCreate.json", "payment-connector-account.json"),
        ("http/ConnectorAccountCreate.json", "billing-connector-account.json"),
        ("http/ProfileUpdate.json", "profile-update.json"),
        ("webhooks/OutgoingWebhook.json", "webhook-sample.json"),
    ],
)
def test_schema_accepts_the_seed_body_and_rejects_unknown_fields(schema, seed):
    document = json.loads((schemas.DEFAULT_DIR / schema).read_text())
    body = load_seed(seed)
    jsonschema.validate(body, document)

    body["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, document)

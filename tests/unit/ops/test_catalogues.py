"""The generated catalogues: checked in, in step with the code, and complete."""

from __future__ import annotations

import json
from typing import Any

import pytest

from recovery_cli import catalogues
from recovery_cli.main import main
from recovery_contracts import schemas
from recovery_contracts.envelope import MessageType
from recovery_runtime.topology import QUEUES


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return catalogues.render()


def test_checked_in_catalogues_match_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["catalogues", "--check"])
    assert status == 0, f"run `make catalogues`: {capsys.readouterr().err}"


def test_the_check_fails_on_drift(tmp_path: Any) -> None:
    catalogues.write(tmp_path)
    (tmp_path / "docs/catalogue/asyncapi.json").write_text("{}\n")
    assert catalogues.drifted(tmp_path) == ["docs/catalogue/asyncapi.json"]


def test_rendering_is_deterministic(rendered: dict[str, str]) -> None:
    assert catalogues.render() == rendered


def test_openapi_describes_the_public_api(rendered: dict[str, str]) -> None:
    document = json.loads(rendered["docs/catalogue/openapi.json"])
    assert document["openapi"].startswith("3.")
    assert "/v2/payments/recovery" in document["paths"]
    # The operational routes are not part of the public API.
    assert not {"/healthz", "/readyz", "/metrics"} & set(document["paths"])


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_names_every_queue_exchange_routing_key_and_message(rendered: dict[str, str]) -> None:
    document = json.loads(rendered["docs/catalogue/asyncapi.json"])
    assert document["asyncapi"] == "3.0.0"
    channels = document["channels"]
    for queue in QUEUES.values():
        channel = channels[queue.name]
        assert channel["address"] == queue.routing_key
        assert channel["x-exchange"]["name"] == queue.exchange.name
        assert channel["x-dead-letter-queue"] == queue.dead_letter_queue
        assert channels[queue.dead_letter_queue]["x-exchange"]["name"] == "recovery.dead-letter"
        message = _resolve(document, channel["messages"]["SubscribeMessage"]["$ref"])
        assert message["name"] == queue.message_type.value
    for message_type in MessageType:
        message = document["components"]["messages"][message_type.value]
        schema = _resolve(document, message["payload"]["$ref"])
        assert set(schema["required"]) >= {"type", "payload"}
        assert schema["properties"]["payload"]
        assert document["operations"][f"publish:{message_type.value}"]["action"] == "send"


def test_every_asyncapi_reference_resolves(rendered: dict[str, str]) -> None:
    document = json.loads(rendered["docs/catalogue/asyncapi.json"])
    for ref in _refs(document):
        assert _resolve(document, ref) is not None, ref


def test_every_openapi_reference_resolves(rendered: dict[str, str]) -> None:
    document = json.loads(rendered["docs/catalogue/openapi.json"])
    for ref in _refs(document):
        assert _resolve(document, ref) is not None, ref


def _json_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """`<METHOD> <path> request` / `<METHOD> <path> <status>` -> the schema of that JSON body."""
    bodies: dict[str, Any] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            request = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if request is not None:
                bodies[f"{method.upper()} {path} request"] = request["schema"]
            for status, answer in operation.get("responses", {}).items():
                media = answer.get("content", {}).get("application/json")
                if media is not None:
                    bodies[f"{method.upper()} {path} {status}"] = media["schema"]
    return bodies


def test_every_body_model_the_public_api_names_has_a_checked_in_json_schema(rendered: dict[str, str]) -> None:
    # Other teams build against libs/contracts/schemas/http: a model the API answers or takes must be there.
    document = json.loads(rendered["docs/catalogue/openapi.json"])
    checked_in = {
        name.removeprefix("http/").removesuffix(".json") for name in schemas.render() if name.startswith("http/")
    }
    missing = {
        ref.rsplit("/", 1)[-1]: where
        for where, schema in _json_bodies(document).items()
        for ref in _refs(schema)
        if ref.rsplit("/", 1)[-1] not in checked_in
    }
    assert missing == {}, "add these models to recovery_contracts.schemas and run `make schemas`"


def test_the_forwarded_event_routes_describe_their_bodies(rendered: dict[str, str]) -> None:
    # Forwarded to the dispatcher, which validates them; described here all the same, written in place.
    bodies = _json_bodies(json.loads(rendered["docs/catalogue/openapi.json"]))
    listed = bodies["POST /events/{merchant_id} request"]
    assert set(listed["properties"]) >= {"limit", "offset", "event_classes", "event_types", "cursor"}
    assert "$defs" not in listed and not any(ref.startswith("#/$defs/") for ref in _refs(listed))
    assert bodies["POST /events/{merchant_id} 200"] == {"$ref": "#/components/schemas/TotalEventsResponse"}
    assert bodies["GET /events/{merchant_id}/{event_id}/attempts 200"]["items"] == {
        "$ref": "#/components/schemas/EventRetrieveResponse"
    }
    assert bodies["POST /events/{merchant_id}/{event_id}/retry 200"] == {
        "$ref": "#/components/schemas/EventRetrieveResponse"
    }


def test_the_configuration_reference_lists_and_explains_every_setting(rendered: dict[str, str]) -> None:
    text = rendered["docs/configuration.md"]
    for entry in catalogues.services():
        for name in entry.settings.model_fields:
            assert f"| `{name.upper()}` |" in text, name
    undocumented = [line for line in text.splitlines() if line.startswith("| `") and line.rstrip().endswith("|  |")]
    assert undocumented == [], "say what these settings do (a comment above the field, or _PLAIN_DESCRIPTIONS)"

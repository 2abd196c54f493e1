"""`recovery secrets status|reseal` on what the running services wrote under an old master key: every value ends
under the new key with the same plaintext and nothing else changed; a second run re-seals nothing; a dry run and a
value under a key that is not configured change nothing; a document a service writes meanwhile wins.

The services (intake over HTTP, the dispatcher and executor projecting its messages) run once for the module with
master key `old`; each test gets a copy of the database they left.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import httpx
import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database

from recovery_cli.commands.secrets import render_outcomes
from recovery_cli.sealed_fields import SEALED_FIELDS, Holds
from recovery_cli.secrets_at_rest import apply_reseal, plan_reseal, stored_at, stored_values
from recovery_cli.seed_scenario import Endpoints, MerchantSetup, SeedScenario
from recovery_contracts.messages import ProfileUpdated
from recovery_dispatcher.adapters.endpoint_repository import MongoEndpointRepository
from recovery_dispatcher.app import build_service as build_dispatcher
from recovery_dispatcher.settings import DispatcherSettings
from recovery_executor.app import build_service as build_executor
from recovery_executor.settings import ExecutorSettings
from recovery_intake.app import build_service as build_intake
from recovery_intake.domain.profiles import profile_updated
from recovery_intake.settings import IntakeSettings
from recovery_runtime.bus import OutgoingMessage
from recovery_runtime.secrets import SecretBox
from recovery_runtime.topology import QUEUES
from recovery_sandbox.receiver import create_app as receiver_app
from recovery_sandbox.stripe import create_app as stripe_app
from support.mongodb import database_name_for, drop_database
from support.rabbitmq import VirtualHosts
from support.sealed_values import as_listed, listed_paths, sealed_paths
from support.secrets_command import command_environment, run
from support.services import serving, settings_for
from support.stack import Isolation, own_isolation

OLD = base64.b64encode(b"o" * 32).decode()
NEW = base64.b64encode(b"n" * 32).decode()
OLD_BOX = SecretBox({"old": base64.b64decode(OLD)}, "old")
NEW_BOX = SecretBox({"new": base64.b64decode(NEW)}, "new")
ADMIN = "secrets_command_test_admin_key"
Document = dict[str, Any]


@pytest.fixture(scope="module")
def written(virtual_hosts: VirtualHosts, mongodb_url: str) -> Iterator[Isolation]:
    """The database the services left after writing every kind of secret sealed under `old` (stopped since)."""
    keys = {"secrets_master_keys": f"old:{OLD}", "secrets_active_key_id": "old"}
    with own_isolation("secrets-command", virtual_hosts, mongodb_url) as isolation:
        with serving() as serve, MongoClient(isolation.mongodb_url) as client:
            stripe = serve(stripe_app())
            receiver = serve(receiver_app())
            dispatcher = settings_for(DispatcherSettings, isolation, outbound_allowed_cidrs="127.0.0.0/8", **keys)
            serve(build_dispatcher(dispatcher))
            serve(build_executor(settings_for(ExecutorSettings, isolation, stripe_api_base=stripe.url, **keys)))
            intake = serve(build_intake(settings_for(IntakeSettings, isolation, admin_api_key=ADMIN, **keys)))
            endpoints = Endpoints(intake.url, stripe.url, receiver.url, ADMIN)
            merchant = SeedScenario(endpoints, say=lambda _: None).bootstrap()
            _every_other_secret(endpoints, merchant)
            _wait_until_projected(client[isolation.mongodb_database], merchant.profile_id)
        yield isolation


def _every_other_secret(endpoints: Endpoints, merchant: MerchantSetup) -> None:
    """Beyond the seed's: a webhook password, custom webhook headers, a second Standard Webhooks secret, a Chargebee
    account's basic auth."""

    def call(method: str, path: str, body: Any, headers: dict[str, str]) -> None:
        answer = httpx.request(method, f"{endpoints.intake_url}{path}", json=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text

    admin = {"api-key": ADMIN, "x-merchant-id": merchant.merchant_id, "x-profile-id": merchant.profile_id}
    webhook = {"webhook_url": endpoints.webhook_url, "webhook_username": "merchant", "webhook_password": "pw-1"}
    headers = {"Authorization": "Bearer endpoint-token", "X-Tenant": "tenant-7"}
    profile = {"webhook_details": webhook, "outgoing_webhook_custom_http_headers": headers}
    call("PUT", f"/v2/profiles/{merchant.profile_id}", profile, admin)
    call("POST", f"/v2/profiles/{merchant.profile_id}/webhook-secret/rotate", {"overlap_seconds": 2_592_000}, admin)
    chargebee = {
        "connector_type": "billing_processor",
        "connector_name": "chargebee",
        "profile_id": merchant.profile_id,
        "connector_account_details": {"auth_type": "HeaderKey", "api_key": "cb_test_key"},
        "connector_webhook_details": {"merchant_secret": "chargebee-user", "additional_secret": "chargebee-pw"},
        "feature_metadata": {
            "revenue_recovery": {
                "max_retry_count": 3,
                "billing_connector_retry_threshold": 0,
                "billing_account_reference": {merchant.payment_mca: "gw_1"},
                "record_back_url": "http://127.0.0.1:9/chargebee",
            }
        },
    }
    call("POST", "/v2/connector-accounts", chargebee, merchant.headers())


def _wait_until_projected(db: Database[Document], profile_id: str, timeout: float = 30.0) -> None:
    """The dispatcher holds the profile's last version, the executor every account, intake's outbox is empty."""
    deadline = time.monotonic() + timeout
    while True:
        profile = db.profiles.find_one({"_id": profile_id}) or {}
        endpoint = db.webhook_endpoints.find_one({"_id": profile_id}) or {}
        if (
            endpoint.get("version") == profile.get("version")
            and db.connector_credentials.count_documents({}) == db.connector_accounts.count_documents({}) == 3
            and db.outbox_intake.count_documents({}) == 0
        ):
            return
        assert time.monotonic() < deadline, "the consumers did not project intake's messages"
        time.sleep(0.1)


@pytest.fixture
def db(written: Isolation, mongodb_url: str, request: pytest.FixtureRequest) -> Iterator[Database[Document]]:
    """A copy of what the services wrote (documents and indexes), in a database of the test's own."""
    name = database_name_for(request.node.name)
    with MongoClient(mongodb_url, tz_aware=True) as client:
        source, copied = client[written.mongodb_database], client[name]
        for collection in source.list_collection_names():
            documents = list(source[collection].find())
            if documents:
                copied[collection].insert_many(documents)
            for index in source[collection].list_indexes():
                if index["name"] != "_id_":
                    copied[collection].create_index(list(index["key"].items()), name=index["name"])
        yield copied
    drop_database(mongodb_url, name)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch, db: Database[Document], mongodb_url: str) -> None:
    """The command's environment: the rotation's keys (`new` active, `old` still readable) and the test's database."""
    command_environment(
        monkeypatch, master_keys=f"new:{NEW},old:{OLD}", active_key_id="new", mongodb_url=mongodb_url, database=db.name
    )


def status(capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run("status", "--json", *options, capsys=capsys)
    return code, json.loads(out)


def snapshot(db: Database[Document]) -> dict[str, list[Document]]:
    return {name: list(db[name].find().sort("_id")) for name in sorted(db.list_collection_names())}


def without_sealed_fields(doc: Document, collection: str) -> Document:
    rest = copy.deepcopy(doc)
    for sealed in SEALED_FIELDS:
        if sealed.collection == collection:
            *parents, last = sealed.path.split(".")
            holder: Any = rest
            for part in parents:
                holder = holder.get(part) if isinstance(holder, dict) else None
            if isinstance(holder, dict):
                holder.pop(last, None)
    return rest


# ---- the list of sealed fields against what the services wrote ----------------------------------------------


def test_every_sealed_value_the_services_wrote_is_in_a_listed_field(db: Database[Document]) -> None:
    found: dict[str, set[str]] = {}
    for collection in db.list_collection_names():
        for doc in db[collection].find():
            found.setdefault(collection, set()).update(as_listed(sealed_paths(doc), collection))
    assert {c: paths for c, paths in found.items() if paths} == {
        "profiles": listed_paths("profiles"),
        "webhook_endpoints": listed_paths("webhook_endpoints"),
        "connector_credentials": listed_paths("connector_credentials"),
        "connector_accounts": {
            "body.connector_account_details.api_key",
            "body.connector_webhook_details.merchant_secret",
            "body.connector_webhook_details.additional_secret",
        },
    }


# ---- status ------------------------------------------------------------------------------------------------


def test_status_counts_each_field_per_key_id_and_the_messages_awaiting_publish(
    db: Database[Document], keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = status(capsys)
    assert code == 3
    assert report["active_key_id"] == "new"
    stored = report["stored"]
    assert stored["profiles.payment_response_hash_key"] == {"old": 1}
    assert stored["profiles.standard_webhooks_secrets"] == {"old": 2}  # rotated: both sign during the overlap
    assert stored["profiles.webhook_details.webhook_password"] == {"old": 1}
    assert stored["profiles.outgoing_webhook_custom_http_headers.*"] == {"old": 2}
    assert stored["webhook_endpoints.hash_key"] == {"old": 1}
    assert stored["webhook_endpoints.whsec_secrets"] == {"old": 2}
    assert stored["webhook_endpoints.custom_headers.*"] == {"old": 2}
    # The stripe and chargebee accounts have keys; custombilling has none (NoKey).
    assert stored["connector_accounts.body.connector_account_details.api_key"] == {"old": 2}
    assert stored["connector_credentials.api_key"] == {"old": 2}
    assert stored["connector_accounts.body.connector_webhook_details.additional_secret"] == {"old": 1}
    assert stored["connector_accounts.body.connector_account_details.key1"] == {}
    assert report["awaiting"]["outbox_intake"] == {}

    # A profile.updated awaiting publish (intake died between its commit and the publish) is counted.
    profile = db.profiles.find_one()
    assert profile is not None
    db.outbox_intake.insert_one(OutgoingMessage.of(profile_updated(profile)).to_document(profile["modified_at"]))
    # The hash key, the two secrets and the two header values.
    assert status(capsys)[1]["awaiting"]["outbox_intake"] == {"old": 5}

    code, out, _ = run("status", capsys=capsys)
    assert code == 3
    assert "run `recovery secrets reseal`" in out and "profiles.payment_response_hash_key" in out


def test_status_counts_what_the_dead_letter_queues_hold(
    written: Isolation, db: Database[Document], keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = db.profiles.find_one()
    assert profile is not None
    dead_letter_queue = QUEUES["dispatcher.profile-updated"].dead_letter_queue
    body = profile_updated(profile).model_dump_json().encode()
    asyncio.run(_dead_letter(written.rabbitmq_url, dead_letter_queue, body))
    try:
        code, report = status(capsys, "--dead-letters", "--rabbitmq-url", written.rabbitmq_url)
        assert code == 3
        assert report["awaiting"][dead_letter_queue] == {"old": 5}
    finally:
        asyncio.run(_purge(written.rabbitmq_url, dead_letter_queue))


async def _dead_letter(url: str, queue: str, body: bytes) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(aio_pika.Message(body, message_id="dead-profile-updated"), queue)


async def _purge(url: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await (await channel.declare_queue(queue, passive=True)).purge()


# ---- reseal ------------------------------------------------------------------------------------------------


def test_reseal_puts_every_value_under_the_active_key_with_the_same_plaintext_and_nothing_else_changed(
    db: Database[Document], keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(db)
    code, out, err = run("reseal", capsys=capsys)
    assert code == 0, err
    assert "webhook_endpoints        re-sealed 5 value(s) in 1 document(s)" in out
    after = snapshot(db)

    assert after.keys() == before.keys()
    for collection, documents in after.items():
        assert [without_sealed_fields(d, collection) for d in documents] == [
            without_sealed_fields(d, collection) for d in before[collection]
        ], f"{collection}: a field other than a sealed one changed (versions included)"
    for sealed in SEALED_FIELDS:
        for old, new in zip(before[sealed.collection], after[sealed.collection], strict=True):
            old_values, new_values = stored_values(old, sealed), stored_values(new, sealed)
            assert len(new_values) == len(old_values)
            assert [NEW_BOX.open(v) for v in new_values] == [OLD_BOX.open(v) for v in old_values], sealed.name
            if sealed.holds is Holds.DICT_VALUES:  # each value under its own name still
                assert list(stored_at(new, sealed)) == list(stored_at(old, sealed)), sealed.name

    code, report = status(capsys)
    assert code == 0
    assert all(set(counts) <= {"new"} for counts in report["stored"].values())
    assert report["stored"]["profiles.standard_webhooks_secrets"] == {"new": 2}

    code, out, _ = run("reseal", capsys=capsys)
    assert code == 0
    assert out.splitlines()[-1] == "in all: re-sealed 0 value(s) in 0 document(s)"
    assert snapshot(db) == after


def test_a_dry_run_counts_and_writes_nothing(
    db: Database[Document], keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(db)
    code, out, _ = run("reseal", "--dry-run", capsys=capsys)
    assert code == 0
    assert out.startswith("dry run:")
    assert "profiles                 would re-seal 6 value(s) in 1 document(s)" in out
    assert snapshot(db) == before


def test_messages_awaiting_publish_are_counted_but_not_rewritten(
    db: Database[Document], keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = db.profiles.find_one()
    assert profile is not None
    message = OutgoingMessage.of(profile_updated(profile)).to_document(profile["modified_at"])
    db.outbox_intake.insert_one(message)
    code, out, _ = run("reseal", capsys=capsys)
    assert code == 0
    assert "not re-sealed: 5 value(s) under other keys in messages awaiting publish (outbox_intake: 5)" in out
    assert db.outbox_intake.find_one() == message
    assert status(capsys)[0] == 3
    db.outbox_intake.delete_many({})  # published
    assert status(capsys)[0] == 0


def test_a_value_under_a_key_that_is_not_configured_stops_the_reseal_before_any_write(
    db: Database[Document], keys: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lost_key = SecretBox({"gone": b"g" * 32}, "gone")
    endpoint = db.webhook_endpoints.find_one()
    assert endpoint is not None
    db.webhook_endpoints.update_one({"_id": endpoint["_id"]}, {"$set": {"hash_key": lost_key.seal("hash-key")}})
    before = snapshot(db)

    code, _, err = run("reseal", capsys=capsys)
    assert code == 1
    assert "cannot re-seal: nothing was changed" in err
    assert "not configured (configured: new (active), old):\n  gone: webhook_endpoints.hash_key: 1\n" in err
    assert snapshot(db) == before

    monkeypatch.setenv("SECRETS_MASTER_KEYS", f"new:{NEW}")  # `old` dropped too early
    code, _, err = run("reseal", capsys=capsys)
    assert code == 1 and "\n  old: connector_accounts.body.connector_account_details.api_key: 2, " in err
    assert snapshot(db) == before


def test_a_document_a_service_writes_between_read_and_write_keeps_what_the_service_wrote(
    db: Database[Document], keys: None, mongodb_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    box = SecretBox({"new": NEW_BOX.keys["new"], "old": OLD_BOX.keys["old"]}, "new")
    plan = plan_reseal(db, box)
    # Meanwhile the dispatcher applies a newer profile.updated (intake still seals under `old`: not yet rolled).
    profile = db.profiles.find_one()
    assert profile is not None
    newer = {**profile, "version": profile["version"] + 1, "payment_response_hash_key": OLD_BOX.seal("rotated")}
    asyncio.run(_dispatcher_applies(mongodb_url, db.name, profile_updated(newer).payload))
    written_by_dispatcher = db.webhook_endpoints.find_one({"_id": profile["_id"]})

    outcomes = apply_reseal(db, plan)
    assert outcomes["webhook_endpoints"].changed_meanwhile == 1
    assert outcomes["webhook_endpoints"].documents == 0 and outcomes["profiles"].documents == 1
    assert db.webhook_endpoints.find_one({"_id": profile["_id"]}) == written_by_dispatcher
    assert "1 document(s) changed meanwhile (a service wrote them), left as written: run again" in render_outcomes(
        outcomes, box, dry_run=False
    )

    code, out, _ = run("reseal", capsys=capsys)  # run again
    assert code == 0 and "webhook_endpoints        re-sealed 5 value(s) in 1 document(s)" in out
    endpoint = db.webhook_endpoints.find_one({"_id": profile["_id"]})
    assert endpoint is not None and NEW_BOX.open(endpoint["hash_key"]) == "rotated"


async def _dispatcher_applies(url: str, database: str, update: ProfileUpdated) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(url, tz_aware=True)
    try:
        assert await MongoEndpointRepository(client[database]).apply(update, None)
    finally:
        await client.close()

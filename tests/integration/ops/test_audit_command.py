"""`recovery audit` reads the trail the seed's set-up left at the running intake (`GET /v2/audit-events`): the
platform's own entries with the admin key, a merchant's with its key or the admin key naming it, the refused ones,
page after page."""

from __future__ import annotations

import json

import httpx
import pytest

from recovery_cli.audit_trail import AuditTrail, TrailQuery
from recovery_cli.main import main


def _audit(seed_flow, capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    stack = seed_flow.stack
    code = main(["audit", "--intake-url", stack.intake_url, "--api-key", stack.admin_api_key, *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_admin_key_naming_no_merchant_reads_the_platforms_trail(
    seed_flow, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _audit(seed_flow, capsys, "--limit", "100")
    assert code == 0
    assert "done     The admin key: Created the merchant account  (POST /v2/merchant-accounts -> 200)" in out, out


def test_a_merchants_trail_names_who_did_what_on_which_ids(seed_flow, capsys: pytest.CaptureFixture[str]) -> None:
    setup = seed_flow.setup
    code, out, _ = _audit(seed_flow, capsys, "--merchant", setup.merchant_id, "--limit", "100", "--json")
    assert code == 0
    entries = json.loads(out)
    assert entries and all(entry["merchant_id"] == setup.merchant_id for entry in entries)
    routes = {f"{entry['method']} {entry['route']}" for entry in entries}
    assert {"POST /v2/profiles", "POST /v2/api-keys", "POST /v2/connector-accounts"} <= routes, routes
    assert [entry["created_at"] for entry in entries] == sorted((e["created_at"] for e in entries), reverse=True)

    code, out, _ = _audit(seed_flow, capsys, "--merchant", setup.merchant_id, "--limit", "100")
    assert code == 0
    assert "The admin key: Created a profile" in out, out
    assert len(out.splitlines()) == len(entries)


def test_a_refused_request_is_listed_with_refused_and_a_merchant_key_reads_its_own_trail(
    seed_flow, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = seed_flow.setup
    refused = httpx.delete(
        f"{seed_flow.stack.intake_url}/v2/api-keys/key_notThere", headers=setup.headers(), timeout=15
    )
    assert refused.status_code == 404, refused.text

    own_key = ["--api-key", setup.api_key, "--merchant", setup.merchant_id]
    code = main(["audit", "--intake-url", seed_flow.stack.intake_url, *own_key, "--refused"])
    out = capsys.readouterr().out
    assert code == 0
    (line,) = out.splitlines()
    assert "  refused  API key " in line and ": Revoked an API key [key_id=key_notThere]" in line, line
    assert line.endswith("(DELETE /v2/api-keys/{key_id} -> 404)"), line


def test_more_entries_than_a_page_are_read_page_after_page(seed_flow) -> None:
    stack, setup = seed_flow.stack, seed_flow.setup
    query = TrailQuery(merchant_id=setup.merchant_id, limit=100)
    whole = AuditTrail(stack.intake_url, stack.admin_api_key).read(query)
    assert len(whole) >= 5
    paged = AuditTrail(stack.intake_url, stack.admin_api_key, page_size=2).read(query)
    assert [entry.event_id for entry in paged] == [entry.event_id for entry in whole]
    first_three = AuditTrail(stack.intake_url, stack.admin_api_key, page_size=2).read(
        TrailQuery(merchant_id=setup.merchant_id, limit=3)
    )
    assert [entry.event_id for entry in first_three] == [entry.event_id for entry in whole[:3]]


def test_a_window_of_time_reads_the_entries_made_within_it(seed_flow, capsys: pytest.CaptureFixture[str]) -> None:
    stack, setup = seed_flow.stack, seed_flow.setup
    whole = AuditTrail(stack.intake_url, stack.admin_api_key).read(TrailQuery(merchant_id=setup.merchant_id, limit=100))
    newest, oldest = whole[0].created_at, whole[-1].created_at
    assert newest > oldest

    only_oldest = ["--since", oldest.isoformat(), "--until", oldest.isoformat(), "--json"]
    code, out, _ = _audit(seed_flow, capsys, "--merchant", setup.merchant_id, "--limit", "100", *only_oldest)
    assert code == 0
    assert [e["event_id"] for e in json.loads(out)] == [e.event_id for e in whole if e.created_at == oldest]

    code, out, _ = _audit(seed_flow, capsys, "--merchant", setup.merchant_id, "--since", "30d", "--json")
    assert code == 0 and len(json.loads(out)) == min(len(whole), 20)  # the set-up ran minutes ago

    # Nothing older than a day: the set-up is newer.
    code, out, _ = _audit(seed_flow, capsys, "--merchant", setup.merchant_id, "--since", "2000-01-01", "--until", "1d")
    assert code == 0 and out.startswith(f"no audit entries for merchant {setup.merchant_id} from 2000-01-01T00:00"), out
    code, out, err = _audit(seed_flow, capsys, "--merchant", setup.merchant_id, "--since", "1m", "--until", "2h")
    assert code != 0 and "--since" in err and "is later than --until" in err, err


def test_a_key_intake_does_not_know_is_a_clear_error(seed_flow, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "--intake-url", seed_flow.stack.intake_url, "--api-key", "not_a_key"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("cannot read the audit trail: intake answered 401: "), err


def test_intake_not_answering_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "--intake-url", "http://127.0.0.1:1", "--api-key", "k"])
    assert code == 1
    assert "cannot read the audit trail: intake at http://127.0.0.1:1 did not answer" in capsys.readouterr().err


def test_a_payments_changes_are_read_with_payment(seed_flow, capsys: pytest.CaptureFixture[str]) -> None:
    # Last in the module: its refused answer would be one more for the refused test above.
    stack, setup = seed_flow.stack, seed_flow.setup
    accept = f"{stack.intake_url}/v2/payments/{seed_flow.payment_id}/disputes/dp_notThere/accept"
    assert httpx.post(accept, headers=setup.headers(), timeout=15).status_code == 404

    code, out, _ = _audit(seed_flow, capsys, "--merchant", setup.merchant_id, "--payment", seed_flow.payment_id)
    assert code == 0
    (line,) = out.splitlines()
    assert ": Accepted a dispute [" in line and "dispute_id=dp_notThere" in line, line
    assert line.endswith("(POST /v2/payments/{payment_id}/disputes/{dispute_id}/accept -> 404)"), line

    code, out, _ = _audit(seed_flow, capsys, "--merchant", setup.merchant_id, "--payment", "12345_pay_none")
    assert code == 0 and out.strip() == f"no audit entries for merchant {setup.merchant_id} on payment 12345_pay_none"

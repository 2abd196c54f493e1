"""A profile's custom webhook headers, whose values are secrets (merchants put their endpoint's credentials there):
stored sealed as `profile.updated` carries them, opened only to send; a value from before values were sealed is sent
as it is. (The attempt records mask them: test_event_documents.py.)"""

from __future__ import annotations

from recovery_dispatcher.domain.endpoint import Endpoint

from .fakes import Dispatcher
from .messages import HASH_KEY, MASTER_KEY, URL, WHSEC, endpoint_update, succeeded

TOKEN = "Bearer merchant-endpoint-token-1234"
PROFILE_UPDATED, SUCCEEDED = "dispatcher.profile-updated", "dispatcher.payment-succeeded"


async def test_a_sealed_value_is_stored_sealed_and_sent_in_the_clear_and_an_old_plaintext_one_as_it_is(
    dispatcher: Dispatcher,
) -> None:
    sealed = MASTER_KEY.seal(TOKEN)
    headers = {"Authorization": sealed, "X-Tenant": "tenant-7"}  # X-Tenant: from a message sent before sealing
    await dispatcher.send(PROFILE_UPDATED, endpoint_update(version=2, custom_headers=headers))
    assert dispatcher.endpoints.endpoints["pro_test"].custom_headers == headers

    await dispatcher.send(SUCCEEDED, succeeded())
    [request] = dispatcher.sender.requests
    assert request.headers["authorization"] == TOKEN and request.headers["x-tenant"] == "tenant-7"


def test_an_endpoint_opens_its_signing_keys_and_header_values_and_keeps_the_rest() -> None:
    stored = Endpoint(
        "pro_test",
        url=URL,
        hash_key=MASTER_KEY.seal(HASH_KEY),
        whsec_secrets=(MASTER_KEY.seal(WHSEC),),
        custom_headers={"Authorization": MASTER_KEY.seal(TOKEN), "X-Tenant": "tenant-7"},
    )
    opened = stored.opened(MASTER_KEY.open_if_sealed)
    assert (opened.hash_key, opened.whsec_secrets) == (HASH_KEY, (WHSEC,))
    assert opened.custom_headers == {"Authorization": TOKEN, "X-Tenant": "tenant-7"}
    assert (opened.profile_id, opened.url) == (stored.profile_id, stored.url)

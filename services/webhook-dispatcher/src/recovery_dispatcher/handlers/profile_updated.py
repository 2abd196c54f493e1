"""`profile.updated`: project a profile's webhook settings (a newer version only; it re-enables the endpoint)."""

from __future__ import annotations

from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import ProfileUpdated
from recovery_dispatcher.dependencies import EndpointRepository
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import Transaction, UnitOfWorkPort


async def profile_updated(
    endpoints: EndpointRepository,
    unit_of_work: UnitOfWorkPort,
    envelope: Envelope[ProfileUpdated],
    queue: ConsumerQueue,
) -> None:
    async def project(tx: Transaction) -> None:
        await endpoints.apply(envelope.payload, tx.session)

    await unit_of_work.apply(project, consumed=envelope, consumer=queue.name)
    endpoints.forget(envelope.payload.profile_id)

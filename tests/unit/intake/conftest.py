"""Intake on in-memory adapters (`svc`) and an HTTP client of its API as the tenant's key (`client`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from .fakes import Intake, http_client, intake


@pytest.fixture
def svc() -> Intake:
    return intake()


@pytest.fixture
async def client(svc: Intake) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(svc, headers=svc.headers()) as http:
        yield http

"""Every service writes with write concern majority, whatever the URL says (no server is contacted)."""

from __future__ import annotations

import pytest

from recovery_runtime.mongo import connect


@pytest.mark.parametrize(
    "url", ["mongodb://127.0.0.1:1/?directConnection=true", "mongodb://127.0.0.1:1/?directConnection=true&w=1"]
)
async def test_writes_wait_for_a_majority_of_the_replica_set(url: str) -> None:
    client = connect(url, app_name="recovery-test")
    try:
        assert client.write_concern.document == {"w": "majority"}
        assert client["recovery"]["attempts"].write_concern.document == {"w": "majority"}
    finally:
        await client.close()

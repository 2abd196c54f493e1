"""The generated reference documents: the HTTP API (OpenAPI), the messages (AsyncAPI), the configuration.

Each is rendered from the code (intake's FastAPI app, every service's FastStream broker, the settings classes),
deterministically, so `recovery catalogues --check` can tell when a checked-in copy has drifted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recovery_cli.catalogues.asyncapi import asyncapi_document
from recovery_cli.catalogues.configuration import configuration_document
from recovery_cli.catalogues.services import ServiceEntry, build, services
from recovery_cli.locations import repository_root
from recovery_contracts.schemas import changed_files, write_files

__all__ = [
    "ServiceEntry",
    "asyncapi_document",
    "configuration_document",
    "drifted",
    "openapi_document",
    "render",
    "services",
    "write",
]


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ---- OpenAPI ------------------------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    intake = next(entry for entry in services() if entry.name == "intake")
    return build(intake).app.openapi()


# ---- files --------------------------------------------------------------------------------------------


def render() -> dict[str, str]:
    """Path relative to the repository root -> the file's text."""
    return {
        "docs/catalogue/openapi.json": _dump(openapi_document()),
        "docs/catalogue/asyncapi.json": _dump(asyncapi_document()),
        "docs/configuration.md": configuration_document(),
    }


def write(root: Path | None = None) -> list[Path]:
    return write_files(root or repository_root(), render())


def drifted(root: Path | None = None) -> list[str]:
    """The files whose checked-in text differs from what the code renders now."""
    return changed_files(root or repository_root(), render())

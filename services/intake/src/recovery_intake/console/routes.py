"""The console at `/console/`: sign-in (`sign_in`), a merchant's pages (`merchant_pages`, and the answer to a
dispute: `dispute_pages`; the audit trail: `audit_pages`), the operator's pages
(`operator_pages`), over what every route stands on (`pages.Console`), and the static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from recovery_intake.console import audit_pages, dispute_pages, merchant_pages, operator_pages, sign_in
from recovery_intake.console.pages import HERE, PREFIX, Console
from recovery_intake.console.ports import ConsoleAdapters
from recovery_intake.http.context import ApiContext


def install(app: FastAPI, ctx: ApiContext, adapters: ConsoleAdapters) -> None:
    """The console's routes and its static files (the pinned Chart.js and htmx, its own CSS and JS)."""
    console = Console(ctx, adapters)
    app.include_router(sign_in.router(console, ctx))
    app.include_router(merchant_pages.router(console, adapters))
    app.include_router(dispute_pages.router(console))
    app.include_router(audit_pages.router(console))
    app.include_router(operator_pages.router(console, adapters))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")

"""The recovery console: server-rendered pages (Jinja2 + htmx) at `/console/` on intake's address.

`routes` (installs the console on intake's app: its routers and the static files), `pages` (what every route
stands on: the visitor, the checks of a POST, rendering, refusals), the routes of `sign_in` (sign-in, sign-out,
the operator's choice of merchant), `merchant_pages` (Overview, Recoveries, Payment, Webhooks, Retries, Card data),
`dispute_pages` (the Payment page's answer to a dispute), `audit_pages` (Audit trail) and `operator_pages` (Dead
letters, Services), `session` (signed session cookie and CSRF tokens), `views`, `payment_view`, `webhook_views`,
`retry_views`, `card_views` and `audit_views` (what each page shows, computed from the internal APIs' answers and
intake's own audit trail), `formatting` (amounts, rates), `ports` (what the
console reads and does, as Protocols) and `adapters` (those ports over the internal APIs intake's gateway forwards
to). docs/console.md.
"""

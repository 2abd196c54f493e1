"""The recovery console: server-rendered pages (Jinja2 + htmx) at `/console/` on intake's address.

`routes` (pages and actions), `session` (signed session cookie and CSRF tokens), `views` (what each page shows,
computed from the internal APIs' answers), `formatting` (amounts, rates), `ports` (what the console reads and
does, as Protocols) and `adapters` (those ports over the internal APIs intake's gateway forwards to). docs/console.md.
"""

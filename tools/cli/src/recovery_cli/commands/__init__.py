"""The `recovery` subcommands, one module each: `register(subcommands)` adds it; its handler returns the exit
code.

A new subcommand (timeline, audit, dead letters, verify, catalogues, secrets, topology) is a new module here and one
line below.
"""

from recovery_cli.commands import (
    analytics,
    audit,
    catalogues,
    dead_letters,
    demo,
    down,
    load,
    run,
    secrets,
    simulate,
    status,
    timeline,
    topology,
    up,
    verify,
)

COMMANDS = (
    run,
    up,
    down,
    status,
    demo,
    dead_letters,
    load,
    timeline,
    audit,
    analytics,
    verify,
    catalogues,
    simulate,
    secrets,
    topology,
)

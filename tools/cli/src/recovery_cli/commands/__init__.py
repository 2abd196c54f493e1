"""The `recovery` subcommands, one module each: `register(subcommands)` adds it; its handler returns the exit
code.

A new subcommand (timeline, dead letters, verify, catalogues) is a new module here and one line below.
"""

from recovery_cli.commands import demo, down, run, status, up

COMMANDS = (run, up, down, status, demo)

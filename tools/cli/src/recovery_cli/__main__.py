"""`python -m recovery_cli` is the `recovery` command."""

from recovery_cli.main import main

raise SystemExit(main())

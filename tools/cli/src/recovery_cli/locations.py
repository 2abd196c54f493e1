"""Where the CLI keeps its run directory: `.run/` at the repository root unless RECOVERY_RUN_DIR says else."""

from __future__ import annotations

import os
from pathlib import Path

RUN_DIR_VARIABLE = "RECOVERY_RUN_DIR"


def repository_root(start: Path | None = None) -> Path:
    """The nearest folder holding the workspace's uv.lock, from `start` (the current folder) upwards."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "uv.lock").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    # Run from outside the checkout: fall back to the checkout this package was installed from (editable).
    installed = Path(__file__).resolve()
    for folder in installed.parents:
        if (folder / "uv.lock").is_file():
            return folder
    return here


def default_run_dir() -> Path:
    configured = os.environ.get(RUN_DIR_VARIABLE)
    if configured:
        return Path(configured).resolve()
    return repository_root() / ".run"

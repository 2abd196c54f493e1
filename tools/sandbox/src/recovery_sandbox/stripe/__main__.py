"""Runs the Stripe-compatible sandbox: `python -m recovery_sandbox.stripe --port 12111`."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from recovery_sandbox.stripe.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recovery_sandbox.stripe", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    # 12111 is the port stripe-mock uses, so SDKs' test configurations point here unchanged.
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--state-dir", type=Path, default=None, help="keep state in a JSON file here across restarts")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.state_dir), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()

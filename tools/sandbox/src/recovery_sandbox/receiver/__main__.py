"""Runs the merchant webhook receiver: `python -m recovery_sandbox.receiver --port 8090 --log FILE`."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from recovery_sandbox.receiver.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recovery_sandbox.receiver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--hash-key", default=None, help="the profile's payment_response_hash_key")
    parser.add_argument("--whsec", default=None, help="Standard Webhooks secret (whsec_...)")
    parser.add_argument("--log", type=Path, default=None, help="append every delivery as a JSON line here")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    app = create_app(hash_key=args.hash_key, whsec_secret=args.whsec, log_path=args.log)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()

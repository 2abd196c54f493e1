"""Container health probe (stdlib only): exits 0 when GET http://127.0.0.1:PORT/PATH answers 200.

    python /app/healthcheck.py [PATH] [--port N] [--timeout SECONDS]

PATH defaults to /healthz (liveness); compose uses /readyz (broker, database and consumers present).
PORT defaults to HTTP_PORT from the environment (each service's own), else 8080. Proxies are ignored.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="healthcheck")
    parser.add_argument("path", nargs="?", default="/healthz")
    parser.add_argument("--port", type=int, default=int(os.environ.get("HTTP_PORT", "8080")))
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    path = args.path if args.path.startswith("/") else f"/{args.path}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{args.port}{path}", timeout=args.timeout) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        print(f"healthcheck {path} on port {args.port}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

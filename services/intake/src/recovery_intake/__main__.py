"""`python -m recovery_intake` runs the intake service (HTTP API on HTTP_PORT, default 8080)."""

from recovery_intake.app import build_service

if __name__ == "__main__":
    build_service().run()

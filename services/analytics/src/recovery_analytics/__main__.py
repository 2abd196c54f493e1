"""`python -m recovery_analytics` runs the analytics service (the read side)."""

from recovery_analytics.app import build_service

if __name__ == "__main__":
    build_service().run()

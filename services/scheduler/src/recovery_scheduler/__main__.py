"""`python -m recovery_scheduler` runs the scheduler service."""

from recovery_scheduler.app import build_service

if __name__ == "__main__":
    build_service().run()

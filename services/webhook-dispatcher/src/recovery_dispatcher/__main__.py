"""`python -m recovery_dispatcher` runs the webhook dispatcher service."""

from recovery_dispatcher.app import build_service

if __name__ == "__main__":
    build_service().run()

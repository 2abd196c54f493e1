"""`python -m recovery_executor` runs the executor service."""

from recovery_executor.app import build_service

if __name__ == "__main__":
    build_service().run()

"""A merchant webhook receiver for development and tests: signature checks, delivery log, scripted answers."""

from recovery_sandbox.receiver.app import Behaviour, ReceiverConfig, create_app
from recovery_sandbox.receiver.verification import expected_signature_512

__all__ = ["Behaviour", "ReceiverConfig", "create_app", "expected_signature_512"]

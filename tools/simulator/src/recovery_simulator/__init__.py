"""Measure recovery: the scheduler's real planner (`decide_next`) against a population of failed payments, under a
simulated clock, with a connector whose answers come from a pluggable issuer model (docs/simulator.md)."""

from recovery_simulator.clock import SimulatedClock
from recovery_simulator.issuer import AttemptContext, IssuerModel, IssuerOutcome, PastDecline, load_issuer_model
from recovery_simulator.learning import RetryLearning
from recovery_simulator.population import FailedPayment, generate_population
from recovery_simulator.results import AlgorithmResult
from recovery_simulator.rules import RuleChecker, Violation
from recovery_simulator.simulation import PaymentRun, SimulatedAttempt, simulate, simulate_payment

__all__ = [
    "AlgorithmResult",
    "AttemptContext",
    "FailedPayment",
    "IssuerModel",
    "IssuerOutcome",
    "PastDecline",
    "PaymentRun",
    "RetryLearning",
    "RuleChecker",
    "SimulatedAttempt",
    "SimulatedClock",
    "Violation",
    "generate_population",
    "load_issuer_model",
    "simulate",
    "simulate_payment",
]

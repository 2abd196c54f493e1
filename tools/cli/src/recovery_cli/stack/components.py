"""The catalogue of what the stack can run: the five services and the two development peers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    SERVICE = "service"  # reads the service environment; ready when GET /readyz answers 200
    PEER = "peer"  # a development peer from recovery_sandbox; ready when its port answers HTTP
    DATABASE = "database"  # SecantusDB, started only when no MONGODB_URL is given


@dataclass(frozen=True)
class Component:
    name: str
    module: str
    default_port: int
    role: Role


INTAKE = Component("intake", "recovery_intake", 8080, Role.SERVICE)
SCHEDULER = Component("scheduler", "recovery_scheduler", 8081, Role.SERVICE)
EXECUTOR = Component("executor", "recovery_executor", 8082, Role.SERVICE)
WEBHOOK_DISPATCHER = Component("webhook-dispatcher", "recovery_dispatcher", 8083, Role.SERVICE)
ANALYTICS = Component("analytics", "recovery_analytics", 8084, Role.SERVICE)
STRIPE_SANDBOX = Component("stripe-sandbox", "recovery_sandbox.stripe", 12111, Role.PEER)
RECEIVER = Component("receiver", "recovery_sandbox.receiver", 8090, Role.PEER)
SECANTUSDB = Component("secantusdb", "secantus", 27017, Role.DATABASE)

SERVICES: tuple[Component, ...] = (INTAKE, SCHEDULER, EXECUTOR, WEBHOOK_DISPATCHER, ANALYTICS)
PEERS: tuple[Component, ...] = (STRIPE_SANDBOX, RECEIVER)
RUNNABLE: dict[str, Component] = {component.name: component for component in (*SERVICES, *PEERS)}
EVERYTHING: tuple[str, ...] = tuple(RUNNABLE)


def component(name: str) -> Component:
    try:
        return RUNNABLE[name]
    except KeyError:
        known = ", ".join(RUNNABLE)
        raise KeyError(f"unknown component {name!r}; known: {known}") from None


def instance_name(component_name: str, index: int) -> str:
    """`executor` for the first instance, `executor-2`, `executor-3` for the others."""
    return component_name if index == 1 else f"{component_name}-{index}"

"""The process supervisor behind `recovery up/down/demo` and the test fixtures."""

from recovery_cli.stack.components import EVERYTHING, PEERS, RUNNABLE, SERVICES, Component, Role
from recovery_cli.stack.config import DEFAULT_ADMIN_API_KEY, LOCAL_OUTBOUND_CIDRS, StackConfig
from recovery_cli.stack.infrastructure import (
    DEFAULT_RABBITMQ_URL,
    ensure_rabbitmq,
    rabbitmq_reachable,
    secantus_url,
    with_vhost,
)
from recovery_cli.stack.process import ManagedProcess, ProcessFailed, ProcessSpec, StackError
from recovery_cli.stack.readiness import HttpProbe, PortProbe, free_port, free_ports, port_open
from recovery_cli.stack.state import StackState, read_state, stop_recorded
from recovery_cli.stack.supervisor import Stack, running_stack

__all__ = [
    "DEFAULT_ADMIN_API_KEY",
    "DEFAULT_RABBITMQ_URL",
    "EVERYTHING",
    "LOCAL_OUTBOUND_CIDRS",
    "PEERS",
    "RUNNABLE",
    "SERVICES",
    "Component",
    "HttpProbe",
    "ManagedProcess",
    "PortProbe",
    "ProcessFailed",
    "ProcessSpec",
    "Role",
    "Stack",
    "StackConfig",
    "StackError",
    "StackState",
    "ensure_rabbitmq",
    "free_port",
    "free_ports",
    "port_open",
    "rabbitmq_reachable",
    "read_state",
    "running_stack",
    "secantus_url",
    "stop_recorded",
    "with_vhost",
]

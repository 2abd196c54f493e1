"""The fault suite's figures: what it did and found, per scenario and in all, printed at the end of the run and
written to the figures file (docs/guarantees.md, "The fault suite")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figures:
    """What the suite did and found, printed at the end of the run; `per_scenario` holds each scenario's own."""

    scenarios: int = 0
    kills: int = 0
    graceful_stops: int = 0
    restarts: int = 0
    broker_restarts: int = 0
    database_restarts: int = 0
    pauses: int = 0
    connection_cuts: int = 0
    duplicates_injected: int = 0
    poison_injected: int = 0
    recoveries_checked: int = 0
    messages_balanced: int = 0
    violations: list[str] = field(default_factory=list)
    per_scenario: dict[str, dict[str, Any]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        lines = [
            f"scenarios run            {self.scenarios}",
            f"kill -9 of a service     {self.kills}",
            f"SIGTERM of a service     {self.graceful_stops}",
            f"SIGSTOP of a service     {self.pauses}",
            f"restarts (any process)   {self.restarts}",
            f"  RabbitMQ stop/start    {self.broker_restarts}",
            f"  MongoDB stop/start     {self.database_restarts}",
            f"connections cut          {self.connection_cuts}",
            f"duplicates injected      {self.duplicates_injected}",
            f"poison messages injected {self.poison_injected}",
            f"recoveries checked       {self.recoveries_checked}",
            f"messages balanced        {self.messages_balanced}",
            f"violations found         {len(self.violations)}",
            *(f"  - {v}" for v in self.violations),
            "per scenario:",
        ]
        for name, figures in self.per_scenario.items():
            shown = ", ".join(f"{key} {value}" for key, value in figures.items())
            lines.append(f"  {name}: {shown}")
        return lines

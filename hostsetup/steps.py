"""A plan as plain data: steps, each with operations or the reason it is already done."""

from __future__ import annotations

from dataclasses import dataclass, field

from hostsetup.distros import Platform
from hostsetup.operations import Operation


@dataclass(frozen=True)
class Step:
    """One idempotent step: operations to run, or why it is already done."""

    name: str
    summary: str
    operations: tuple[Operation, ...] = ()
    warnings: tuple[str, ...] = ()
    notice: str = ""      # shown as the step starts (e.g. another apt-get holds the lock it needs)

    @property
    def changes(self) -> bool:
        return bool(self.operations)


@dataclass(frozen=True)
class Plan:
    platform: Platform
    steps: tuple[Step, ...] = field(default_factory=tuple)

    @property
    def changes(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.changes)

    @property
    def empty(self) -> bool:
        return not self.changes

"""Tiny fakes for functional tests (fakes over mocks, STYLE.md habit 10)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RecordingPacer:
    """A core.ports.Pacer that never waits and records what it was asked."""

    acquired: list[tuple[str, float]] = field(default_factory=list)
    penalties: list[tuple[str, float]] = field(default_factory=list)

    def acquire(self, units: float, *, bucket: str) -> None:
        self.acquired.append((bucket, units))

    def penalize(self, retry_after_s: float, *, bucket: str) -> None:
        self.penalties.append((bucket, retry_after_s))

    def units(self, bucket: str) -> float:
        """Total units acquired in `bucket`."""
        return sum(units for name, units in self.acquired if name == bucket)

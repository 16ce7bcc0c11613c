"""Misting runs: when a bay gets one, and what one is (6 pulses of 900 ms, 40 seconds apart, by default)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from .readings import BayReading
from .settings import MistingSettings

TRIGGER_HUMIDITY_PCT = 55.0  # a run starts only below this humidity ...
TRIGGER_TEMP_C = 26.0  # ... and above this air temperature


@dataclass(frozen=True, slots=True)
class MistRun:
    """One misting run for one bay: when it starts, how many pulses, how long each is and how far apart."""

    bay: str
    start: datetime
    pulses: int
    pulse_ms: int
    spacing_s: int

    @property
    def duration(self) -> timedelta:
        """From the first pulse's start to the last pulse's end: 200.9 seconds for the default run."""
        return timedelta(seconds=self.spacing_s * (self.pulses - 1), milliseconds=self.pulse_ms)


def parse_quiet_hours(text: str) -> tuple[time, time]:
    """Read quiet hours written as "22:00-05:30"; the span may cross midnight. Raises ValueError otherwise."""
    start, _, end = text.partition("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


def in_quiet_hours(moment: time, quiet: tuple[time, time]) -> bool:
    """Whether `moment` falls in the quiet hours; the start is inside them and the end is not."""
    start, end = quiet
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


@dataclass(slots=True)
class MistPlanner:
    """Decides misting runs from readings: below 55 % humidity and above 26 degrees, 25 minutes apart, 14 a day."""

    settings: MistingSettings
    _last: dict[str, datetime] = field(default_factory=dict)
    _count: dict[tuple[str, date], int] = field(default_factory=dict)

    def consider(self, reading: BayReading) -> MistRun | None:
        """The run to start for this reading's bay now, or None when the bay does not need or may not have one."""
        s = self.settings
        if reading.humidity_pct >= TRIGGER_HUMIDITY_PCT or reading.temp_c <= TRIGGER_TEMP_C:
            return None
        if in_quiet_hours(reading.time.time(), parse_quiet_hours(s.quiet_hours)):
            return None
        last = self._last.get(reading.bay)
        if last is not None and reading.time - last < timedelta(minutes=s.min_gap_minutes):
            return None
        day = (reading.bay, reading.time.date())
        if self._count.get(day, 0) >= s.max_runs_per_day:
            return None
        self._last[reading.bay] = reading.time
        self._count[day] = self._count.get(day, 0) + 1
        return MistRun(reading.bay, reading.time, s.pulses_per_run, s.pulse_ms, s.pulse_spacing_s)

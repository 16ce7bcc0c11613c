"""Alarms raised from readings: a bay too hot for too long (BRM-301, HEAT)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .readings import BayReading
from .settings import AlarmSettings

CLEAR_MARGIN_C = 2.0  # an alarm clears this many degrees below its limit, so it does not flap


@dataclass(slots=True)
class Alarm:
    """An open alarm: its code (such as BRM-301), kind (such as HEAT), bay and the time it was raised."""

    code: str
    kind: str
    bay: str
    raised: datetime
    acknowledged: bool = False


@dataclass(slots=True)
class _BayState:
    hot_in_a_row: int = 0
    open: dict[str, Alarm] = field(default_factory=dict)


class AlarmWatch:
    """Watches each bay's readings and raises HEAT (BRM-301) after heat_readings readings above heat_limit_c."""

    def __init__(self, settings: AlarmSettings):
        self.settings = settings
        self._bays: dict[str, _BayState] = {}

    def observe(self, reading: BayReading) -> list[Alarm]:
        """Update the bay's state with one reading and return the alarms this reading raised (often none)."""
        state = self._bays.setdefault(reading.bay, _BayState())
        raised = []
        limit = self.settings.heat_limit_c
        if reading.temp_c > limit:
            state.hot_in_a_row += 1
            if state.hot_in_a_row >= self.settings.heat_readings and "HEAT" not in state.open:
                state.open["HEAT"] = alarm = Alarm("BRM-301", "HEAT", reading.bay, reading.time)
                raised.append(alarm)
        else:
            state.hot_in_a_row = 0
            if reading.temp_c <= limit - CLEAR_MARGIN_C:
                state.open.pop("HEAT", None)
        return raised

    def open_alarms(self) -> list[Alarm]:
        """Every alarm not yet cleared, in the order the bays were first seen."""
        return [a for state in self._bays.values() for a in state.open.values()]

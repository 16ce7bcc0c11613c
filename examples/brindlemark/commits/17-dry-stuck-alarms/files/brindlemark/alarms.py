"""Alarms raised from readings: too hot (BRM-301, HEAT), too dry (BRM-302, DRY), a vent that does not move
(BRM-303, STUCK_VENT)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .readings import BayReading
from .settings import AlarmSettings

CLEAR_MARGIN_C = 2.0  # an alarm clears this many degrees below its limit, so it does not flap
STUCK_VENT_MIN_TEMP_C = 30.0  # below this a controller may leave a vent alone for hours


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
    dry_since: datetime | None = None
    vent: int | None = None
    vent_since: datetime | None = None
    open: dict[str, Alarm] = field(default_factory=dict)


class AlarmWatch:
    """Watches each bay's readings and raises HEAT (BRM-301), DRY (BRM-302) and STUCK_VENT (BRM-303)."""

    def __init__(self, settings: AlarmSettings):
        self.settings = settings
        self._bays: dict[str, _BayState] = {}

    def observe(self, reading: BayReading) -> list[Alarm]:
        """Update the bay's state with one reading and return the alarms this reading raised (often none)."""
        state = self._bays.setdefault(reading.bay, _BayState())
        raised = []
        for kind, code, on, off in self._conditions(state, reading):
            if on and kind not in state.open:
                state.open[kind] = alarm = Alarm(code, kind, reading.bay, reading.time)
                raised.append(alarm)
            elif off:
                state.open.pop(kind, None)
        return raised

    def _conditions(self, state: _BayState, reading: BayReading) -> list[tuple[str, str, bool, bool]]:
        s = self.settings
        # HEAT: heat_readings readings in a row above the limit; clears CLEAR_MARGIN_C below it.
        state.hot_in_a_row = state.hot_in_a_row + 1 if reading.temp_c > s.heat_limit_c else 0
        heat = (state.hot_in_a_row >= s.heat_readings, reading.temp_c <= s.heat_limit_c - CLEAR_MARGIN_C)
        # DRY: below the limit for dry_minutes without a break.
        if reading.humidity_pct < s.dry_limit_pct:
            state.dry_since = state.dry_since or reading.time
        else:
            state.dry_since = None
        dry_for = reading.time - state.dry_since if state.dry_since else timedelta(0)
        dry = (dry_for >= timedelta(minutes=s.dry_minutes), state.dry_since is None)
        # STUCK_VENT: warm, and the vent at the same opening for stuck_vent_minutes.
        if reading.vent_pct != state.vent:
            state.vent, state.vent_since = reading.vent_pct, reading.time
        still_for = reading.time - state.vent_since
        warm = reading.temp_c > STUCK_VENT_MIN_TEMP_C
        stuck = (warm and still_for >= timedelta(minutes=s.stuck_vent_minutes), still_for == timedelta(0))
        return [("HEAT", "BRM-301", *heat), ("DRY", "BRM-302", *dry), ("STUCK_VENT", "BRM-303", *stuck)]

    def open_alarms(self) -> list[Alarm]:
        """Every alarm not yet cleared, in the order the bays were first seen."""
        return [a for state in self._bays.values() for a in state.open.values()]

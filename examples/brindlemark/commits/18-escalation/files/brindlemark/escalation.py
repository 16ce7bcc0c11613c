"""Who hears about an alarm, and when: the alarm board at once, the duty grower, then the systems warden."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .alarms import Alarm
from .settings import AlarmSettings

BOARD = "alarm board"
DUTY_GROWER = "duty grower"
SYSTEMS_WARDEN = "systems warden"


@dataclass(slots=True)
class Escalation:
    """Decides whom to notify of unacknowledged alarms: the duty grower after 12 minutes, the warden after 30."""

    settings: AlarmSettings
    _told: dict[int, set[str]] = field(default_factory=dict)

    def due(self, alarms: list[Alarm], now: datetime) -> list[tuple[Alarm, str]]:
        """(alarm, recipient) pairs to notify now; each recipient hears of each alarm once, acknowledged ones never."""
        out = []
        for alarm in alarms:
            if alarm.acknowledged:
                continue
            told = self._told.setdefault(id(alarm), set())
            for recipient in self.recipients(alarm, now):
                if recipient not in told:
                    told.add(recipient)
                    out.append((alarm, recipient))
        return out

    def recipients(self, alarm: Alarm, now: datetime) -> list[str]:
        """Everyone who should know of `alarm` by `now`: the board always, then by minutes since it was raised."""
        age = now - alarm.raised
        who = [BOARD]
        if age >= timedelta(minutes=self.settings.escalate_after_min):
            who.append(DUTY_GROWER)
        if age >= timedelta(minutes=self.settings.warden_after_min):
            who.append(SYSTEMS_WARDEN)
        return who

"""One reading from one bay, and the checks it passes before it reaches the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

MIN_TEMP_TENTHS = -150  # -15.0 degrees Celsius
MAX_TEMP_TENTHS = 550  # 55.0 degrees Celsius
MAX_CLOCK_AHEAD = timedelta(seconds=90)


class ReadingError(ValueError):
    """A rejected reading; `code` is BRM-110 to BRM-113 and the message says which value was wrong."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code} {message}")
        self.code = code


@dataclass(frozen=True, slots=True)
class BayReading:
    """A reading as the controller sent it: temperature in tenths of a degree, humidity in per mille, vent in percent."""

    bay: str
    time: datetime
    temp_tenths: int
    humidity_permille: int
    vent_pct: int

    @property
    def temp_c(self) -> float:
        """The air temperature in degrees Celsius (temp_tenths divided by 10)."""
        return self.temp_tenths / 10

    @property
    def humidity_pct(self) -> float:
        """The relative humidity in percent (humidity_permille divided by 10)."""
        return self.humidity_permille / 10


def parse_reading(record: dict, known_bays: set[str], now: datetime | None = None) -> BayReading:
    """Check one JSON record from a controller; raise ReadingError BRM-110 for a bay not in `known_bays`."""
    now = now or datetime.now(timezone.utc)
    bay = str(record.get("bay", ""))
    if bay not in known_bays:
        raise ReadingError("BRM-110", f"unknown bay {bay!r}")
    time = datetime.fromisoformat(record["time"])
    if time.tzinfo is None:
        time = time.replace(tzinfo=timezone.utc)
    if time - now > MAX_CLOCK_AHEAD:
        raise ReadingError("BRM-112", f"bay {bay} sent a reading stamped {time.isoformat()}, ahead of the ledger")
    temp = int(record["temp"])
    if not MIN_TEMP_TENTHS <= temp <= MAX_TEMP_TENTHS:
        raise ReadingError("BRM-111", f"bay {bay} temperature {temp / 10} is outside -15.0..55.0")
    humidity = int(record["humidity"])
    if not 0 <= humidity <= 1000:
        raise ReadingError("BRM-113", f"bay {bay} humidity {humidity} per mille is outside 0..1000")
    vent = max(0, min(100, int(record.get("vent", 0))))
    return BayReading(bay, time, temp, humidity, vent)


def to_record(reading: BayReading) -> dict:
    """The reading as the JSON object one ledger line holds, with the time in UTC ISO 8601."""
    return {
        "bay": reading.bay, "time": reading.time.astimezone(timezone.utc).isoformat(),
        "temp": reading.temp_tenths, "humidity": reading.humidity_permille, "vent": reading.vent_pct,
    }

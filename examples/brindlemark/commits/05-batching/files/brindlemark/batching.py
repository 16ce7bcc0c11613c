"""Batch windows: readings wait here and reach the ledger together, to spare the ledger box's SD card."""

from __future__ import annotations

import time
from typing import Callable

from .readings import BayReading


class BatchWindow:
    """Holds readings until `window_s` seconds pass (default 5) or `max_readings` arrive (default 400)."""

    def __init__(self, flush: Callable[[list[BayReading]], None], window_s: float = 5,
                 max_readings: int = 400, clock: Callable[[], float] = time.monotonic):
        self._flush = flush
        self.window_s = window_s
        self.max_readings = max_readings
        self._clock = clock
        self._opened: float | None = None
        self._readings: dict[tuple[str, str], BayReading] = {}

    def add(self, reading: BayReading) -> None:
        """Add one reading; a resent reading (same bay and time) replaces the one already held."""
        if self._opened is None:
            self._opened = self._clock()
        self._readings[(reading.bay, reading.time.isoformat())] = reading
        if len(self._readings) >= self.max_readings:
            self.flush()

    def tick(self) -> None:
        """Flush if the window has been open for window_s seconds or longer; the server calls this once a second."""
        if self._opened is not None and self._clock() - self._opened >= self.window_s:
            self.flush()

    def flush(self) -> int:
        """Hand the held readings to the flush callback in time order and return how many there were."""
        batch = sorted(self._readings.values(), key=lambda r: (r.time, r.bay))
        self._readings.clear()
        self._opened = None
        if batch:
            self._flush(batch)
        return len(batch)

    def __len__(self) -> int:
        return len(self._readings)

"""The ledger on disk: daily series of segment files, ledger-YYYYMMDD-NN.bml, one JSON reading per line."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

from .readings import BayReading, to_record

SEGMENT_LIMIT = 32 * 1024 * 1024  # bytes; a segment this large rolls over to the next number
SUFFIX = ".bml"


def segment_name(day: date, number: int) -> str:
    """The file name of segment `number` of `day`, e.g. ledger-20260306-01.bml; numbers start at 1."""
    return f"ledger-{day:%Y%m%d}-{number:02d}{SUFFIX}"


class Ledger:
    """Appends batches to the current segment of their day in `data_dir`, rolling over at 32 MiB."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)

    def current_segment(self, day: date) -> Path:
        """The segment of `day` to append to: the highest-numbered one, or the next one when it is full."""
        number = 1
        while (self.data_dir / segment_name(day, number + 1)).exists():
            number += 1
        path = self.data_dir / segment_name(day, number)
        if path.exists() and path.stat().st_size >= SEGMENT_LIMIT:
            path = self.data_dir / segment_name(day, number + 1)
        return path

    def append(self, batch: list[BayReading]) -> None:
        """Write a batch, each reading to the segment of its own UTC day, and fsync before returning."""
        by_day: dict[date, list[str]] = {}
        for reading in batch:
            record = to_record(reading)
            by_day.setdefault(date.fromisoformat(record["time"][:10]), []).append(json.dumps(record))
        for day, lines in sorted(by_day.items()):
            with open(self.current_segment(day), "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def segments(self) -> list[Path]:
        """Every segment file in the data folder, oldest first."""
        return sorted(self.data_dir.glob(f"ledger-*{SUFFIX}"))

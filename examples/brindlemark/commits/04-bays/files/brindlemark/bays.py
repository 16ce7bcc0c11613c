"""The bay registry: which bays exist, what grows in each and who looks after it, read from bays.csv."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

BAY_ID = re.compile(r"^G([1-9])-B(\d{2})$")
BAYS_PER_GLASSHOUSE = 24


class RegistryError(ValueError):
    """bays.csv cannot be used; the message names the line and the problem."""


@dataclass(frozen=True, slots=True)
class Bay:
    """One bay: its id (G<glasshouse>-B<two digits>), its crop and the steward role that looks after it."""

    id: str
    crop: str
    steward: str

    @property
    def glasshouse(self) -> int:
        """The glasshouse number, 1 to 9, taken from the id (G3-B07 is in glasshouse 3)."""
        return int(self.id[1])


def load_bays(path: Path, max_bays: int) -> dict[str, Bay]:
    """Read bays.csv (columns bay, crop, steward); raise RegistryError past 24 bays in one glasshouse."""
    bays: dict[str, Bay] = {}
    if not path.is_file():
        raise RegistryError(f"no bay registry at {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            bay = Bay(row["bay"].strip(), row["crop"].strip(), row["steward"].strip())
            m = BAY_ID.match(bay.id)
            if not m or not 1 <= int(m.group(2)) <= BAYS_PER_GLASSHOUSE:
                raise RegistryError(f"line {line}: {bay.id!r} is not a bay id like G3-B07")
            if bay.id in bays:
                raise RegistryError(f"line {line}: bay {bay.id} is listed twice")
            bays[bay.id] = bay
    if len(bays) > max_bays:
        raise RegistryError(f"{len(bays)} bays listed, more than max_bays ({max_bays})")
    return bays

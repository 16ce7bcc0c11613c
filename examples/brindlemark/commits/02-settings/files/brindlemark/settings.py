"""Settings of the ledger service, read from the [ledger] table of brindlemark.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

DEFAULT_PATH = Path("/etc/brindlemark/brindlemark.toml")


class SettingsError(ValueError):
    """A settings file that cannot be used; the message starts with its BRM code (BRM-101 or BRM-102)."""


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """The [ledger] table. Defaults: port 7341, a 5-second batch window, 40 days of retention, 96 bays."""

    listen_port: int = 7341
    bind_address: str = "0.0.0.0"
    data_dir: str = "/var/lib/brindlemark"
    bays_file: str = "/etc/brindlemark/bays.csv"
    batch_window_s: int = 5
    batch_max_readings: int = 400
    retention_days: int = 40
    max_bays: int = 96


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything brindlemark.toml can set; each table has its own dataclass."""

    ledger: LedgerSettings = LedgerSettings()


def load_settings(path: Path = DEFAULT_PATH) -> Settings:
    """Read `path`; a missing file gives the defaults. Raises SettingsError BRM-101 for an unknown key."""
    if not path.exists():
        return Settings()
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = sorted(set(data) - {"ledger"})
    if unknown:
        raise SettingsError(f"BRM-101 unknown table [{unknown[0]}] in {path}")
    ledger = _table(LedgerSettings, data.get("ledger", {}), "ledger", path)
    check_ranges(ledger)
    return Settings(ledger=ledger)


def check_ranges(ledger: LedgerSettings) -> None:
    """Raise SettingsError BRM-102 when a value is outside its range (a port from 1024 to 65535, a window of 1 to 60 s)."""
    if not 1024 <= ledger.listen_port <= 65535:
        raise SettingsError(f"BRM-102 listen_port {ledger.listen_port} is outside 1024..65535")
    if not 1 <= ledger.batch_window_s <= 60:
        raise SettingsError(f"BRM-102 batch_window_s {ledger.batch_window_s} is outside 1..60")
    if ledger.retention_days < 7:
        raise SettingsError(f"BRM-102 retention_days {ledger.retention_days} is below the minimum of 7")


def _table(cls, values: dict, name: str, path: Path):
    known = {f.name for f in fields(cls)}
    for key in values:
        if key not in known:
            raise SettingsError(f"BRM-101 unknown key {key!r} in [{name}] of {path}")
    return cls(**values)

"""The brindlemark command: `brindlemark serve` runs the ledger; other subcommands look after it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __version__
from .bays import RegistryError, load_bays
from .batching import BatchWindow
from .http_api import LedgerState, serve
from .ledger import Ledger
from .settings import DEFAULT_PATH, Settings, SettingsError, load_settings

EXIT_BAD_CONFIG = 2  # settings or bays.csv unusable: restarting will not help


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand and return its exit status: 0 on success, 2 when settings or bays.csv are unusable."""
    parser = argparse.ArgumentParser(prog="brindlemark", description="The Orrin Vale climate ledger.")
    parser.add_argument("--config", type=Path, default=DEFAULT_PATH, help="settings file (brindlemark.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the ledger service")
    sub.add_parser("version", help="print the version")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"brindlemark {__version__}")
        return 0
    try:
        settings = load_settings(args.config)
        bays = load_bays(Path(settings.ledger.bays_file), settings.ledger.max_bays)
    except (SettingsError, RegistryError) as err:
        print(f"brindlemark: {err}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    return run_serve(settings, set(bays))


def run_serve(settings: Settings, bays: set[str]) -> int:
    """Serve until interrupted, ticking the batch window once a second; returns 0 after Ctrl-C."""
    ledger = Ledger(Path(settings.ledger.data_dir))
    window = BatchWindow(ledger.append, settings.ledger.batch_window_s, settings.ledger.batch_max_readings)
    state = LedgerState(bays, window)
    server = serve(state, settings.ledger.bind_address, settings.ledger.listen_port)
    print(f"brindlemark: ledger listening on {settings.ledger.bind_address}:{settings.ledger.listen_port}"
          f" for {len(bays)} bays")
    try:
        while True:
            time.sleep(1)
            with state.lock:
                window.tick()
    except KeyboardInterrupt:
        with state.lock:
            window.flush()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Brindlemark, the climate ledger of the Orrin Vale glasshouses."""

__version__ = "0.0.1"

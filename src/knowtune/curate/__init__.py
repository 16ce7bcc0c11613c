"""Curate: examples become a dataset split for training and evaluation, with a reason for every drop."""

from .stage import run_curate
from .writer import load_split

__all__ = ["run_curate", "load_split"]

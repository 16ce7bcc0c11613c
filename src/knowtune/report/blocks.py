"""What a section is made of: text, tables, images, preformatted text and subheadings, rendered twice
(Markdown and HTML) by render.py, so the two files cannot say different things."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

SHOWN_CHARS = 400

# The four ways every question set is answered (evaluate/__init__.py), in the order a reader compares them.
WAYS = ("base", "base_rag", "tuned", "tuned_rag")
WAY_LABELS = {"base": "base", "base_rag": "base + RAG", "tuned": "tuned", "tuned_rag": "tuned + RAG"}


@dataclass
class Table:
    header: list[str]
    rows: list[list]
    wide: bool = False  # long texts in the cells (example answers): the page wraps them in a smaller font


@dataclass
class Image:
    path: Path
    alt: str


@dataclass
class Pre:
    text: str


@dataclass
class Heading:
    text: str


@dataclass
class Bullets:
    items: list[str]


Block = str | Table | Image | Pre | Heading | Bullets
Section = tuple[str, list[Block]]


def label(way: str) -> str:
    return WAY_LABELS.get(way, way)


def ways_of(by_way: dict) -> list[str]:
    """The ways a question set was answered, in WAYS order; the other keys (comparison, retrieval) are not ways."""
    found = [w for w in by_way if isinstance(by_way[w], dict) and "questions" in by_way[w] and "f1" in by_way[w]]
    return sorted(found, key=lambda w: WAYS.index(w) if w in WAYS else len(WAYS))


def metric_of(set_name: str) -> str:
    """General questions are scored by exact match of accepted answers; every other set by token F1."""
    return "exact_match" if set_name == "general" else "f1"


def metric_label(metric: str) -> str:
    return {"exact_match": "exact match", "f1": "F1", "rouge_l": "ROUGE-L"}.get(metric, metric)


def num(value, digits: int = 4) -> str:
    """A number as a table cell: None and NaN as a dash, floats rounded, big integers with separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return str(round(value, digits))
    return str(value)


def signed(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = round(value, digits) or 0.0  # -0.001 reads as +0.00, not -0.00
    return f"{value:+.{digits}f}"


def spread(rows: list, k: int) -> list:
    """k rows spread evenly over the list, the first included: deterministic and not only the head."""
    if len(rows) <= k:
        return list(rows)
    step = len(rows) / k
    return [rows[int(i * step)] for i in range(k)]


def cut(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"

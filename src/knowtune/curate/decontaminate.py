"""Decontamination: no training example may repeat what evaluation asks or expects.

A training question or answer that shares an n-gram (13 words by default, as
in the GPT-3 paper's contamination study) with a held-out question or answer
(val, test, knowledge) or with a benchmark file is dropped. Raw text is not
compared: a trained document's text is the knowledge its held-out questions
ask about, and holding it out too would leave nothing to learn.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from ..records import Example, to_dict
from .split import QUESTION_KINDS
from .steps import Dropped, StepResult

_WORD = re.compile(r"\w+")
# Words that carry no fact: a held-out text made only of these and fewer than three others ("Returns None.",
# "It is not used.") is too generic to mark anything that repeats it as contaminated.
STOPWORDS = frozenset("""
a about above after again all also an and any are as at be because been before being below between both but
by can could did do does doing done down during each few for from further had has have having he her here
hers him his how i if in into is it its itself just me more most my no nor not now of off on once only or
other our out over own same she should so some such than that the their them then there these they this
those through to too under until up very was we were what when where which while who whom why will with
would you your yes none null nil true false self this return returns returned value values default
""".split())
MIN_CONTENT_WORDS = 3


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def is_specific(words: list[str] | tuple[str, ...]) -> bool:
    """At least three words that are not function words: enough to be about something."""
    return sum(w not in STOPWORDS for w in words) >= MIN_CONTENT_WORDS


def texts_of(example: Example) -> list[str]:
    """What an example asks and answers: every message of a chat, prompt and chosen of a preference pair."""
    messages = (example.messages or []) + (example.prompt or []) + (example.chosen or [])
    return [m["content"] for m in messages if m["role"] in ("user", "assistant")]


def benchmark_texts(paths: list[Path]) -> list[tuple[str, str]]:
    """(where, text) of every string field in the benchmark JSONL files."""
    out = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"curate.decontaminate.benchmarks: {path} does not exist")
        for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                out += [(f"{Path(path).name}:{lineno}", s) for s in _strings(json.loads(line))]
    return out


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def decontaminate(examples: list[Example], n: int, benchmarks: list[tuple[str, str]] = ()) -> StepResult:
    """Drop training questions and answers that repeat held-out ones.

    Two tests: a shared n-gram (for texts of n words or more), and, for a text shorter than that, its whole
    word sequence appearing inside the other (a held-out five-word answer quoted in a training answer, or a
    training answer that is a piece of a held-out one), when it is specific (`is_specific`).
    """
    held: dict[tuple[str, ...], str] = {}  # n-grams of held-out texts -> the example (or benchmark) they are in
    short_held: dict[tuple[str, ...], str] = {}  # whole held-out texts under n words
    held_words: list[tuple[list[str], str]] = []  # every held-out text, for training texts under n words

    def hold(text: str, where: str) -> None:
        words = words_of(text)
        held_words.append((words, where))
        if len(words) >= n:
            for i in range(len(words) - n + 1):
                held.setdefault(tuple(words[i : i + n]), where)
        elif is_specific(words):
            short_held.setdefault(tuple(words), where)

    held_facts: dict[str, str] = {}
    for e in examples:
        # The paraphrase set is no held-out knowledge: its answer is a trained fact's, on purpose.
        if e.split not in ("train", "paraphrase") and e.kind in QUESTION_KINDS:
            for text in texts_of(e):
                hold(text, e.id)
            if e.metadata.get("fact"):
                held_facts.setdefault(e.metadata["fact"], e.id)
    for where, text in benchmarks:
        hold(text, f"benchmark {where}")
    short_lengths = sorted({len(k) for k in short_held})
    inside = _inside_held(examples, n, held_words)

    def twin_of(text: str) -> tuple[str, str] | None:
        words = words_of(text)
        for i in range(len(words) - n + 1):
            if (g := tuple(words[i : i + n])) in held:
                return held[g], f"shares a {n}-word sequence with"
        for length in short_lengths:
            for i in range(len(words) - length + 1):
                if (g := tuple(words[i : i + length])) in short_held:
                    return short_held[g], f"contains the whole of a {length}-word text of"
        if (where := inside.get(tuple(words))) is not None:
            return where, f"is, all {len(words)} words of it, inside"
        return None

    result = StepResult([])
    for e in examples:
        found = None
        if e.split == "train" and e.metadata.get("fact") in held_facts:  # a fact held out in another wording
            found = held_facts[e.metadata["fact"]], "states the fact of"
        elif e.split == "train" and e.kind in QUESTION_KINDS:
            found = next((t for text in texts_of(e) if (t := twin_of(text))), None)
        if found is None:
            result.kept.append(e)
        else:
            twin, how = found
            what = "a benchmark" if twin.startswith("benchmark ") else "a held-out example"
            result.dropped.append(Dropped("decontaminate", f"{how} {what}", to_dict(e), twin))
    kinds = Counter("n-gram" if d.reason.startswith("shares") else "fact" if d.reason.startswith("states")
                    else "short text" for d in result.dropped)
    result.note = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))
    return result


def _inside_held(examples: list[Example], n: int, held_words: list[tuple[list[str], str]]) -> dict:
    """The short, specific training texts that appear whole inside a held-out text -> where.

    One pass over the held-out texts, looking up each of their windows of the lengths these training texts
    have: memory for the short texts only, not for every window of every held-out text.
    """
    short: dict[tuple[str, ...], str | None] = {}
    for e in examples:
        if e.split == "train" and e.kind in QUESTION_KINDS:
            for text in texts_of(e):
                words = tuple(words_of(text))
                if len(words) < n and is_specific(words):
                    short[words] = None
    for length in sorted({len(k) for k in short}):
        for text, where in held_words:
            for i in range(len(text) - length + 1):
                window = tuple(text[i : i + length])
                if window in short and short[window] is None:
                    short[window] = where
    return {k: v for k, v in short.items() if v is not None}

"""The question sets evaluation asks, each for its own question about the model.

- knowledge: facts of trained documents held out whole (no wording of them trained; their raw text was):
  did the model learn what the documents say? One question per fact, its first wording, so a fact asked in
  three wordings does not count three times; templated instructions held out from trained documents too.
- paraphrase: trained facts asked in a wording never trained: did it learn the fact or the string?
- test: questions about held-out documents: neither training nor retrieval has seen them.
- trained: a sample of trained questions: memorisation, the ceiling.
- general: short questions about the world (general.py): what the model knew before and may forget.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from ..chat import answer_of
from ..records import Example
from .general import general_messages, load_general_questions

QUESTION_KINDS = ("instruction", "qa")


@dataclass(frozen=True)
class Question:
    set: str
    id: str
    messages: list[dict]  # the conversation up to the answer
    reference: str
    answers: tuple[str, ...] = ()  # accepted answers, for general questions (scored by rule, not F1)
    kind: str = ""  # the example kind (qa, instruction) or the general question's category
    document_id: str | None = None
    provenance: tuple[str, ...] = ()  # chunk ids the answer came from


def question_sets(dataset: Path, settings, load_split) -> dict[str, list[Question]]:
    rng = random.Random(settings.seed)
    split = {name: [e for e in load_split(dataset, name) if e.kind in QUESTION_KINDS and e.messages]
             for name in ("knowledge", "paraphrase", "test", "train")}
    knowledge = [e for e in split["knowledge"] if _in_part(e, settings.knowledge_questions)]
    return {
        "knowledge": _sample(_one_per_fact(knowledge), settings.knowledge_samples, rng, "knowledge"),
        "paraphrase": _sample(split["paraphrase"], settings.paraphrase_samples, rng, "paraphrase"),
        "test": _sample(_one_per_fact(split["test"]), settings.test_samples, rng, "test"),
        "trained": _sample(split["train"], settings.trained_samples, rng, "trained"),
        "general": general_questions(settings.general_samples, rng),
    }


def _question(e: Example, name: str) -> Question:
    return Question(name, e.id, e.messages[:-1], answer_of(e) or "", kind=e.kind, document_id=e.document_id,
                    provenance=tuple(e.provenance))


def _one_per_fact(examples: list[Example]) -> list[Example]:
    seen, out = set(), []
    for e in sorted(examples, key=lambda e: (e.metadata.get("phrasing") or 0, e.id)):
        fact = e.metadata.get("fact")
        if fact is None or fact not in seen:
            seen.add(fact)
            out.append(e)
    return out


def _in_part(e: Example, part: str) -> bool:
    """Halves of the knowledge questions fixed by their facts: one ranks sweep trials, the other reports."""
    from ..curate.split import unit

    return part == "all" or (unit(0, "knowledge-half", e.metadata.get("fact") or e.id) < 0.5) == (part == "select")


def _sample(examples: list[Example], k: int, rng: random.Random, name: str) -> list[Question]:
    examples = sorted(examples, key=lambda e: e.id)
    return [_question(e, name) for e in (examples if len(examples) <= k else rng.sample(examples, k))]


def general_questions(k: int, rng: random.Random) -> list[Question]:
    items = load_general_questions()
    chosen = items if len(items) <= k else rng.sample(items, k)
    return [Question("general", q["id"], general_messages(q["question"]), q["answers"][0], tuple(q["answers"]),
                     kind=q["category"]) for q in chosen]

"""Preference pairs made without a model, so DPO and ORPO run offline too.

The rejected reply is a plausible wrong answer: the answer to another question
about a neighbouring chunk of the same document (else of the next document).
It is fluent and on topic, only not the answer, which is what a preference
objective needs to push against.
"""

from __future__ import annotations

from ..records import Example, stable_id


def neighbour_pairs(examples: list[Example]) -> tuple[list[Example], list[dict]]:
    """One preference example per question-answer example that has a different neighbouring answer."""
    # one pair per fact: its first wording (the others would repeat the same preference)
    qa = [e for e in examples if e.kind == "qa" and not e.metadata.get("phrasing")]
    order = sorted(qa, key=lambda e: (e.document_id, e.provenance[:1], e.id))
    pairs, rejected = [], []
    for i, e in enumerate(order):
        answer = e.messages[-1]["content"]
        other = _neighbour(order, i, answer)
        if other is None:
            rejected.append({"example_id": e.id, "reason": "no neighbouring answer that differs"})
            continue
        pairs.append(Example(
            id=stable_id("preference", e.id), kind="preference", document_id=e.document_id,
            provenance=list(e.provenance),
            prompt=e.messages[:-1], chosen=[e.messages[-1]],
            rejected=[{"role": "assistant", "content": other.messages[-1]["content"]}],
            metadata={**e.metadata, "rejected_from": other.id, "preference_rule": "neighbour"},
        ))
    return pairs, rejected


def _neighbour(order: list[Example], i: int, answer: str) -> Example | None:
    # Nearest first: the next example, the previous one, then further out.
    for step in range(1, len(order)):
        for j in (i + step, i - step):
            if 0 <= j < len(order) and _norm(order[j].messages[-1]["content"]) != _norm(answer):
                return order[j]
    return None


def _norm(text: str) -> str:
    return " ".join(text.lower().split())

"""Answers a reader can check by eye: a few questions per set with every way's answer side by side, and the
general questions the tuned model now gets wrong that the base model got right."""

from __future__ import annotations

from .blocks import Block, Bullets, Heading, Table, cut, label, metric_of, signed, spread, ways_of

ANSWER_CHARS = 240
LOST_SHOWN = 6


def by_question(gens: list[dict], set_name: str) -> dict[str, dict[str, dict]]:
    """question id -> way -> its generation row, in the order the questions were asked."""
    out: dict[str, dict[str, dict]] = {}
    for g in gens:
        if g["set"] == set_name:
            out.setdefault(g["id"], {})[g.get("model", "tuned")] = g
    return out


def pick(questions: dict[str, dict[str, dict]], metric: str, k: int) -> list[dict[str, dict]]:
    """k questions spread from where the last way (tuned + RAG, or tuned) did worst against the first (base)
    to where it did best: deterministic, and not only the first questions in the file."""
    rows = list(questions.values())
    if not rows:
        return []
    order = sorted(range(len(rows)), key=lambda i: (_gain(rows[i], metric), i))
    if len(order) <= k:
        return [rows[i] for i in order]
    step = (len(order) - 1) / (k - 1) if k > 1 else 0
    return [rows[order[round(j * step)]] for j in range(k)]


def _gain(ways: dict[str, dict], metric: str) -> float:
    named = ways_of({w: {"questions": 1, "f1": 0} for w in ways})
    return ways[named[-1]][metric] - ways[named[0]][metric] if len(named) > 1 else ways[named[0]][metric]


def _answer(g: dict | None, metric: str) -> str:
    if g is None:
        return "-"
    score = ("correct" if g[metric] else "wrong") if metric == "exact_match" else f"F1 {g['f1']}"
    ended = "" if g.get("stopped", True) else ", ran out of tokens"
    return f"{cut(g['generation'].strip(), ANSWER_CHARS) or '(empty)'} ({score}{ended})"


def examples_blocks(gens: list[dict], sets: list[str], per_set: int) -> list[Block]:
    blocks: list[Block] = []
    for name in sets:
        questions = by_question(gens, name)
        chosen = pick(questions, metric_of(name), per_set)
        if not chosen:
            continue
        ways = ways_of({w: {"questions": 1, "f1": 0} for q in chosen for w in q})
        judged = any("judge" in g for q in chosen for g in q.values())
        header = ["question", "reference", *[label(w) for w in ways]] + (["judge verdict"] if judged else [])
        rows = []
        for q in chosen:
            first = next(iter(q.values()))
            row = [cut(first["question"], ANSWER_CHARS), cut(first["reference"], ANSWER_CHARS),
                   *[_answer(q.get(w), metric_of(name)) for w in ways]]
            if judged:
                row.append("; ".join(f"{label(w)}: {q[w]['judge']['verdict']}" for w in ways
                                     if w in q and q[w].get("judge")) or "-")
            rows.append(row)
        spread_by = (f", from where {label(ways[-1])} did worst against {label(ways[0])} to where it did best"
                     if len(ways) > 1 else "")
        blocks += [f"**{name}**: {len(chosen)} of {len(questions)} questions{spread_by}:",
                   Table(header, rows, wide=True)]
    if not blocks:
        return []
    return [Heading("Example answers"), "Greedy answers, cut at "
            f"{ANSWER_CHARS} characters; the score each got is in brackets.", *blocks]


def forgetting_blocks(res: dict, gens: list[dict]) -> list[Block]:
    general = res.get("general", {})
    ways = ways_of(general)
    if not ways:
        return []
    blocks: list[Block] = [Heading("Forgetting"),
                           "General questions (arithmetic, everyday facts, units, code) that have nothing to do with "
                           "the organisation's data, scored by exact match of accepted answers: what a base model "
                           "knew and fine-tuning may have cost."]
    if "base" not in ways or "tuned" not in ways:
        tuned = general.get("tuned", general[ways[-1]])
        blocks.append(f"No base model in this run (trained from scratch), so there is nothing to forget: the tuned "
                      f"model's exact match is {tuned['exact_match']} on {tuned['questions']} general questions.")
        return blocks
    base, tuned = general["base"], general["tuned"]
    text = (f"General exact match base → tuned: {base['exact_match']} → {tuned['exact_match']} "
            f"({signed(tuned['exact_match'] - base['exact_match'])}, {tuned['questions']} questions)")
    pair = next((p for p in general.get("comparison", {}).get("pairs", []) if {p["a"], p["b"]} == {"base", "tuned"}),
                None)
    if pair:
        low, high = (pair["low"], pair["high"]) if pair["a"] == "tuned" else (-pair["high"], -pair["low"])
        text += f"; 95% interval of the change {signed(low)} to {signed(high)}"
        text += "." if low <= 0 <= high else (": the tuned model forgot." if high < 0 else ": the tuned model gained.")
    else:
        text += "."
    blocks.append(text)
    questions = by_question(gens, "general")
    both = [q for q in questions.values() if "base" in q and "tuned" in q]
    lost = [q for q in both if q["base"]["exact_match"] and not q["tuned"]["exact_match"]]
    gained = [q for q in both if q["tuned"]["exact_match"] and not q["base"]["exact_match"]]
    if both:
        blocks.append(f"The tuned model now gets wrong {len(lost)} general questions the base model got right, and "
                      f"right {len(gained)} the base got wrong.")
    if lost:
        blocks.append(Table(["question", "accepted answer", "base", "tuned"],
                            [[q["base"]["question"], cut(q["base"]["reference"], ANSWER_CHARS),
                              cut(q["base"]["generation"].strip(), ANSWER_CHARS),
                              cut(q["tuned"]["generation"].strip(), ANSWER_CHARS)]
                             for q in spread(lost, LOST_SHOWN)], wide=True))
    kinds = base.get("by_kind", {})
    if kinds and tuned.get("by_kind"):
        blocks.append("Exact match by topic, base → tuned:")
        blocks.append(Bullets([f"{k}: {v['f1']} → {tuned['by_kind'].get(k, {}).get('f1', '-')} ({v['questions']} "
                               "questions)" for k, v in kinds.items()]))
    return blocks

